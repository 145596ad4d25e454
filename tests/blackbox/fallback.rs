//! Fallback providers: a Twilio-shaped gateway first, a Vonage-shaped one after it (mock
//! gateways), and two SMTP relays on loopback. The fallback is used after a 5xx, a refusal or a
//! refused connection, never after an unclear outcome (the connection cut after the request),
//! never twice; every attempt fits in the call's deadline; which provider accepted is recorded
//! and shown; a provider that keeps failing is skipped (circuit breaker), visibly, then probed.

use crate::common::*;
use crate::delivery::{
    ACCEPT, CLOSE_AFTER_DATA, MESSAGES, REFUSE_RCPT, SmtpServer, accepted, cutting_gateway,
    email_method, sms_method, smtp, twilio,
};
use crate::on_both_backends;
use issuer_gateway::config::{Config, EmailConfig, Secret, SmsConfig, SmsProvider, SmtpTls};
use issuer_gateway::domain::Reason;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

on_both_backends!(
    a_5xx_hands_the_otp_to_the_fallback_and_the_send_says_who_took_it,
    an_unclear_outcome_never_goes_to_the_fallback,
);

/// A Vonage-shaped fallback after `[sms]`.
fn vonage_fallback(c: &mut Config, base_url: &str, timeout_ms: u64) -> SmsConfig {
    let mut f = c.sms.clone();
    f.provider = SmsProvider::Vonage;
    f.name = "vonage".into();
    f.base_url = base_url.into();
    f.api_key = "key-1".into();
    f.api_secret = Secret::new("vonage-s3cr3t");
    f.from = "BANK".into();
    f.timeout_ms = timeout_ms;
    f.fallback = Vec::new();
    f
}

fn vonage_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "message-count": "1",
        "messages": [{"to": "447700900123", "message-id": "0A00000012345678", "status": "0"}]
    }))
}

async fn vonage_gateway(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

async fn twilio_gateway(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

/// An address nobody listens on: connections to it are refused.
async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", app.gw.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn send_sms(
    app: &TestApp,
    cid: &str,
    card: TestCard,
    otp: &str,
) -> issuer_gateway::sim::Answer {
    let (card_ref, methods) = app.enrol_to_yellow(cid, card, "GOOGLE_PAY").await;
    app.tsh()
        .send_otp(
            cid,
            &card_ref,
            otp,
            Some(&sms_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap()
}

async fn a_5xx_hands_the_otp_to_the_fallback_and_the_send_says_who_took_it(backend: Backend) {
    let first = twilio_gateway(ResponseTemplate::new(503).set_body_string("down")).await;
    let second = vonage_gateway(vonage_ok()).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(backend, |c| {
        twilio(c, &first.uri(), 1_000);
        let f = vonage_fallback(c, &second_url, 1_000);
        c.sms.fallback = vec![f];
    })
    .await;
    let a = send_sms(&app, "fb-5xx", ALICE, "246810").await;
    assert_eq!((a.status, a.body.clone()), (200, json!({})));
    assert_eq!((requests(&first).await, requests(&second).await), (1, 1));
    // The fallback got the OTP exactly, to the number without its `+`.
    let got = second.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&got[0].body).to_string();
    assert!(body.contains("text=246810"), "{body}");
    assert!(body.contains("to=447700900123"), "{body}");

    let sends = app.gw.state.store.sends("fb-5xx").await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].outcome.as_str(), "accepted");
    assert_eq!(sends[0].provider, "twilio");
    assert_eq!(sends[0].accepted_by.as_deref(), Some("vonage"));
    assert_eq!(
        sends[0].attempts.as_deref(),
        Some("twilio:refused vonage:accepted")
    );
    assert_eq!(
        sends[0].provider_message_id.as_deref(),
        Some("0A00000012345678")
    );
    // The admin API's send view shows it.
    let view = admin_json(&app, "/enrolments/fb-5xx").await;
    assert_eq!(view["sends"][0]["acceptedBy"], "vonage", "{view}");
    assert_eq!(
        view["sends"][0]["attempts"],
        "twilio:refused vonage:accepted"
    );

    app.gw.stop().await;
}

