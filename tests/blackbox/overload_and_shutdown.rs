//! Overload and shutdown: calls beyond the concurrency limit are shed with HTTP 500 and the `internal` code
//! (the contract declares 200, 400 and 500 only) rather than queued,
//! and shutdown lets the calls in flight finish.

use crate::common::*;
use issuer_gateway::config::{Config, Secret};
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An SMS gateway that answers after `delay`.
async fn slow_sms_gateway(delay: Duration) -> MockServer {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SMslow"}))
                .set_delay(delay),
        )
        .mount(&gateway)
        .await;
    gateway
}

fn use_gateway(c: &mut Config, url: &str) {
    c.sms.provider = issuer_gateway::config::SmsProvider::Twilio;
    c.sms.base_url = url.into();
    c.sms.account_sid = "AC0123456789abcdef0123456789abcdef".into();
    c.sms.auth_token = Secret::new("token");
    c.sms.from = "+15005550006".into();
}

/// Waits (bounded) until the mock gateway has received `n` requests.
async fn until_received(gateway: &MockServer, n: usize) {
    for _ in 0..500 {
        if gateway.received_requests().await.map_or(0, |r| r.len()) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the SMS gateway never received {n} request(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_calls_in_flight() {
    let gateway = slow_sms_gateway(Duration::from_millis(800)).await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_gateway(c, &gateway.uri())).await;
    let (card_ref, methods) = app.enrol_to_yellow("drain-1", ALICE, "APPLE_PAY").await;
    let tsh = app.tsh().clone();
    let sms = methods[0].0.clone();
    let in_flight = tokio::spawn(async move {
        tsh.send_otp("drain-1", &card_ref, "424242", Some(&sms), "APPLE_PAY")
            .await
    });
    until_received(&gateway, 1).await;
    // Shutdown starts while the send waits for its provider.
    let api = app.gw.api;
    let stopping = tokio::spawn(app.gw.stop());
    let answer = in_flight
        .await
        .unwrap()
        .expect("the call in flight is answered");
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    stopping.await.unwrap();
    // It was recorded before the answer (the gateway closed its pool: reopen the database);
    // and the gateway no longer accepts calls.
    let reopened = issuer_gateway::store::Store::connect(
        &app.fx.config.database.url,
        1,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let sends = reopened.sends("drain-1").await.unwrap();
    assert_eq!(
        sends.iter().map(|s| s.outcome.as_str()).collect::<Vec<_>>(),
        vec!["accepted"]
    );
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_limit_are_shed_with_500() {
    let gateway = slow_sms_gateway(Duration::from_millis(1500)).await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        use_gateway(c, &gateway.uri());
        c.server.max_concurrency = 1;
    })
    .await;
    let (card_ref, methods) = app.enrol_to_yellow("shed-1", ALICE, "APPLE_PAY").await;
    let tsh = app.tsh().clone();
    let sms = methods[0].0.clone();
    let busy = tokio::spawn(async move {
        tsh.send_otp("shed-1", &card_ref, "111000", Some(&sms), "APPLE_PAY")
            .await
    });
    until_received(&gateway, 1).await;
    let shed = app
        .tsh()
        .check_eligibility("shed-2", BOB.pan, BOB.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(shed.status, 500, "{:?}", shed.body);
    assert_eq!(shed.body["responseCode"], 921, "{:?}", shed.body);
    assert_eq!(shed.body["errorMessage"], "overloaded, try again");
    assert_eq!(busy.await.unwrap().unwrap().status, 200);
    // Once the slot is free, calls are served again.
    let ok = app
        .tsh()
        .check_eligibility("shed-3", BOB.pan, BOB.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    app.gw.stop().await;
}
