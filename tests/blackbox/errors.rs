//! Every response code of the contract that these operations can answer, each provoked by a
//! real request, with the contract's body.

use crate::common::*;
use crate::on_both_backends;
use issuer_gateway::envelope::{self, KeyTransport, Recipient, RecipientIdKind};
use serde_json::{Value, json};

on_both_backends!(
    header_and_body_codes,
    card_codes,
    send_otp_codes,
    notify_codes
);

fn assert_code(what: &str, got: (u16, Value), code: u64) {
    assert_eq!(got.0, 400, "{what}: {:?}", got.1);
    assert_eq!(got.1["responseCode"], json!(code), "{what}: {:?}", got.1);
    let msg = got.1["errorMessage"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "{what}: errorMessage");
    for s in sensitive_values() {
        assert!(!msg.contains(s), "{what}: message leaks a sensitive value");
    }
}

async fn post(
    gw: &Gateway,
    op: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    raw_post(&gw.url(op), headers, body).await
}

const H: &[(&str, &str)] = &[
    ("x-correlation-id", "codes-1"),
    ("x-issuer-id", ISSUER_ID),
    ("content-type", "application/json"),
];

async fn header_and_body_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gw = &app.gw;
    let ok_body = json!({"issuerCardRefId": "x", "walletProviderId": "APPLE_PAY"}).to_string();
    // 111: a header missing; 112: one malformed.
    let ct = ("content-type", "application/json");
    assert_code(
        "no correlation id",
        post(
            gw,
            "checkCardEligibility",
            &[("x-issuer-id", ISSUER_ID), ct],
            ok_body.clone(),
        )
        .await,
        111,
    );
    let long = "c".repeat(65);
    assert_code(
        "long correlation id",
        post(
            gw,
            "checkCardEligibility",
            &[("x-correlation-id", &long), ("x-issuer-id", ISSUER_ID), ct],
            ok_body.clone(),
        )
        .await,
        112,
    );
    assert_code(
        "no issuer id",
        post(
            gw,
            "sendOTP",
            &[("x-correlation-id", "c"), ct],
            ok_body.clone(),
        )
        .await,
        111,
    );
    assert_code(
        "short issuer id",
        post(
            gw,
            "sendOTP",
            &[("x-correlation-id", "c"), ("x-issuer-id", "TESTBANK0"), ct],
            ok_body.clone(),
        )
        .await,
        112,
    );
    let many: Vec<(String, String)> = (0..70)
        .map(|i| (format!("x-extra-{i}"), "v".into()))
        .collect();
    let mut h: Vec<(&str, &str)> = H.to_vec();
    h.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_code(
        "70 headers",
        post(gw, "checkCardEligibility", &h, ok_body.clone()).await,
        112,
    );
    // Beyond what the HTTP layer's own limit used to be (100): still the contract's answer.
    let many: Vec<(String, String)> = (0..300)
        .map(|i| (format!("x-extra-{i}"), "v".into()))
        .collect();
    let mut h: Vec<(&str, &str)> = H.to_vec();
    h.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_code(
        "300 headers",
        post(gw, "checkCardEligibility", &h, ok_body.clone()).await,
        112,
    );
    let big = "b".repeat(17 * 1024);
    let mut h: Vec<(&str, &str)> = H.to_vec();
    h.push(("x-big", &big));
    assert_code(
        "17 KiB of headers",
        post(gw, "checkCardEligibility", &h, ok_body.clone()).await,
        112,
    );
    // 113: another issuer.
    assert_code(
        "other issuer",
        post(
            gw,
            "notifyVirtualCardChange",
            &[("x-correlation-id", "c"), ("x-issuer-id", "OTHERBANK1"), ct],
            ok_body.clone(),
        )
        .await,
        113,
    );
    // 112: not JSON, wrong content type, too large, not an object.
    assert_code(
        "not json",
        post(gw, "checkCardEligibility", H, "{not json").await,
        112,
    );
    assert_code(
        "json array",
        post(gw, "checkCardEligibility", H, "[1,2]").await,
        112,
    );
    assert_code(
        "empty body",
        post(gw, "checkCardEligibility", H, "").await,
        112,
    );
    assert_code(
        "text/plain",
        post(
            gw,
            "checkCardEligibility",
            &[
                ("x-correlation-id", "c"),
                ("x-issuer-id", ISSUER_ID),
                ("content-type", "text/plain"),
            ],
            ok_body.clone(),
        )
        .await,
        112,
    );
    let big = format!("{{\"issuerCardRefId\":\"{}\"}}", "x".repeat(70 * 1024));
    assert_code(
        "70 KiB body",
        post(gw, "checkCardEligibility", H, big).await,
        112,
    );
    // A body just under the limit is read (and refused for its field, not its size).
    let under = format!(
        "{{\"issuerCardRefId\":\"a\",\"pad\":\"{}\"}}",
        "x".repeat(60 * 1024)
    );
    assert_code(
        "60 KiB body",
        post(gw, "checkCardEligibility", H, under).await,
        116,
    );
    // 111: mandatory field missing.
    assert_code(
        "no card",
        post(
            gw,
            "checkCardEligibility",
            H,
            json!({"walletProviderId": "APPLE_PAY"}).to_string(),
        )
        .await,
        111,
    );
    assert_code(
        "no card (digitization)",
        post(
            gw,
            "requestCardDigitization",
            H,
            json!({"tncStatus": true}).to_string(),
        )
        .await,
        111,
    );
    assert_code(
        "no otpValue",
        post(
            gw,
            "sendOTP",
            H,
            json!({"issuerCardRefId": "r"}).to_string(),
        )
        .await,
        111,
    );
    assert_code(
        "no issuerCardRefId",
        post(gw, "sendOTP", H, json!({"otpValue": "1"}).to_string()).await,
        111,
    );
    assert_code(
        "null is missing",
        post(
            gw,
            "sendOTP",
            H,
            json!({"otpValue": null, "issuerCardRefId": "r"}).to_string(),
        )
        .await,
        111,
    );
    // 112: wrong type, length or format.
    assert_code(
        "wallet too long",
        post(
            gw,
            "checkCardEligibility",
            H,
            json!({"issuerCardRefId": "r", "walletProviderId": "W".repeat(129)}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "ref as number",
        post(
            gw,
            "checkCardEligibility",
            H,
            json!({"issuerCardRefId": 12}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "ref too long",
        post(
            gw,
            "sendOTP",
            H,
            json!({"issuerCardRefId": "r".repeat(49), "otpValue": "1"}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "otp too long",
        post(
            gw,
            "sendOTP",
            H,
            json!({"issuerCardRefId": "r", "otpValue": "1".repeat(33)}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "empty otp",
        post(
            gw,
            "sendOTP",
            H,
            json!({"issuerCardRefId": "r", "otpValue": ""}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "tncStatus maybe",
        post(
            gw,
            "requestCardDigitization",
            H,
            json!({"issuerCardRefId": "r", "tncStatus": "maybe"}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "scoring not object",
        post(
            gw,
            "requestCardDigitization",
            H,
            json!({"issuerCardRefId": "r", "scoringInformation": "high"}).to_string(),
        )
        .await,
        112,
    );
    assert_code(
        "expirationDate",
        post(
            gw,
            "sendOTP",
            H,
            json!({"issuerCardRefId": "r", "otpValue": "1", "expirationDate": "tomorrow"})
                .to_string(),
        )
        .await,
        112,
    );
    assert_code("errorCode text", post(gw, "notifyVirtualCardChange", H, json!({"issuerCardRefId": "r", "virtualCardId": "v", "walletProviderId": "w", "action": "DELETE", "errorCode": "x"}).to_string()).await, 112);
    // The alias answers like the operation.
    assert_code(
        "alias",
        post(
            gw,
            "requestCardEligibility",
            H,
            json!({"walletProviderId": "APPLE_PAY"}).to_string(),
        )
        .await,
        111,
    );
    app.gw.stop().await;
}

async fn card_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gw = &app.gw;
    let tsh = app.tsh();
    let elig = |ciphered: String| {
        json!({"cipheredCardInfo": ciphered, "walletProviderId": "APPLE_PAY"}).to_string()
    };
    // 166: not base64/hex, sealed for another key, corrupted.
    assert_code(
        "garbage envelope",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig("not an envelope!".into()),
        )
        .await,
        166,
    );
    let other = issuer_gateway::envelope::generate_key_pair(2048, "someone else").unwrap();
    let foreign = Recipient::from_certificate_pem(&other.certificate_pem).unwrap();
    let sealed_foreign = envelope::seal_base64(
        &foreign,
        br#"{"fpan":"4111111111111111"}"#,
        KeyTransport::Oaep,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    assert_code(
        "other key",
        post(gw, "checkCardEligibility", H, elig(sealed_foreign)).await,
        166,
    );
    let mine = Recipient::from_certificate_pem(&app.fx.certificate_pem()).unwrap();
    let seal = |pt: &[u8]| {
        envelope::seal_base64(
            &mine,
            pt,
            KeyTransport::Pkcs1v15,
            RecipientIdKind::IssuerSerial,
        )
        .unwrap()
    };
    let mut corrupted = seal(br#"{"fpan":"4111111111111111"}"#).into_bytes();
    let mid = corrupted.len() / 2;
    corrupted[mid] = if corrupted[mid] == b'A' { b'B' } else { b'A' };
    assert_code(
        "corrupted",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(String::from_utf8(corrupted).unwrap()),
        )
        .await,
        166,
    );
    // Hex on the wire works as well as base64.
    let hex_env = envelope::seal_hex(
        &mine,
        br#"{"fpan":"4111111111111111","exp":"1229"}"#,
        KeyTransport::Oaep,
        RecipientIdKind::SubjectKeyId,
    )
    .unwrap();
    let (s, b) = post(gw, "checkCardEligibility", H, elig(hex_env)).await;
    assert_eq!(s, 200, "hex envelope: {b:?}");
    // 166: decrypted data invalid.
    assert_code(
        "luhn",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(seal(br#"{"fpan":"4111111111111112"}"#)),
        )
        .await,
        166,
    );
    assert_code(
        "short pan",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(seal(br#"{"fpan":"41111111111"}"#)),
        )
        .await,
        166,
    );
    assert_code(
        "exp format",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(seal(br#"{"fpan":"4111111111111111","exp":"12/29"}"#)),
        )
        .await,
        166,
    );
    assert_code(
        "cvv format",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(seal(br#"{"fpan":"4111111111111111","cvv":"12a"}"#)),
        )
        .await,
        166,
    );
    assert_code(
        "not json inside",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(seal(b"fpan=4111111111111111")),
        )
        .await,
        166,
    );
    assert_code(
        "no fpan",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(seal(br#"{"pan":"4111111111111111"}"#)),
        )
        .await,
        166,
    );
    // 116: unknown card, by data and by reference.
    assert_code(
        "unknown pan",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(tsh.card_info(UNKNOWN.pan, Some(UNKNOWN.exp)).unwrap()),
        )
        .await,
        116,
    );
    assert_code(
        "unknown ref",
        post(
            gw,
            "checkCardEligibility",
            H,
            json!({"issuerCardRefId": "nope"}).to_string(),
        )
        .await,
        116,
    );
    assert_code(
        "unknown pan (digitization)",
        post(
            gw,
            "requestCardDigitization",
            H,
            json!({"cipheredCardInfo": tsh.card_info(UNKNOWN.pan, None).unwrap()}).to_string(),
        )
        .await,
        116,
    );
    // 191: expired on record.
    assert_code(
        "expired",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(tsh.card_info(ERIN.pan, Some(ERIN.exp)).unwrap()),
        )
        .await,
        191,
    );
    assert_code(
        "expiry mismatch",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(tsh.card_info(ALICE.pan, Some("1129")).unwrap()),
        )
        .await,
        166,
    );
    // 159: blocked, lost or stolen; 160: closed.
    app.fx
        .import("pan,exp,status,product_id\n4917610000000000,1229,closed,VISA_CLASSIC\n")
        .await;
    assert_code(
        "closed",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(tsh.card_info("4917610000000000", Some("1229")).unwrap()),
        )
        .await,
        160,
    );
    assert_code(
        "blocked",
        post(
            gw,
            "checkCardEligibility",
            H,
            elig(tsh.card_info(DAN.pan, Some(DAN.exp)).unwrap()),
        )
        .await,
        159,
    );
    // 163: product not enabled for this wallet.
    let samsung = json!({"cipheredCardInfo": tsh.card_info(BOB.pan, Some(BOB.exp)).unwrap(), "walletProviderId": "SAMSUNG_PAY"}).to_string();
    assert_code(
        "wallet not enabled",
        post(gw, "checkCardEligibility", H, samsung).await,
        163,
    );
    // Refusals are recorded with the enrolment.
    let calls = app.gw.state.store.calls("codes-1").await.unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.response_code == 159 && c.card_ref.is_some()),
        "{calls:?}"
    );
    let e = app
        .gw
        .state
        .store
        .enrolment("codes-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.state, "ineligible");
    app.gw.stop().await;
}

async fn send_otp_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let code = |a: issuer_gateway::sim::Answer| (a.status, a.body);
    // 118: no enrolment, an enrolment answered green, another card.
    let (card_ref, methods) = app.enrol_to_yellow("otp-1", ALICE, "APPLE_PAY").await;
    let sms = methods[0].0.clone();
    assert_code(
        "unknown enrolment",
        code(
            tsh.send_otp("otp-none", &card_ref, "123456", Some(&sms), "APPLE_PAY")
                .await
                .unwrap(),
        ),
        118,
    );
    tsh.request_digitization(
        "otp-green",
        ALICE.pan,
        ALICE.exp,
        "APPLE_PAY",
        json!({"cvvValidated": true}),
    )
    .await
    .unwrap();
    assert_code(
        "green enrolment",
        code(
            tsh.send_otp("otp-green", &card_ref, "123456", None, "APPLE_PAY")
                .await
                .unwrap(),
        ),
        118,
    );
    assert_code(
        "other card",
        code(
            tsh.send_otp("otp-1", "someone-else", "123456", Some(&sms), "APPLE_PAY")
                .await
                .unwrap(),
        ),
        118,
    );
    // 112: a method not offered to this enrolment.
    assert_code(
        "unknown method",
        code(
            tsh.send_otp("otp-1", &card_ref, "123456", Some("m-unknown"), "APPLE_PAY")
                .await
                .unwrap(),
        ),
        112,
    );
    let (_, other_methods) = app.enrol_to_yellow("otp-2", ALICE, "APPLE_PAY").await;
    assert_code(
        "another enrolment's method",
        code(
            tsh.send_otp(
                "otp-1",
                &card_ref,
                "123456",
                Some(&other_methods[0].0),
                "APPLE_PAY",
            )
            .await
            .unwrap(),
        ),
        112,
    );
    // 322: expired OTP, ISO 8601 and epoch milliseconds; nothing is sent.
    for exp in [json!("2020-01-01T00:00:00Z"), json!(1_577_836_800_000i64)] {
        let body = json!({"issuerCardRefId": card_ref, "otpValue": "123456", "otpMethodId": sms, "expirationDate": exp});
        assert_code(
            "expired otp",
            code(tsh.call("sendOTP", "otp-1", &body).await.unwrap()),
            322,
        );
    }
    let future = json!({"issuerCardRefId": card_ref, "otpValue": "123456", "otpMethodId": sms, "expirationDate": "2099-01-01T00:00:00+01:00"});
    assert_eq!(
        tsh.call("sendOTP", "otp-1", &future).await.unwrap().status,
        200
    );
    assert_eq!(app.fx.outbox().len(), 1);
    // 911: the channel fails; the retry after the failure is sent.
    let outbox = app.fx.config.outbox.dir.clone();
    let saved = outbox.with_extension("saved");
    std::fs::rename(&outbox, &saved).unwrap();
    std::fs::write(&outbox, b"broken").unwrap();
    assert_code(
        "channel fails",
        code(
            tsh.send_otp("otp-1", &card_ref, "999000", Some(&sms), "APPLE_PAY")
                .await
                .unwrap(),
        ),
        911,
    );
    std::fs::remove_file(&outbox).unwrap();
    std::fs::rename(&saved, &outbox).unwrap();
    assert_eq!(
        tsh.send_otp("otp-1", &card_ref, "999000", Some(&sms), "APPLE_PAY")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(app.fx.outbox().len(), 2);
    let sends = app.gw.state.store.sends("otp-1").await.unwrap();
    let outcomes: Vec<&str> = sends.iter().map(|s| s.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["accepted", "refused", "accepted"]);
    // 170: the phone was removed from the card after the methods were offered.
    // (An empty phone column clears the phone; a file without the column would keep it.)
    app.fx.import("pan,exp,status,product_id,phone,email\n4111111111111111,1229,active,VISA_PLATINUM,,alice.martin@example.com\n").await;
    assert_code(
        "no phone on file",
        code(
            tsh.send_otp(
                "otp-2",
                &card_ref,
                "123456",
                Some(&other_methods[0].0),
                "APPLE_PAY",
            )
            .await
            .unwrap(),
        ),
        170,
    );
    // 170: the card was blocked after the methods were offered.
    app.fx.import("pan,exp,status,product_id,email\n4111111111111111,1229,lost,VISA_PLATINUM,alice.martin@example.com\n").await;
    assert_code(
        "card lost",
        code(
            tsh.send_otp(
                "otp-2",
                &card_ref,
                "123456",
                Some(&other_methods[1].0),
                "APPLE_PAY",
            )
            .await
            .unwrap(),
        ),
        170,
    );
    assert_eq!(app.fx.outbox().len(), 2, "refusals send nothing");
    app.gw.stop().await;
}

async fn notify_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let base = json!({"issuerCardRefId": "nope", "virtualCardId": "VC-1", "walletProviderId": "APPLE_PAY", "action": "ACTIVATE"});
    assert_code(
        "unknown card",
        {
            let a = tsh
                .call("notifyVirtualCardChange", "n-1", &base)
                .await
                .unwrap();
            (a.status, a.body)
        },
        116,
    );
    for missing in [
        "issuerCardRefId",
        "virtualCardId",
        "walletProviderId",
        "action",
    ] {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(missing);
        let a = tsh
            .call("notifyVirtualCardChange", "n-1", &b)
            .await
            .unwrap();
        assert_code(missing, (a.status, a.body), 111);
    }
    let r = tsh
        .check_eligibility("n-1", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    let card_ref = r.str("issuerCardRefId").unwrap();
    let mut b = base.clone();
    b["issuerCardRefId"] = json!(card_ref);
    b["tokenInfo"] = json!("%%%");
    let a = tsh
        .call("notifyVirtualCardChange", "n-1", &b)
        .await
        .unwrap();
    assert_code("bad tokenInfo", (a.status, a.body), 166);
    b["tokenInfo"] = json!(tsh.seal(&json!({"dpan": "12ab"})).unwrap());
    let a = tsh
        .call("notifyVirtualCardChange", "n-1", &b)
        .await
        .unwrap();
    assert_code("bad dpan", (a.status, a.body), 166);
    b["virtualCardId"] = json!("V".repeat(65));
    b.as_object_mut().unwrap().remove("tokenInfo");
    let a = tsh
        .call("notifyVirtualCardChange", "n-1", &b)
        .await
        .unwrap();
    assert_code("long virtualCardId", (a.status, a.body), 112);
    assert!(
        app.gw
            .state
            .store
            .tokens_of_card(card_ref)
            .await
            .unwrap()
            .is_empty(),
        "refused notices record no token"
    );
    app.gw.stop().await;
}