/// A refused connection is as certain: nothing was sent, the fallback takes the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_hands_the_otp_to_the_fallback() {
    let closed = closed_port_url().await;
    let second = vonage_gateway(vonage_ok()).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        twilio(c, &closed, 1_000);
        let f = vonage_fallback(c, &second_url, 1_000);
        c.sms.fallback = vec![f];
    })
    .await;
    let a = send_sms(&app, "fb-refused", BOB, "135790").await;
    assert_eq!((a.status, a.body.clone()), (200, json!({})));
    assert_eq!(requests(&second).await, 1);
    let sends = app.gw.state.store.sends("fb-refused").await.unwrap();
    assert_eq!(sends[0].accepted_by.as_deref(), Some("vonage"));
    assert_eq!(
        sends[0].attempts.as_deref(),
        Some("twilio:refused vonage:accepted")
    );
    app.gw.stop().await;
}

/// The connection cut after the request went out: the message may have been delivered, so the
/// fallback is not tried (the cardholder could get two codes from two providers).
async fn an_unclear_outcome_never_goes_to_the_fallback(backend: Backend) {
    let (cutting, cut_requests) = cutting_gateway().await;
    let second = vonage_gateway(vonage_ok()).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(backend, |c| {
        twilio(c, &cutting, 1_000);
        let f = vonage_fallback(c, &second_url, 1_000);
        c.sms.fallback = vec![f];
    })
    .await;
    let a = send_sms(&app, "fb-cut", ALICE, "112233").await;
    assert_eq!(
        a.code(),
        Reason::DeliveryTimeout.default_number(),
        "{:?}",
        a.body
    );
    assert_eq!(cut_requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        requests(&second).await,
        0,
        "the fallback was tried after an unclear outcome"
    );
    let sends = app.gw.state.store.sends("fb-cut").await.unwrap();
    assert_eq!(sends[0].outcome.as_str(), "timeout");
    assert_eq!(sends[0].accepted_by, None);
    assert_eq!(sends[0].attempts.as_deref(), Some("twilio:unclear"));
    app.gw.stop().await;
}

/// Each provider is tried once at most, in order; when all fail for certain, the answer is a
/// delivery failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_is_tried_once_and_only_in_order() {
    let first = twilio_gateway(ResponseTemplate::new(500)).await;
    let second = vonage_gateway(ResponseTemplate::new(502)).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        twilio(c, &first.uri(), 1_000);
        let f = vonage_fallback(c, &second_url, 1_000);
        c.sms.fallback = vec![f];
    })
    .await;
    let a = send_sms(&app, "fb-twice", ALICE, "445566").await;
    assert_eq!(
        a.code(),
        Reason::DeliveryFailed.default_number(),
        "{:?}",
        a.body
    );
    assert_eq!((requests(&first).await, requests(&second).await), (1, 1));
    let sends = app.gw.state.store.sends("fb-twice").await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].outcome.as_str(), "refused");
    assert_eq!(
        sends[0].attempts.as_deref(),
        Some("twilio:refused vonage:refused")
    );
    app.gw.stop().await;
}

/// The whole send, fallbacks included, stays inside the call's deadline: a slow 5xx, then a
/// silent fallback, and the answer still comes (a delivery timeout) before the call's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_fits_in_the_call_deadline() {
    let first =
        twilio_gateway(ResponseTemplate::new(500).set_delay(Duration::from_millis(700))).await;
    let second = vonage_gateway(vonage_ok().set_delay(Duration::from_secs(60))).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.request_timeout_ms = 1_500;
        c.database.timeout_ms = 1_000;
        c.email.timeout_ms = 1_000;
        twilio(c, &first.uri(), 1_400);
        let f = vonage_fallback(c, &second_url, 1_400);
        c.sms.fallback = vec![f];
    })
    .await;
    let (card_ref, methods) = app
        .enrol_to_yellow("fb-deadline", ALICE, "GOOGLE_PAY")
        .await;
    let started = Instant::now();
    let a = app
        .tsh()
        .send_otp(
            "fb-deadline",
            &card_ref,
            "778899",
            Some(&sms_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        a.code(),
        Reason::DeliveryTimeout.default_number(),
        "{:?}",
        a.body
    );
    assert!(
        elapsed < Duration::from_millis(1_500),
        "answered after {elapsed:?}"
    );
    assert_eq!((requests(&first).await, requests(&second).await), (1, 1));
    let sends = app.gw.state.store.sends("fb-deadline").await.unwrap();
    assert_eq!(sends[0].outcome.as_str(), "timeout");
    assert_eq!(
        sends[0].attempts.as_deref(),
        Some("twilio:refused vonage:timeout")
    );
    app.gw.stop().await;
}

