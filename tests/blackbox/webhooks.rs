//! Webhooks to the bank's own systems (docs/webhooks.md): a receiver that verifies every
//! signature with the official Standard Webhooks library (`standardwebhooks`) gets each event
//! once per occurrence, in order per card, after it was down for a while; a receiver holding
//! another secret refuses them all; dead letters are redelivered on demand; a SIGKILL loses no
//! event; two instances deliver each event once. Retries are made due by moving the gateways'
//! clock, never by waiting for them.

use crate::common::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use issuer_gateway::config::{Config, Secret, SigningKey, WebhookConfig};
use issuer_gateway::sim::tsh::{InboundSim, Scripted};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "webhooks-admin-token";
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WALLET: &str = "GOOGLE_PAY";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    id: String,
    verified: bool,
    /// What the receiver answered.
    answered: u16,
    event_type: String,
    card_ref: String,
    body: Value,
}

struct ReceiverState {
    verifier: standardwebhooks::Webhook,
    up: AtomicBool,
    delay_ms: AtomicU64,
    got: Mutex<Vec<Got>>,
}

/// A bank's receiver: verifies the signature with the official library (401 when it does not
/// verify), then answers 204 when up, 503 when down.
#[derive(Clone)]
pub(crate) struct Receiver {
    state: Arc<ReceiverState>,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) async fn start(secret: &str, up: bool) -> Receiver {
        let state = Arc::new(ReceiverState {
            verifier: standardwebhooks::Webhook::new(secret).unwrap(),
            up: AtomicBool::new(up),
            delay_ms: AtomicU64::new(0),
            got: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            state,
            url: format!("http://{addr}/hooks"),
        }
    }

    fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }

    /// The events it accepted (answered 2xx), in the order they came.
    pub(crate) fn accepted(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| (200..300).contains(&g.answered))
            .collect()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let verified = state.verifier.verify(&body, &headers).is_ok();
    let answered = if !verified {
        StatusCode::UNAUTHORIZED
    } else if state.up.load(Ordering::SeqCst) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.got.lock().unwrap().push(Got {
        id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        verified,
        answered: answered.as_u16(),
        event_type: parsed["type"].as_str().unwrap_or("").to_owned(),
        card_ref: parsed["data"]["issuerCardRefId"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        body: parsed,
    });
    answered
}

/// A `[[webhooks]]` entry to `url`, signing with `secrets` (the first is the new one).
pub(crate) fn hook(
    name: &str,
    url: &str,
    secrets: &[&str],
    give_up_after_minutes: u32,
) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url: url.into(),
        allow_http: true,
        keys: secrets
            .iter()
            .map(|s| SigningKey::from_secret(s).unwrap())
            .collect(),
        events: Vec::new(),
        timeout_ms: 1_000,
        give_up_after_minutes,
    }
}

/// Polls `cond` (no sleeping to win: it waits for what the test expects, or fails after 30 s).
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin_with(gw, method, path, body, Some(ADMIN_TOKEN)).await
}

