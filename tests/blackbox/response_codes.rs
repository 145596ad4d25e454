//! Thales's language: the configured numbers of each reason, one answer for every unreadable
//! envelope (the IV-flip probe), the contract's body on unknown paths and methods, and the
//! tolerance rules (correlation ids and wallet ids with spaces).

use crate::common::*;
use crate::on_both_backends;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

on_both_backends!(
    configured_numbers_are_answered,
    flipping_iv_bits_always_gets_one_answer,
    unknown_paths_and_methods_get_the_contract_body,
    correlation_and_wallet_ids_are_free_strings
);

fn headers(cid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-correlation-id", cid.to_owned()),
        ("x-issuer-id", ISSUER_ID.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}

async fn post(url: &str, cid: &str, body: Value) -> (u16, Value) {
    let h = headers(cid);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    raw_post(url, &h, body.to_string()).await
}

async fn configured_numbers_are_answered(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.response_codes.card_blocked = 122;
        c.response_codes.unknown_card = 777;
    })
    .await;
    let tsh = app.tsh();
    let blocked = tsh
        .check_eligibility("rc-1", DAN.pan, DAN.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(
        (blocked.status, blocked.code()),
        (400, 122),
        "{:?}",
        blocked.body
    );
    let unknown = tsh
        .check_eligibility("rc-2", UNKNOWN.pan, UNKNOWN.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, 777),
        "{:?}",
        unknown.body
    );
    // The other reasons keep Thales's numbers.
    let expired = tsh
        .check_eligibility("rc-3", ERIN.pan, ERIN.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(expired.code(), 191, "{:?}", expired.body);
    // And the call record holds the number answered.
    let calls = app.gw.state.store.calls("rc-1").await.unwrap();
    assert_eq!(
        calls.last().map(|c| c.response_code),
        Some(122),
        "{calls:?}"
    );
    app.gw.stop().await;
}

/// The offset of the AES-256-CBC IV in a DER envelope: the parameters (an OCTET STRING of 16
/// bytes) that follow the algorithm's OID.
fn iv_offset(der: &[u8]) -> usize {
    const AES256_CBC: &[u8] = &[
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A, 0x04, 0x10,
    ];
    der.windows(AES256_CBC.len())
        .position(|w| w == AES256_CBC)
        .map(|p| p + AES256_CBC.len())
        .expect("an AES-256-CBC envelope")
}

/// A captured envelope with bits of its IV flipped decrypts to a first block changed at will (as
/// TSH writes card data, `{"fpan":"4111111`): whatever a flip does to the content (no longer
/// JSON, no `fpan`, a PAN that is no longer digits or fails Luhn), the answer must be the same,
/// or the answers would tell the plaintext bit by bit.
async fn flipping_iv_bits_always_gets_one_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let captured = app.tsh().card_info(ALICE.pan, Some(ALICE.exp)).unwrap();
    let der = B64.decode(&captured).unwrap();
    let iv = iv_offset(&der);
    let url = app.gw.url("checkCardEligibility");
    let mut answers = std::collections::BTreeSet::new();
    for bit in 0..128 {
        let mut tampered = der.clone();
        tampered[iv + bit / 8] ^= 1 << (bit % 8);
        let body =
            json!({"cipheredCardInfo": B64.encode(&tampered), "walletProviderId": "APPLE_PAY"});
        let (status, answer) = post(&url, &format!("iv-{bit}"), body).await;
        answers.insert((status, answer.to_string()));
    }
    // An envelope that is not ours at all is answered the same way.
    let (status, answer) = post(
        &url,
        "iv-garbage",
        json!({"cipheredCardInfo": "AAAA", "walletProviderId": "APPLE_PAY"}),
    )
    .await;
    answers.insert((status, answer.to_string()));
    let expected = json!({
        "responseCode": 166,
        "errorMessage": "cipheredCardInfo could not be opened, or is not valid card data"
    });
    assert_eq!(
        answers.into_iter().collect::<Vec<_>>(),
        vec![(400, expected.to_string())]
    );
    app.gw.stop().await;
}

async fn unknown_paths_and_methods_get_the_contract_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    issuer_gateway::install_crypto_provider();
    let client = reqwest::Client::new();
    let not_found = client
        .post(app.gw.url("deleteEverything"))
        .header("x-correlation-id", "p-1")
        .header("x-issuer-id", ISSUER_ID)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status().as_u16(), 404);
    let body: Value = not_found.json().await.unwrap();
    assert_eq!(body["responseCode"], 112, "{body}");
    assert!(body["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    let wrong_method = client.get(app.gw.url("sendOTP")).send().await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(
        wrong_method
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["responseCode"], 112, "{body}");
    app.gw.stop().await;
}

async fn correlation_and_wallet_ids_are_free_strings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    // Spaces, and letters beyond ASCII, in a correlation id; a whole enrolment under it.
    for cid in ["enrolment 2026 12 01 A", "inscripción-ñ-1"] {
        let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "APPLE_PAY").await;
        assert!(!card_ref.is_empty() && !methods.is_empty(), "{cid}");
        let calls = app.gw.state.store.calls(cid).await.unwrap();
        assert_eq!(calls.len(), 2, "{cid}: {calls:?}");
    }
    // A wallet id with spaces and lower case.
    let a = tsh
        .check_eligibility("w-1", ALICE.pan, ALICE.exp, "my bank wallet")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    app.gw.stop().await;
}