fn smtp_fallback(c: &Config, port: u16) -> EmailConfig {
    let mut f = c.email.clone();
    f.name = "relay-b".into();
    f.host = "127.0.0.1".into();
    f.port = port;
    f.tls = SmtpTls::None;
    f.fallback = Vec::new();
    f
}

/// Two SMTP relays: a refused recipient (550) goes to the second relay; a connection closed
/// after the end of DATA (the first relay may have queued it) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_falls_back_to_the_second_relay_only_after_a_certain_failure() {
    let first = SmtpServer::start().await;
    let second = SmtpServer::start().await;
    first.set_mode(REFUSE_RCPT);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        smtp(c, first.port, 1_000);
        let f = smtp_fallback(c, second.port);
        c.email.fallback = vec![f];
    })
    .await;
    let send = |cid: &'static str, card: TestCard, otp: &'static str| {
        let app = &app;
        async move {
            let (card_ref, methods) = app.enrol_to_yellow(cid, card, "GOOGLE_PAY").await;
            app.tsh()
                .send_otp(
                    cid,
                    &card_ref,
                    otp,
                    Some(&email_method(&methods)),
                    "GOOGLE_PAY",
                )
                .await
                .unwrap()
        }
    };
    let a = send("fb-mail-1", ALICE, "908070").await;
    assert_eq!((a.status, a.body.clone()), (200, json!({})));
    assert_eq!((first.received().len(), second.received().len()), (0, 1));
    let (_, text) = crate::delivery::parse_message(&second.received()[0].data);
    assert!(text.contains("908070"), "{text}");
    let sends = app.gw.state.store.sends("fb-mail-1").await.unwrap();
    assert_eq!(sends[0].accepted_by.as_deref(), Some("relay-b"));
    assert_eq!(
        sends[0].attempts.as_deref(),
        Some("smtp:refused relay-b:accepted")
    );

    first.set_mode(CLOSE_AFTER_DATA);
    let b = send("fb-mail-2", BOB, "605040").await;
    assert_eq!(
        b.code(),
        Reason::DeliveryTimeout.default_number(),
        "{:?}",
        b.body
    );
    assert_eq!(
        second.received().len(),
        1,
        "the second relay got a message the first may have queued"
    );
    let sends = app.gw.state.store.sends("fb-mail-2").await.unwrap();
    assert_eq!(sends[0].attempts.as_deref(), Some("smtp:unclear"));
    first.set_mode(ACCEPT);
    app.gw.stop().await;
}

