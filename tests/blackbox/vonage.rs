//! The `vonage` SMS provider against a mock Vonage SMS API: the OTP goes out as the API wants
//! it (number without `+`, `type=unicode` for a text beyond GSM-7), a refusal answers
//! `delivery_failed`, and the provider's message id is recorded.

use crate::common::*;
use crate::on_both_backends;
use issuer_gateway::config::{Config, Secret, SmsProvider};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

on_both_backends!(an_otp_goes_out_through_vonage);

pub(crate) fn use_vonage(c: &mut Config, server: &MockServer) {
    c.sms.provider = SmsProvider::Vonage;
    c.sms.base_url = server.uri();
    c.sms.api_key = "key-1".into();
    c.sms.api_secret = Secret::new("vonage-s3cr3t");
    c.sms.from = "BANK".into();
    c.sms.timeout_ms = 2_000;
}

/// The form fields of a request (`application/x-www-form-urlencoded`), decoded.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

async fn an_otp_goes_out_through_vonage(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "message-count": "1",
            "messages": [{"to": "447700900123", "message-id": "0A00000012345678", "status": "0"}]
        })))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"status": "4", "error-text": "Bad Credentials for +447700900123"}]
        })))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(backend, |c| use_vonage(c, &server)).await;
    let tsh = app.tsh();

    // English (GSM-7): no type.
    let (card_ref, methods) = app.enrol_to_yellow("vg-1", ALICE, "APPLE_PAY").await;
    let sms = methods.iter().find(|m| m.1 == "sms").unwrap();
    let a = tsh
        .send_otp("vg-1", &card_ref, "735190", Some(&sms.0), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    // Spanish (UCS-2): type=unicode.
    let d = tsh
        .request_digitization(
            "vg-2",
            ALICE.pan,
            ALICE.exp,
            "APPLE_PAY",
            json!({"captureMethod": "MANUAL", "deviceInformation": {"language": "es"}}),
        )
        .await
        .unwrap();
    let es = methods_of_sms(&d.body);
    let a = tsh
        .send_otp("vg-2", &card_ref, "246801", Some(&es), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let requests = server.received_requests().await.unwrap();
    let first = form(&requests[0].body);
    let get =
        |f: &[(String, String)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get(&first, "to").as_deref(), Some("447700900123"));
    assert_eq!(get(&first, "api_key").as_deref(), Some("key-1"));
    assert_eq!(get(&first, "api_secret").as_deref(), Some("vonage-s3cr3t"));
    assert_eq!(get(&first, "from").as_deref(), Some("BANK"));
    assert!(
        get(&first, "text")
            .unwrap()
            .starts_with("735190 is your code")
    );
    assert_eq!(get(&first, "type"), None);
    let second = form(&requests[1].body);
    assert_eq!(get(&second, "type").as_deref(), Some("unicode"));
    assert!(get(&second, "text").unwrap().contains("código"));
    let sends = app.gw.state.store.sends("vg-1").await.unwrap();
    assert_eq!(
        (
            sends[0].provider.as_str(),
            sends[0].provider_message_id.as_deref()
        ),
        ("vonage", Some("0A00000012345678"))
    );

    // A refusal (status 4): delivery_failed, with Vonage's status kept, not its text.
    let (card_ref, methods) = app.enrol_to_yellow("vg-3", BOB, "APPLE_PAY").await;
    let sms = methods.iter().find(|m| m.1 == "sms").unwrap();
    let a = tsh
        .send_otp("vg-3", &card_ref, "112233", Some(&sms.0), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!((a.status, a.code()), (400, 911), "{:?}", a.body);
    let sends = app.gw.state.store.sends("vg-3").await.unwrap();
    assert_eq!(sends[0].provider_code.as_deref(), Some("4"));
    app.gw.stop().await;
}

fn methods_of_sms(body: &serde_json::Value) -> String {
    methods(body)
        .into_iter()
        .find(|m| m.1 == "sms")
        .map(|m| m.0)
        .expect("an SMS method")
}