async fn admin_with(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://{}{path}", gw.admin);
    let mut req = match method {
        "GET" => client.get(&url),
        "PATCH" => client.patch(&url),
        _ => client.post(&url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// Every delivery the admin API lists in `state` (empty: any).
async fn deliveries(gw: &Gateway, state: &str) -> Vec<Value> {
    let (s, v) = admin(
        gw,
        "GET",
        &format!("/webhooks/events?state={state}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["deliveries"].as_array().unwrap().clone()
}

/// The simulated inbound TSH (Thales's key pair made in `dir/thales`), on plain HTTP.
async fn start_sim(fx: &Fixture) -> (InboundSim, String) {
    let thales = fx.path().join("thales");
    if !thales.exists() {
        issuer_gateway::keys::generate(&thales, 2048, "thales test").unwrap();
    }
    let key = std::fs::read_to_string(thales.join("issuer-pkcs7-key.pem")).unwrap();
    let sim = InboundSim::new(&key, Duration::ZERO).unwrap();
    let (addr, _task) = sim
        .listen("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    (sim, format!("http://{addr}"))
}

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

fn twilio(c: &mut Config, base_url: &str) {
    c.sms.provider = issuer_gateway::config::SmsProvider::Twilio;
    c.sms.base_url = base_url.into();
    c.sms.account_sid = SID.into();
    c.sms.auth_token = Secret::new("tw-auth-token");
    c.sms.from = "+15005550006".into();
    c.sms.timeout_ms = 2_000;
}

/// Moves the clock past every back-off (5 minutes at most) until `cond` holds.
async fn advance_until<F, Fut>(fx: &Fixture, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        fx.advance_ms(301_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The six event types, made for one card while the receiver is down, then delivered in the
/// order they were made once it is back: each once, each signature verified.
async fn every_event_type_arrives_once_in_order_after_the_receiver_was_down(backend: Backend) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let sms = MockServer::start().await;
    // The first SMS is refused by the provider (otp.failed), the next accepted (otp.sent).
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"code": 21211, "message": "invalid number", "status": 400})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&sms)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "SM00000000000000000000000000000001", "status": "queued"}),
        ))
        .with_priority(2)
        .mount(&sms)
        .await;
    let receiver = Receiver::start(SECRET, false).await;
    let fx = Fixture::new(&backend).await;
    let (sim, sim_url) = start_sim(&fx).await;
    let dir = fx.path().to_owned();
    let gw = fx
        .start(|c| {
            twilio(c, &sms.uri());
            c.tsh.base_url = sim_url.clone();
            c.tsh.timeout_ms = 300;
            c.tsh.encryption_cert = Some(dir.join("thales/issuer-pkcs7-cert.pem"));
            c.admin.token = Secret::new(ADMIN_TOKEN);
            c.webhooks = vec![hook("core", &receiver.url, &[SECRET], 1440)];
        })
        .await;
    let app = TestApp { fx, gw };
    let cid = "wh-enrol-1";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, WALLET).await;
    let sms_method = methods
        .iter()
        .find(|m| m.1 == "sms")
        .map(|m| m.0.clone())
        .unwrap();
    let a = app
        .tsh()
        .send_otp(cid, &card_ref, "483920", Some(&sms_method), WALLET)
        .await
        .unwrap();
    assert_eq!(a.status, 400, "{:?}", a.body);
    let b = app
        .tsh()
        .send_otp(cid, &card_ref, "483920", Some(&sms_method), WALLET)
        .await
        .unwrap();
    assert_eq!(b.status, 200, "{:?}", b.body);
    let n = app
        .tsh()
        .call(
            "notifyVirtualCardChange",
            cid,
            &json!({"issuerCardRefId": card_ref, "virtualCardId": "vc-wh-1", "walletProviderId": WALLET,
                    "tokenStorageId": "dev-1", "isPrimary": true, "action": "ACTIVATE"}),
        )
        .await
        .unwrap();
    assert_eq!(n.status, 200, "{:?}", n.body);
    // TSH refuses the suspension the lost card makes: lifecycle.operation_failed.
    sim.script([Scripted::Code(111)]);
    let (s, v) = admin(
        &app.gw,
        "PATCH",
        &format!("/cards/{card_ref}"),
        Some(json!({"status": "lost"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let store = app.gw.state.store.clone();
    until("the suspension refused", || async {
        store
            .operations_of_card(&card_ref)
            .await
            .unwrap()
            .iter()
            .any(|o| o.state == "refused")
    })
    .await;
    // Down: the head of the card's queue is tried and answered 503, nothing behind it goes.
    // Recorded by the gateway (its next attempt is set from the clock when the answer came),
    // not only seen by the receiver, before the clock moves.
    until("a first attempt while down", || async {
        deliveries(&app.gw, "waiting")
            .await
            .iter()
            .any(|d| d["lastStatus"] == 503)
    })
    .await;
    app.fx.advance_ms(1_300);
    until("a second attempt while down", || async {
        receiver.got().len() >= 2
    })
    .await;
    let waiting = deliveries(&app.gw, "waiting").await;
    assert_eq!(waiting.len(), 6, "{waiting:?}");
    // The head waits for its next attempt; the five behind it are parked (not looked at by the
    // sender until the head is delivered).
    let parked: Vec<bool> = waiting.iter().rev().map(|d| d["parked"] == true).collect();
    assert_eq!(parked, [false, true, true, true, true, true], "{waiting:?}");
    assert!(waiting[0]["nextAttemptAt"].is_null());
    assert!(receiver.got().iter().all(|g| g.answered == 503));
    assert!(
        receiver
            .got()
            .iter()
            .all(|g| g.event_type == "enrolment.decided"),
        "only the head of the card's queue is tried"
    );
    let (_, health) = admin(&app.gw, "GET", "/health", None).await;
    assert_eq!(health["webhooks"]["endpoints"][0]["name"], "core");
    assert_eq!(health["webhooks"]["endpoints"][0]["waiting"], 6);

    receiver.set_up(true);
    advance_until(&app.fx, "all six delivered", || async {
        receiver.accepted().len() >= 6
    })
    .await;
    until("recorded as delivered", || async {
        deliveries(&app.gw, "delivered").await.len() == 6
    })
    .await;
    let got = receiver.got();
    assert!(got.iter().all(|g| g.verified), "every signature verifies");
    let accepted = receiver.accepted();
    let types: Vec<&str> = accepted.iter().map(|g| g.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "enrolment.decided",
            "otp.failed",
            "otp.sent",
            "token.state_changed",
            "card.status_changed",
            "lifecycle.operation_failed"
        ],
        "once each, in the order they happened"
    );
    let mut ids: Vec<&str> = accepted.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "one webhook-id per event");
    // The tries while down carried the same webhook-id as the delivery that succeeded.
    assert!(got.iter().all(|g| ids.contains(&g.id.as_str())));
    for g in &accepted {
        assert_eq!(g.card_ref, card_ref);
        assert_eq!(g.body["data"]["last4"], &ALICE.pan[ALICE.pan.len() - 4..]);
        assert!(g.body["timestamp"].as_str().unwrap().ends_with('Z'));
        let text = g.body.to_string();
        assert!(!text.contains(ALICE.pan), "no PAN in an event");
        assert!(!text.contains("483920"), "no OTP in an event");
        assert!(
            !text.contains("7700900"),
            "no full phone number in an event: {text}"
        );
    }
    let by_type =
        |t: &str| accepted.iter().find(|g| g.event_type == t).unwrap().body["data"].clone();
    assert_eq!(by_type("enrolment.decided")["decision"], "yellow");
    assert_eq!(by_type("otp.sent")["outcome"], "accepted");
    assert_eq!(by_type("otp.failed")["outcome"], "refused");
    assert!(
        by_type("otp.sent")["destination"]
            .as_str()
            .unwrap()
            .contains('*')
    );
    assert_eq!(by_type("token.state_changed")["stateAfter"], "active");
    assert_eq!(by_type("card.status_changed")["statusAfter"], "lost");
    assert_eq!(by_type("lifecycle.operation_failed")["state"], "refused");
    // Read by id on the admin API.
    let (s, one) = admin(
        &app.gw,
        "GET",
        &format!("/webhooks/events/{}", accepted[0].id),
        None,
    )
    .await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["body"], accepted[0].body);
    assert_eq!(one["deliveries"][0]["state"], "delivered");
    let metrics = reqwest::get(format!("http://{}/metrics", app.gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "issuer_gateway_webhook_deliveries_total{endpoint=\"core\",outcome=\"delivered\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("issuer_gateway_webhook_lag_seconds{endpoint=\"core\"}"));
    app.gw.stop().await;
}

/// A receiver holding another secret refuses every request (the signature does not verify):
/// nothing is taken as delivered. During a rotation (`secrets = [new, old]`), a receiver that
/// still holds the old secret verifies the header's second signature.
async fn a_bad_secret_is_detected_and_rotation_signs_with_both(backend: Backend) {
    let new = issuer_gateway::config::new_secret([9; 32]);
    let wrong = Receiver::start(&new, true).await;
    let old_holder = Receiver::start(SECRET, true).await;
    let fx = Fixture::new(&backend).await;
    let wrong_url = wrong.url.clone();
    let old_url = old_holder.url.clone();
    let gw = fx
        .start(|c| {
            c.admin.token = Secret::new(ADMIN_TOKEN);
            c.webhooks = vec![
                // Signs with SECRET only: the receiver that holds `new` must refuse it.
                hook("wrong", &wrong_url, &[SECRET], 1440),
                hook("rotating", &old_url, &[&new, SECRET], 1440),
            ];
        })
        .await;
    let app = TestApp { fx, gw };
    app.enrol_to_yellow("wh-secret", BOB, WALLET).await;
    until("the rotating receiver got the event", || async {
        !old_holder.accepted().is_empty()
    })
    .await;
    until("the wrong-secret receiver refused it", || async {
        !wrong.got().is_empty()
    })
    .await;
    assert!(old_holder.got().iter().all(|g| g.verified));
    let wrong_got = wrong.got();
    assert!(wrong_got.iter().all(|g| !g.verified && g.answered == 401));
    // The receivers answered; the gateway records each answer just after it, so wait for it.
    let delivery = |endpoint: &'static str| {
        let gw = &app.gw;
        async move {
            let path = format!("/webhooks/events?endpoint={endpoint}");
            let (_, v) = admin(gw, "GET", &path, None).await;
            v["deliveries"][0].clone()
        }
    };
    until("the refusal is recorded", || async {
        delivery("wrong").await["lastStatus"] == 401
    })
    .await;
    assert_eq!(delivery("wrong").await["state"], "waiting");
    until("the rotating delivery is recorded", || async {
        delivery("rotating").await["state"] == "delivered"
    })
    .await;
    app.gw.stop().await;
}