/// A provider that keeps failing is skipped while its breaker is open (visible in /health and
/// the metrics), then probed once the period is over (the test's clock moves), and closed again
/// by an accepted message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_skipped_then_probed_again() {
    let first = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&first)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted("SM00000000000000000000000000000077"))
        .with_priority(2)
        .mount(&first)
        .await;
    let second = vonage_gateway(vonage_ok()).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        twilio(c, &first.uri(), 1_000);
        c.sms.name = "twilio-breaker".into();
        c.sms.breaker_failures = 2;
        c.sms.breaker_open_seconds = 30;
        let mut f = vonage_fallback(c, &second_url, 1_000);
        f.name = "vonage-breaker".into();
        c.sms.fallback = vec![f];
    })
    .await;
    let attempts = |cid: &'static str| {
        let store = app.gw.state.store.clone();
        async move { store.sends(cid).await.unwrap()[0].attempts.clone().unwrap() }
    };
    for (cid, otp) in [("fb-br-1", "100001"), ("fb-br-2", "100002")] {
        let a = send_sms(&app, cid, ALICE, otp).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(
            attempts(cid).await,
            "twilio-breaker:refused vonage-breaker:accepted"
        );
    }
    // Two failures in a row: open. Visible in /health and /metrics.
    let health = admin_json(&app, "/health").await;
    let providers = health["deliveryProviders"].as_array().unwrap();
    let twilio_health = providers
        .iter()
        .find(|p| p["provider"] == "twilio-breaker")
        .unwrap();
    assert_eq!(twilio_health["state"], "open", "{health}");
    assert_eq!(twilio_health["consecutiveFailures"], 2);
    assert_eq!(twilio_health["channel"], "sms");
    let metrics = reqwest::get(format!("http://{}/metrics", app.gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "issuer_gateway_delivery_breaker_open{channel=\"sms\",provider=\"twilio-breaker\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("issuer_gateway_delivery_attempts_total{channel=\"sms\",provider=\"twilio-breaker\",outcome=\"refused\"} 2"),
        "{metrics}"
    );
    // While open, the first provider is skipped: it sees no request.
    let a = send_sms(&app, "fb-br-3", ALICE, "100003").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(requests(&first).await, 2);
    assert_eq!(
        attempts("fb-br-3").await,
        "twilio-breaker:skipped vonage-breaker:accepted"
    );

    // The period is over: the next send probes it; accepted, it closes.
    app.fx.advance_ms(30_000);
    let health = admin_json(&app, "/health").await;
    let state = health["deliveryProviders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "twilio-breaker")
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "half_open");
    let a = send_sms(&app, "fb-br-4", BOB, "100004").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(requests(&first).await, 3);
    assert_eq!(attempts("fb-br-4").await, "twilio-breaker:accepted");
    let health = admin_json(&app, "/health").await;
    let providers = health["deliveryProviders"].as_array().unwrap();
    let twilio_health = providers
        .iter()
        .find(|p| p["provider"] == "twilio-breaker")
        .unwrap();
    assert_eq!(twilio_health["state"], "closed", "{health}");
    app.gw.stop().await;
}

/// A fallback block is checked like `[sms]`, its problems named by its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_names_the_fallback_at_fault() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    let mut config = fx.config.clone();
    twilio(&mut config, "http://127.0.0.1:9", 1_000);
    let mut f = config.sms.clone();
    f.name = "second".into();
    f.base_url = "ftp://gateway.example".into();
    config.sms.fallback = vec![f];
    let e = issuer_gateway::app::Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.starts_with("sms.fallback[0].base_url:"), "{e}");
}

/// An SMTP fallback relay is checked at start like `[email]`: one that cannot be reached keeps
/// the gateway from starting, named by its block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_the_fallback_relay_at_start() {
    let relay = SmtpServer::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let fx = Fixture::new(&Backend::Sqlite).await;
    let mut config = fx.config.clone();
    smtp(&mut config, relay.port, 1_000);
    let f = smtp_fallback(&config, closed_port);
    config.email.fallback = vec![f];
    let e = issuer_gateway::app::Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.starts_with(&format!(
            "email.fallback[0].host: cannot connect to 127.0.0.1:{closed_port}"
        )),
        "{e}"
    );
}

/// A success without the message's id (HTTP 201, no `sid`) may hide a message taken: the
/// fallback is not tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_without_a_message_id_is_not_sent_again_elsewhere() {
    let first =
        twilio_gateway(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"}))).await;
    let second = vonage_gateway(vonage_ok()).await;
    let second_url = second.uri();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        twilio(c, &first.uri(), 1_000);
        let f = vonage_fallback(c, &second_url, 1_000);
        c.sms.fallback = vec![f];
    })
    .await;
    let a = send_sms(&app, "fb-nosid", ALICE, "314159").await;
    assert_eq!(
        a.code(),
        Reason::DeliveryTimeout.default_number(),
        "{:?}",
        a.body
    );
    assert_eq!((requests(&first).await, requests(&second).await), (1, 0));
    let sends = app.gw.state.store.sends("fb-nosid").await.unwrap();
    assert_eq!(sends[0].attempts.as_deref(), Some("twilio:unclear"));
    app.gw.stop().await;
}
