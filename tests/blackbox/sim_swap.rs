//! The SIM-swap check (CAMARA) before SMS, against a mock operator API: a swapped number is not
//! offered and is refused at send, `on_error` both ways, and the OAuth token is fetched once for
//! many checks.

use crate::common::*;
use crate::on_both_backends;
use issuer_gateway::config::{Config, Secret, SimSwapOnError};
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

on_both_backends!(
    a_swapped_number_is_not_offered_and_the_token_is_fetched_once,
    a_number_swapped_after_the_offer_is_refused_at_send,
    on_error_decides_when_the_check_cannot_answer
);

/// A CAMARA SIM Swap API: a token endpoint (one token, expected `tokens` times), and `/check`.
async fn camara(tokens: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", "Basic Z2F0ZXdheTpzM2NyM3Q=")) // gateway:s3cr3t
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .expect(tokens)
        .mount(&server)
        .await;
    server
}

fn use_camara(c: &mut Config, server: &MockServer, on_error: SimSwapOnError) {
    c.sim_swap.base_url = server.uri();
    c.sim_swap.token_url = format!("{}/token", server.uri());
    c.sim_swap.client_id = "gateway".into();
    c.sim_swap.client_secret = Secret::new("s3cr3t");
    c.sim_swap.cache_ttl_seconds = 0;
    c.sim_swap.on_error = on_error;
}

async fn answer(server: &MockServer, phone: &str, swapped: bool) {
    Mock::given(method("POST"))
        .and(path("/check"))
        .and(header("authorization", "Bearer tok-1"))
        .and(body_partial_json(
            json!({"phoneNumber": phone, "maxAge": 72}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"swapped": swapped})))
        .mount(server)
        .await;
}

fn channels(methods: &[(String, String, String)]) -> Vec<&str> {
    methods.iter().map(|m| m.1.as_str()).collect()
}

async fn a_swapped_number_is_not_offered_and_the_token_is_fetched_once(backend: Backend) {
    let server = camara(1).await;
    answer(&server, ALICE.phone.unwrap(), true).await;
    answer(&server, BOB.phone.unwrap(), false).await;
    let app = TestApp::spawn_with(backend, |c| use_camara(c, &server, SimSwapOnError::Allow)).await;
    let (_, alice) = app.enrol_to_yellow("ss-1", ALICE, "APPLE_PAY").await;
    assert_eq!(channels(&alice), vec!["email"], "ALICE's SIM was swapped");
    let (_, bob) = app.enrol_to_yellow("ss-2", BOB, "APPLE_PAY").await;
    assert_eq!(channels(&bob), vec!["sms", "email"]);
    let (_, bob_again) = app.enrol_to_yellow("ss-3", BOB, "APPLE_PAY").await;
    assert_eq!(channels(&bob_again), vec!["sms", "email"]);
    // Three checks, one token.
    let checks = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/check")
        .count();
    assert_eq!(checks, 3);
    server.verify().await;
    app.gw.stop().await;
}

async fn a_number_swapped_after_the_offer_is_refused_at_send(backend: Backend) {
    let server = camara(1).await;
    // Not swapped when the methods are offered, swapped by the time the OTP is to be sent.
    Mock::given(method("POST"))
        .and(path("/check"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"swapped": false})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    answer(&server, BOB.phone.unwrap(), true).await;
    let app = TestApp::spawn_with(backend, |c| use_camara(c, &server, SimSwapOnError::Allow)).await;
    let (card_ref, methods) = app.enrol_to_yellow("ss-send", BOB, "APPLE_PAY").await;
    let sms = methods.iter().find(|m| m.1 == "sms").expect("SMS offered");
    let a = app
        .tsh()
        .send_otp("ss-send", &card_ref, "246810", Some(&sms.0), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!((a.status, a.code()), (400, 170), "{:?}", a.body);
    assert_eq!(
        a.body["errorMessage"],
        "the phone number's SIM changed recently"
    );
    assert!(app.fx.outbox().is_empty(), "nothing was sent");
    app.gw.stop().await;
}

async fn on_error_decides_when_the_check_cannot_answer(backend: Backend) {
    for (on_error, offered) in [
        (SimSwapOnError::Allow, vec!["sms", "email"]),
        (SimSwapOnError::Refuse, vec!["email"]),
    ] {
        let server = camara(1).await;
        Mock::given(method("POST"))
            .and(path("/check"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let app = TestApp::spawn_with(backend.clone(), |c| use_camara(c, &server, on_error)).await;
        let (_, methods) = app.enrol_to_yellow("ss-err", ALICE, "APPLE_PAY").await;
        assert_eq!(channels(&methods), offered, "{on_error:?}");
        app.gw.stop().await;
    }
}