/// Past `give_up_after_minutes` a delivery is dead-lettered (the card's next event goes); the
/// admin API lists it, and redelivers it, and a delivered one, with the same webhook-id.
async fn dead_letters_are_listed_and_redelivered(backend: Backend) {
    let receiver = Receiver::start(SECRET, false).await;
    let fx = Fixture::new(&backend).await;
    let url = receiver.url.clone();
    let gw = fx
        .start(|c| {
            c.admin.token = Secret::new(ADMIN_TOKEN);
            c.webhooks = vec![hook("deadletter", &url, &[SECRET], 1)];
        })
        .await;
    let app = TestApp { fx, gw };
    app.enrol_to_yellow("wh-dead", ALICE, WALLET).await;
    until("a first attempt", || async { !receiver.got().is_empty() }).await;
    advance_until(&app.fx, "dead-lettered", || async {
        deliveries(&app.gw, "dead").await.len() == 1
    })
    .await;
    let dead = deliveries(&app.gw, "dead").await;
    let id = dead[0]["messageId"].as_str().unwrap().to_owned();
    assert_eq!(dead[0]["type"], "enrolment.decided");
    let (_, health) = admin(&app.gw, "GET", "/health", None).await;
    assert_eq!(health["webhooks"]["endpoints"][0]["dead"], 1);
    // A write: the bearer token is needed.
    let (s, _) = admin_with(
        &app.gw,
        "POST",
        &format!("/webhooks/events/{id}/redeliver"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = admin(
        &app.gw,
        "POST",
        "/webhooks/events/msg_nosuchevent/redeliver",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = admin(
        &app.gw,
        "POST",
        &format!("/webhooks/events/{id}/redeliver?endpoint=other"),
        None,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    receiver.set_up(true);
    let (s, v) = admin(
        &app.gw,
        "POST",
        &format!("/webhooks/events/{id}/redeliver"),
        None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["redelivering"], 1);
    until("redelivered", || async { receiver.accepted().len() == 1 }).await;
    assert_eq!(receiver.accepted()[0].id, id, "the same webhook-id");
    until("recorded as delivered", || async {
        deliveries(&app.gw, "delivered").await.len() == 1
    })
    .await;
    // A delivered event can be sent again too (a receiver that lost it).
    let (s, _) = admin(
        &app.gw,
        "POST",
        &format!("/webhooks/events/{id}/redeliver"),
        None,
    )
    .await;
    assert_eq!(s, 202);
    until("sent again", || async { receiver.accepted().len() == 2 }).await;
    assert!(receiver.accepted().iter().all(|g| g.id == id && g.verified));
    app.gw.stop().await;
}

pub(crate) fn pans(n: usize) -> Vec<String> {
    // Luhn-valid test numbers from one BIN.
    (0..n)
        .map(|i| {
            let body = format!("499998{:09}", i);
            let digits: Vec<u32> = body.chars().map(|c| c.to_digit(10).unwrap()).collect();
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(j, d)| {
                    if j % 2 == 0 {
                        let x = d * 2;
                        if x > 9 { x - 9 } else { x }
                    } else {
                        *d
                    }
                })
                .sum();
            format!("{body}{}", (10 - sum % 10) % 10)
        })
        .collect()
}

fn card_file(pans: &[String], status: &str) -> String {
    let mut csv = String::from("pan,exp,status,product_id\n");
    for p in pans {
        csv.push_str(&format!("{p},1230,{status},P1\n"));
    }
    csv
}

/// Two gateways on one database: every event delivered once, never twice.
async fn two_instances_deliver_each_event_once(backend: Backend) {
    let receiver = Receiver::start(SECRET, true).await;
    let fx = Fixture::new(&backend).await;
    let url = receiver.url.clone();
    let gw1 = fx
        .start(|c| c.webhooks = vec![hook("pair", &url, &[SECRET], 1440)])
        .await;
    let gw2 = fx
        .start(|c| c.webhooks = vec![hook("pair", &url, &[SECRET], 1440)])
        .await;
    let cards = pans(100);
    fx.import(&card_file(&cards, "active")).await;
    fx.import(&card_file(&cards, "blocked")).await;
    until("100 events received", || async {
        receiver.accepted().len() >= 100
    })
    .await;
    until("all recorded as delivered", || async {
        gw1.state
            .store
            .webhook_deliveries("delivered", "", "", 1000)
            .await
            .unwrap()
            .len()
            == 100
    })
    .await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 100, "no event delivered twice");
    let mut ids: Vec<&str> = accepted.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert!(
        accepted
            .iter()
            .all(|g| g.verified && g.event_type == "card.status_changed")
    );
    gw1.stop().await;
    gw2.stop().await;
}

crate::on_both_backends!(
    every_event_type_arrives_once_in_order_after_the_receiver_was_down,
    a_bad_secret_is_detected_and_rotation_signs_with_both,
    dead_letters_are_listed_and_redelivered,
    two_instances_deliver_each_event_once,
);

/// SIGKILL of a real `serve` while events are being delivered: after a restart every event of
/// every answered change arrives, in order per card; an attempt the kill interrupted is made
/// again with the same webhook-id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_event() {
    let receiver = Receiver::start(SECRET, true).await;
    // Slow answers: some deliveries are in flight when the process dies.
    receiver.state.delay_ms.store(150, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[webhooks]]\nname = \"core\"\nurl = \"{}\"\nallow_http = true\nsecret = \"{SECRET}\"\nevents = [\"card.status_changed\"]\ntimeout_ms = 1000\n",
        receiver.url
    ));
    let text = text.replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    std::fs::write(dir.path().join("cards.csv"), CARD_FILE).unwrap();
    let out = bin()
        .args(["cards", "import", "--config"])
        .arg(&config)
        .arg(dir.path().join("cards.csv"))
        .output()
        .unwrap();
    assert!(out.status.success());

    let served = Served::start(&config);
    let client = reqwest::Client::new();
    let cards = [ALICE, BOB];
    let cert = std::fs::read_to_string(dir.path().join("keys/issuer-pkcs7-cert.pem")).unwrap();
    let tsh = issuer_gateway::sim::Tsh::new(
        &format!("http://{}/issuer/igwapi/v2.0", served.api),
        ISSUER_ID,
        &cert,
    )
    .unwrap();
    let mut refs = Vec::new();
    for card in cards {
        let a = tsh
            .check_eligibility("wh-kill", card.pan, card.exp, WALLET)
            .await
            .unwrap();
        refs.push(a.str("issuerCardRefId").unwrap().to_owned());
    }
    // Status changes answered 200 (each one committed with its event), alternating cards.
    let statuses = ["blocked", "active"];
    let mut answered = Vec::new();
    for i in 0..20 {
        let card_ref = &refs[i % 2];
        let status = statuses[(i / 2) % 2];
        let resp = client
            .patch(format!("http://{}/cards/{card_ref}", served.admin))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "status": status }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        answered.push((card_ref.clone(), status));
    }
    until("some delivered", || async {
        receiver.accepted().len() >= 3
    })
    .await;
    served.kill();
    let before_restart = receiver.got().len();
    let served = Served::start(&config);
    until("all 20 events after the restart", || async {
        let mut ids: Vec<String> = receiver.accepted().into_iter().map(|g| g.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() == 20
    })
    .await;
    assert!(
        receiver.got().len() > before_restart,
        "delivered by the restarted gateway"
    );
    let accepted = receiver.accepted();
    assert!(accepted.iter().all(|g| g.verified));
    // In order per card: each card's statuses as they were answered (a repeat of the
    // interrupted attempt, with its webhook-id, is the only duplicate allowed).
    for card_ref in &refs {
        let mut seen: Vec<(String, String)> = Vec::new();
        for g in accepted.iter().filter(|g| &g.card_ref == card_ref) {
            let entry = (
                g.id.clone(),
                g.body["data"]["statusAfter"].as_str().unwrap().to_owned(),
            );
            if seen.last() != Some(&entry) && !seen.contains(&entry) {
                seen.push(entry);
            }
        }
        let statuses_seen: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
        let expected: Vec<&str> = answered
            .iter()
            .filter(|(c, _)| c == card_ref)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(statuses_seen, expected, "card {card_ref}");
    }
    served.stop();
}

/// `webhooks new-secret` prints a secret the configuration and the official library accept, a
/// new one each time; `--help` says what to do with it.
#[test]
fn new_secret_prints_a_usable_secret() {
    let run = || {
        let out = bin().args(["webhooks", "new-secret"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    assert!(a.starts_with("whsec_"), "{a}");
    assert_eq!(SigningKey::from_secret(&a).unwrap().bytes().len(), 32);
    assert!(standardwebhooks::Webhook::new(&a).is_ok());
    for args in [
        vec!["webhooks", "--help"],
        vec!["webhooks", "new-secret", "--help"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage") && text.contains("secret"), "{text}");
    }
}

/// `serve` refuses a `[[webhooks]]` entry it cannot use, naming the entry and the key, and
/// never quoting a secret.
#[test]
fn serve_refuses_a_bad_entry_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[webhooks]]\nname = \"core\"\nurl = \"http://events.bank.example/tsh\"\nsecret = \"whsec_c2hvcnQ=\"\nevents = [\"otp.lost\"]\n",
    );
    std::fs::write(&config, text).unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "webhooks[0].url: must be https://",
        "webhooks[0].secret: holds 5 bytes",
        "webhooks[0].events: 'otp.lost' is not an event type",
    ] {
        assert!(stderr.contains(needle), "missing {needle} in {stderr}");
    }
    assert!(!stderr.contains("c2hvcnQ"), "the secret is never quoted");
}
