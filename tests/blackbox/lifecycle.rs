//! Driving TSH (token-lifecycle.md): card changes and operators' actions become life-cycle
//! operations, sent to the simulated inbound TSH in order per card, retried with back-off,
//! refused, confirmed by the notices that come back, or reported unconfirmed. Time is the
//! fixture's clock, moved by hand: a retry is due when the test says so, never by waiting.

use crate::common::*;
use issuer_gateway::config::{Config, Secret};
use issuer_gateway::sim::tsh::{InboundSim, Received, Scripted};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "lifecycle-admin-token";
const WALLET: &str = "APPLE_PAY";

/// A gateway on its fixture, and the simulated inbound TSH it sends to (plain HTTP), whose
/// notices come back to the gateway.
struct Lifecycle {
    fx: Fixture,
    gw: Gateway,
    sim: InboundSim,
}

/// The simulator of a fixture: Thales's key pair made in `dir/thales`.
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

/// The `[tsh]` settings of the tests: the simulator, a short deadline, an admin token.
fn tsh_settings(c: &mut Config, fx_dir: &std::path::Path, sim_url: &str) {
    c.tsh.base_url = sim_url.to_owned();
    c.tsh.timeout_ms = 300;
    c.tsh.max_per_second = 200;
    c.tsh.encryption_cert = Some(fx_dir.join("thales/issuer-pkcs7-cert.pem"));
    c.admin.token = Secret::new(ADMIN_TOKEN);
}

impl Lifecycle {
    async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Lifecycle {
        let mut fx = Fixture::new(&backend).await;
        let (sim, sim_url) = start_sim(&fx).await;
        // `cards import` seals renewals and replacements to Thales's certificate.
        fx.config.tsh.encryption_cert = Some(fx.path().join("thales/issuer-pkcs7-cert.pem"));
        let dir = fx.path().to_owned();
        let gw = fx
            .start(|c| {
                tsh_settings(c, &dir, &sim_url);
                tweak(c);
            })
            .await;
        sim.connect_gateway(gw.tsh.clone());
        Lifecycle { fx, gw, sim }
    }

    fn now(&self) -> i64 {
        self.fx.clock_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The card's reference, from an eligibility call.
async fn card_ref(gw: &Gateway, card: TestCard) -> String {
    let a = gw
        .tsh
        .check_eligibility("lc-ref", card.pan, card.exp, WALLET)
        .await
        .unwrap();
    a.str("issuerCardRefId").unwrap().to_owned()
}

/// A token activated at the gateway (its notice) and known to the simulated TSH.
async fn token(gw: &Gateway, sim: &InboundSim, card_ref: &str, vcid: &str, device: &str) {
    let body = json!({
        "issuerCardRefId": card_ref,
        "virtualCardId": vcid,
        "walletProviderId": WALLET,
        "tokenStorageId": device,
        "isPrimary": true,
        "action": "ACTIVATE",
    });
    let a = gw
        .tsh
        .call("notifyVirtualCardChange", &format!("enrol-{vcid}"), &body)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    sim.add_token(card_ref, vcid, WALLET, device);
}

/// One-line card file changing the status of `card`.
fn status_line(card: TestCard, status: &str) -> String {
    format!(
        "pan,exp,status,product_id\n{},{},{status},P1\n",
        card.pan, card.exp
    )
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

/// What the simulator saw of one request: operation, action, token, reason, HTTP status answered.
type Seen = (String, Option<String>, Option<String>, Option<String>, u16);

async fn ops(gw: &Gateway, card_ref: &str) -> Vec<issuer_gateway::store::OperationRow> {
    gw.state.store.operations_of_card(card_ref).await.unwrap()
}

fn of_card(received: &[Received], card_ref: &str) -> Vec<Seen> {
    received
        .iter()
        .filter(|r| r.card_ref == card_ref)
        .map(|r| {
            (
                r.operation.clone(),
                r.action.clone(),
                r.virtual_card_id.clone(),
                r.reason.clone(),
                r.answered,
            )
        })
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

async fn admin(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: bool,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://{}{path}", gw.admin);
    let mut req = match method {
        "GET" => client.get(&url),
        "PATCH" => client.patch(&url),
        _ => client.post(&url),
    };
    if token {
        req = req.bearer_auth(ADMIN_TOKEN);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

async fn lost_then_found_suspends_and_resumes_only_what_it_suspended(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let card = card_ref(&t.gw, ALICE).await;
    token(&t.gw, &t.sim, &card, "VC-A1", "DEV-1").await;
    token(&t.gw, &t.sim, &card, "VC-A2", "DEV-2").await;
    token(&t.gw, &t.sim, &card, "VC-A3", "DEV-3").await;
    // The wallet suspended the third one itself.
    let a =
        t.gw.tsh
            .notify("wallet-suspend", &card, "VC-A3", "SUSPEND", WALLET, None)
            .await
            .unwrap();
    assert_eq!(a.status, 200);
    t.sim.set_token_status("VC-A3", "SUSPENDED");

    let report = t.fx.import(&status_line(ALICE, "lost")).await;
    assert_eq!(report.operations, counts(&[("updateCardState SUSPEND", 1)]));
    until("the SUSPEND confirmed by its two notices", || async {
        ops(&t.gw, &card)
            .await
            .first()
            .is_some_and(|o| o.state == "confirmed" && o.notices == 2)
    })
    .await;
    let got = of_card(&t.sim.received(), &card);
    assert_eq!(
        got,
        vec![(
            "updateCardState".into(),
            Some("SUSPEND".into()),
            None,
            Some("CARD_LOST".into()),
            200
        )]
    );
    let first = &ops(&t.gw, &card).await[0];
    assert_eq!(t.sim.received()[0].correlation_id, first.correlation_id);
    for v in ["VC-A1", "VC-A2", "VC-A3"] {
        assert_eq!(
            t.gw.state.store.token(v).await.unwrap().unwrap().state,
            "suspended"
        );
    }

    // lost -> stolen: the tokens are suspended already.
    let report = t.fx.import(&status_line(ALICE, "stolen")).await;
    assert!(report.operations.is_empty(), "{:?}", report.operations);

    // Found: only the two tokens the status change suspended are resumed.
    let report = t.fx.import(&status_line(ALICE, "active")).await;
    assert_eq!(report.operations, counts(&[("updateCardState RESUME", 2)]));
    until("both RESUMEs confirmed", || async {
        let o = ops(&t.gw, &card).await;
        o.len() == 3 && o.iter().all(|o| o.state == "confirmed")
    })
    .await;
    let got = of_card(&t.sim.received(), &card);
    assert_eq!(got.len(), 3);
    for (i, v) in ["VC-A1", "VC-A2"].into_iter().enumerate() {
        assert_eq!(
            got[i + 1],
            (
                "updateCardState".into(),
                Some("RESUME".into()),
                Some(v.into()),
                Some("CARD_REACTIVATED".into()),
                200
            )
        );
        assert_eq!(
            t.gw.state.store.token(v).await.unwrap().unwrap().state,
            "active"
        );
    }
    assert_eq!(
        t.gw.state
            .store
            .token("VC-A3")
            .await
            .unwrap()
            .unwrap()
            .state,
        "suspended"
    );
    assert!(t.sim.received().iter().all(|r| r.issuer_id == ISSUER_ID));
    t.gw.stop().await;
}

async fn admin_status_updates_block_then_close(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let card = card_ref(&t.gw, BOB).await;
    let (s, v) = admin(
        &t.gw,
        "PATCH",
        &format!("/cards/{card}"),
        Some(json!({"status": "blocked"})),
        true,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["operationsCreated"], json!(["updateCardState SUSPEND"]));
    let (s, v) = admin(
        &t.gw,
        "PATCH",
        &format!("/cards/{card}"),
        Some(json!({"status": "closed"})),
        true,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["operationsCreated"], json!(["updateCardState DELETE"]));
    until("both operations sent", || async {
        ops(&t.gw, &card).await.iter().all(|o| o.state == "sent")
    })
    .await;
    let got = of_card(&t.sim.received(), &card);
    assert_eq!(
        got,
        vec![
            (
                "updateCardState".into(),
                Some("SUSPEND".into()),
                None,
                Some("CARD_BLOCKED".into()),
                200
            ),
            (
                "updateCardState".into(),
                Some("DELETE".into()),
                None,
                Some("CARD_CLOSED".into()),
                200
            ),
        ]
    );
    // A change of contact details only makes no operation.
    let (s, v) = admin(
        &t.gw,
        "PATCH",
        &format!("/cards/{card}"),
        Some(json!({"language": "fr"})),
        true,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["operationsCreated"], json!([]));
    t.gw.stop().await;
}

async fn retries_back_off_on_5xx_retryable_codes_and_time_outs(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let card = card_ref(&t.gw, ALICE).await;
    t.sim.script([
        Scripted::Status(500),
        Scripted::Code(221),
        Scripted::Delay(Duration::from_millis(1500)),
    ]);
    t.fx.import(&status_line(ALICE, "lost")).await;
    let id = ops(&t.gw, &card).await[0].id;
    let store = t.gw.state.store.clone();
    let mut expected = Vec::new();
    for (n, outcome, backoff) in [
        (1usize, "http_5xx", 1_000i64),
        (2, "retryable_code", 2_000),
        (3, "timeout", 4_000),
    ] {
        until(&format!("attempt {n} recorded"), || async {
            store.operation_attempts(id).await.unwrap().len() == n
        })
        .await;
        expected.push(outcome);
        let op = store.operation(id).await.unwrap().unwrap();
        assert_eq!(op.state, "waiting", "attempt {n}");
        let at = store.operation_attempts(id).await.unwrap()[n - 1].at.0;
        let wait = op.next_attempt_at.0 - at;
        assert!(
            (backoff..=backoff + backoff / 5).contains(&wait),
            "attempt {n}: next after {wait} ms, expected {backoff} ms plus up to a fifth of jitter"
        );
        if n == 3 {
            until("the late answer's request recorded", || async {
                t.sim.received().len() == 3
            })
            .await;
        }
        // Not due a millisecond before its back-off: nothing is sent (checked over several
        // polls of the sender).
        let short = op.next_attempt_at.0 - t.now() - 1;
        t.fx.advance_ms(short);
        tokio::time::sleep(issuer_gateway::lifecycle::sender::POLL * 4).await;
        assert_eq!(
            store.operation_attempts(id).await.unwrap().len(),
            n,
            "attempt {n} retried too early"
        );
        t.fx.advance_ms(1);
    }
    until("accepted at the fourth attempt", || async {
        store.operation(id).await.unwrap().unwrap().state == "sent"
    })
    .await;
    expected.push("accepted");
    let attempts = store.operation_attempts(id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(attempts[0].http_status, Some(500));
    assert_eq!(attempts[1].response_code, Some(221));
    assert_eq!(attempts[2].http_status, None);
    let op = store.operation(id).await.unwrap().unwrap();
    let received = t.sim.received();
    assert_eq!(received.len(), 4);
    assert!(
        received
            .iter()
            .all(|r| r.correlation_id == op.correlation_id),
        "one correlation id across retries"
    );
    // The admin API shows the attempts.
    let (s, v) = admin(&t.gw, "GET", &format!("/operations/{id}"), None, true).await;
    assert_eq!(s, 200);
    assert_eq!(v["attempts"].as_array().unwrap().len(), 4);
    assert_eq!(v["state"], "sent");
    t.gw.stop().await;
}

async fn other_400s_are_refused_at_once_and_release_the_queue(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let card = card_ref(&t.gw, ALICE).await;
    t.sim.script([Scripted::Code(111)]);
    t.fx.import(&status_line(ALICE, "lost")).await;
    t.fx.import(&status_line(ALICE, "closed")).await;
    until("the SUSPEND refused, the DELETE sent", || async {
        let o = ops(&t.gw, &card).await;
        o.len() == 2 && o[0].state == "refused" && o[1].state == "sent"
    })
    .await;
    let o = ops(&t.gw, &card).await;
    assert_eq!(o[0].attempts, 1);
    assert_eq!(t.sim.received().len(), 2);
    let (s, v) = admin(&t.gw, "GET", "/operations?state=refused", None, true).await;
    assert_eq!(s, 200);
    assert_eq!(v["count"], 1);
    assert_eq!(v["operations"][0]["attempts"], json!([]));
    let (_, h) = admin(&t.gw, "GET", "/health", None, false).await;
    assert_eq!(h["operations"]["refused"], 1);
    t.gw.stop().await;
}

async fn one_cards_operations_go_in_order_others_do_not_wait(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let alice = card_ref(&t.gw, ALICE).await;
    let bob = card_ref(&t.gw, BOB).await;
    token(&t.gw, &t.sim, &alice, "VC-O1", "DEV-1").await;
    token(&t.gw, &t.sim, &alice, "VC-O2", "DEV-1").await;
    t.sim.script([Scripted::Status(503)]);
    t.fx.import(&status_line(ALICE, "lost")).await;
    until("the SUSPEND's first attempt", || async {
        t.sim.received().len() == 1
    })
    .await;
    // While the SUSPEND waits for its retry, the card is found again.
    let report = t.fx.import(&status_line(ALICE, "active")).await;
    assert_eq!(report.operations, counts(&[("updateCardState RESUME", 2)]));
    // Another card's operation does not wait for this card's queue.
    t.fx.import(&status_line(BOB, "lost")).await;
    until("BOB's SUSPEND sent", || async {
        ops(&t.gw, &bob)
            .await
            .first()
            .is_some_and(|o| o.state == "sent")
    })
    .await;
    assert_eq!(
        of_card(&t.sim.received(), &alice).len(),
        1,
        "ALICE's RESUMEs wait behind her SUSPEND"
    );
    t.fx.advance_ms(1_200);
    until("ALICE's three operations sent", || async {
        ops(&t.gw, &alice)
            .await
            .iter()
            .all(|o| o.state != "waiting")
    })
    .await;
    let got: Vec<(Option<String>, Option<String>, u16)> = of_card(&t.sim.received(), &alice)
        .into_iter()
        .map(|(_, a, v, _, s)| (a, v, s))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("SUSPEND".into()), None, 503),
            (Some("SUSPEND".into()), None, 200),
            (Some("RESUME".into()), Some("VC-O1".into()), 200),
            (Some("RESUME".into()), Some("VC-O2".into()), 200),
        ]
    );
    t.gw.stop().await;
}

async fn sent_without_notices_is_unconfirmed_after_the_window(backend: Backend) {
    let t = Lifecycle::start(backend, |c| c.tsh.confirm_within_minutes = 15).await;
    // No token: TSH sends no notice back.
    let card = card_ref(&t.gw, CLAIRE).await;
    t.fx.import(&status_line(CLAIRE, "stolen")).await;
    until("sent", || async {
        ops(&t.gw, &card).await[0].state == "sent"
    })
    .await;
    let (_, v) = admin(&t.gw, "GET", "/operations?state=unconfirmed", None, true).await;
    assert_eq!(v["count"], 0);
    t.fx.advance_ms(15 * 60_000 + 1);
    let (_, v) = admin(&t.gw, "GET", "/operations?state=unconfirmed", None, true).await;
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(v["operations"][0]["issuerCardRefId"], card);
    assert_eq!(v["operations"][0]["unconfirmed"], true);
    let (_, h) = admin(&t.gw, "GET", "/health", None, false).await;
    assert_eq!(h["operations"]["unconfirmed"], 1, "{h}");
    let metrics = reqwest::get(format!("http://{}/metrics", t.gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("issuer_gateway_lifecycle_operations_unconfirmed"),
        "{metrics}"
    );
    // (One recorder for the whole test process: the labels are checked, not the counts.)
    assert!(
        metrics.contains(
            "issuer_gateway_lifecycle_operations{kind=\"updateCardState SUSPEND\",state=\"sent\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "issuer_gateway_tsh_attempts_total{operation=\"updateCardState\",outcome=\"accepted\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("issuer_gateway_lifecycle_oldest_waiting_seconds"),
        "{metrics}"
    );
    // Thales's certificate (made for three years) expiring: /health warns 30 days ahead.
    assert_eq!(h["certificatesExpiringSoon"], json!([]));
    t.fx.advance_ms((3 * 365 - 20) * 86_400_000);
    let (_, h) = admin(&t.gw, "GET", "/health", None, false).await;
    let soon = h["certificatesExpiringSoon"].as_array().unwrap();
    assert_eq!(soon.len(), 1, "{h}");
    assert_eq!(soon[0]["setting"], "tsh.encryption_cert");
    assert!(
        (19..=21).contains(&soon[0]["daysLeft"].as_i64().unwrap()),
        "{h}"
    );
    t.gw.stop().await;
}

async fn gives_up_after_the_window_and_is_retried_on_demand(backend: Backend) {
    let t = Lifecycle::start(backend, |c| c.tsh.give_up_after_minutes = 1).await;
    let card = card_ref(&t.gw, ALICE).await;
    t.sim.script([Scripted::Status(500), Scripted::Status(500)]);
    t.fx.import(&status_line(ALICE, "lost")).await;
    t.fx.import(&status_line(ALICE, "closed")).await;
    let id = ops(&t.gw, &card).await[0].id;
    until("first attempt", || async {
        t.gw.state.store.operation_attempts(id).await.unwrap().len() == 1
    })
    .await;
    t.fx.advance_ms(61_000);
    until(
        "failed after the window, the DELETE behind it sent",
        || async {
            let o = ops(&t.gw, &card).await;
            o[0].state == "failed" && o[1].state == "sent"
        },
    )
    .await;
    let (_, h) = admin(&t.gw, "GET", "/health", None, false).await;
    assert_eq!(h["operations"]["failed"], 1);
    let (s, _) = admin(
        &t.gw,
        "POST",
        &format!("/operations/{id}/retry"),
        None,
        false,
    )
    .await;
    assert_eq!(s, 401, "a write needs the token");
    let (s, v) = admin(
        &t.gw,
        "POST",
        &format!("/operations/{id}/retry"),
        None,
        true,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    until("sent on retry", || async {
        ops(&t.gw, &card).await[0].state == "sent"
    })
    .await;
    let (s, _) = admin(
        &t.gw,
        "POST",
        &format!("/operations/{id}/retry"),
        None,
        true,
    )
    .await;
    assert_eq!(s, 409, "only a failed operation is retried");
    t.gw.stop().await;
}

async fn not_configured_keeps_operations_waiting_until_it_is(backend: Backend) {
    let fx = Fixture::new(&backend).await;
    let gw = fx.start(|c| c.admin.token = Secret::new(ADMIN_TOKEN)).await;
    let card = card_ref(&gw, ALICE).await;
    fx.import(&status_line(ALICE, "lost")).await;
    let (_, h) = admin(&gw, "GET", "/health", None, false).await;
    assert_eq!(h["operations"]["tsh"], "not_configured");
    assert_eq!(h["operations"]["waiting"], 1);
    fx.advance_ms(3_600_000);
    assert_eq!(ops(&gw, &card).await[0].state, "waiting");
    assert_eq!(ops(&gw, &card).await[0].attempts, 0);
    gw.stop().await;
    // Configured: it goes out.
    let (sim, sim_url) = start_sim(&fx).await;
    let dir = fx.path().to_owned();
    let gw = fx.start(|c| tsh_settings(c, &dir, &sim_url)).await;
    until("sent once configured", || async {
        ops(&gw, &card).await[0].state == "sent"
    })
    .await;
    assert_eq!(sim.received().len(), 1);
    gw.stop().await;
}

/// `n` Luhn-valid 16-digit PANs, distinct.
fn pans(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("499999{:09}", i);
            let digits: Vec<u32> = body.chars().map(|c| c.to_digit(10).unwrap()).collect();
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(k, d)| {
                    if k % 2 == 0 {
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

async fn two_instances_share_the_log_without_double_sends(backend: Backend) {
    let fx = Fixture::new(&backend).await;
    let (sim, sim_url) = start_sim(&fx).await;
    let dir = fx.path().to_owned();
    let gw1 = fx.start(|c| tsh_settings(c, &dir, &sim_url)).await;
    let gw2 = fx.start(|c| tsh_settings(c, &dir, &sim_url)).await;
    let cards = pans(150);
    fx.import(&card_file(&cards, "active")).await;
    let report = fx.import(&card_file(&cards, "lost")).await;
    assert_eq!(
        report.operations,
        counts(&[("updateCardState SUSPEND", 150)])
    );
    until("150 operations received", || async {
        sim.received().len() >= 150
    })
    .await;
    until("all sent", || async {
        gw1.state
            .store
            .operations_in_state("sent", issuer_gateway::domain::Millis(0), 1000)
            .await
            .unwrap()
            .len()
            == 150
    })
    .await;
    let received = sim.received();
    assert_eq!(received.len(), 150, "no operation sent twice");
    let mut ids: Vec<&str> = received.iter().map(|r| r.correlation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 150);
    gw1.stop().await;
    gw2.stop().await;
}

async fn thousand_lost_cards_reach_tsh_within_a_minute(backend: Backend) {
    let fx = Fixture::new(&backend).await;
    let (sim, sim_url) = start_sim(&fx).await;
    let dir = fx.path().to_owned();
    let gw = fx
        .start(|c| {
            tsh_settings(c, &dir, &sim_url);
            c.tsh.max_per_second = 50;
        })
        .await;
    let cards = pans(1000);
    fx.import(&card_file(&cards, "active")).await;
    // `cards import`, the command an operator runs, prints the counts.
    let config = write_config(fx.path(), &fx.config.database.url);
    let file = write_card_file(fx.path(), &card_file(&cards, "lost"));
    let started = Instant::now();
    let out = bin()
        .args(["cards", "import", "--config"])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    // The command ran on the system's clock: the gateway's catches up.
    fx.advance_ms(120_000);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("added 0, updated 1000, rejected 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("life-cycle operations created: 1000 (updateCardState SUSPEND 1000)"),
        "{stdout}"
    );
    until("1000 operations received", || async {
        sim.accepted().len() >= 1000
    })
    .await;
    let took = started.elapsed();
    eprintln!("1000 lost cards: imported and received by TSH in {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    let received = sim.received();
    assert_eq!(received.len(), 1000);
    let mut refs: Vec<&str> = received.iter().map(|r| r.card_ref.as_str()).collect();
    refs.sort_unstable();
    refs.dedup();
    assert_eq!(refs.len(), 1000, "one SUSPEND per card");
    assert!(received.iter().all(
        |r| r.action.as_deref() == Some("SUSPEND") && r.reason.as_deref() == Some("CARD_LOST")
    ));
    gw.stop().await;
}

async fn operators_act_on_one_token_and_on_a_device(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let alice = card_ref(&t.gw, ALICE).await;
    let bob = card_ref(&t.gw, BOB).await;
    token(&t.gw, &t.sim, &alice, "VC-D1", "PHONE-LOST").await;
    token(&t.gw, &t.sim, &alice, "VC-D2", "WATCH").await;
    token(&t.gw, &t.sim, &bob, "VC-D3", "PHONE-LOST").await;

    // The fraud desk suspends one token.
    let action = json!({"action": "SUSPEND", "virtualCardId": "VC-D2", "reason": "FRAUD_SUSPECTED", "operator": "fraud desk"});
    let (s, _) = admin(
        &t.gw,
        "POST",
        &format!("/cards/{alice}/token-actions"),
        Some(action.clone()),
        false,
    )
    .await;
    assert_eq!(s, 401);
    let (s, v) = admin(
        &t.gw,
        "POST",
        &format!("/cards/{alice}/token-actions"),
        Some(action),
        true,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let id = v["operationId"].as_i64().unwrap();
    until("confirmed", || async {
        t.gw.state.store.operation(id).await.unwrap().unwrap().state == "confirmed"
    })
    .await;
    assert_eq!(
        t.gw.state
            .store
            .token("VC-D2")
            .await
            .unwrap()
            .unwrap()
            .state,
        "suspended"
    );
    let (s, v) = admin(&t.gw, "GET", &format!("/operations/{id}"), None, true).await;
    assert_eq!(s, 200);
    assert_eq!(v["operator"], "fraud desk");
    assert_eq!(v["reason"], "FRAUD_SUSPECTED");
    assert_eq!(v["virtualCardId"], "VC-D2");
    // A RESUME names its token; a reason and an operator are required.
    for (body, status) in [
        (
            json!({"action": "RESUME", "reason": "x", "operator": "o"}),
            400,
        ),
        (json!({"action": "SUSPEND", "operator": "o"}), 400),
        (json!({"action": "SUSPEND", "reason": "x"}), 400),
        (
            json!({"action": "PAUSE", "reason": "x", "operator": "o"}),
            400,
        ),
        (
            json!({"action": "SUSPEND", "virtualCardId": "VC-D3", "reason": "x", "operator": "o"}),
            404,
        ),
    ] {
        let (s, v) = admin(
            &t.gw,
            "POST",
            &format!("/cards/{alice}/token-actions"),
            Some(body),
            true,
        )
        .await;
        assert_eq!(s, status, "{v}");
    }

    // "I lost my phone": every token on the device, across cards.
    let (s, v) = admin(
        &t.gw,
        "POST",
        "/devices/PHONE-LOST/token-actions",
        Some(json!({"action": "SUSPEND", "reason": "CUSTOMER_REQUEST", "operator": "agent 7", "verification": "security questions"})),
        true,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["operationIds"].as_array().unwrap().len(), 2);
    until("both device tokens suspended", || async {
        let a =
            t.gw.state
                .store
                .token("VC-D1")
                .await
                .unwrap()
                .unwrap()
                .state
                == "suspended";
        let b =
            t.gw.state
                .store
                .token("VC-D3")
                .await
                .unwrap()
                .unwrap()
                .state
                == "suspended";
        a && b
    })
    .await;
    let device: Vec<(String, Option<String>)> = t
        .sim
        .received()
        .iter()
        .filter(|r| r.reason.as_deref() == Some("CUSTOMER_REQUEST"))
        .map(|r| (r.card_ref.clone(), r.virtual_card_id.clone()))
        .collect();
    assert_eq!(device.len(), 2);
    assert!(device.contains(&(alice.clone(), Some("VC-D1".into()))));
    assert!(device.contains(&(bob.clone(), Some("VC-D3".into()))));
    assert_eq!(t.sim.token("VC-D2").unwrap().status, "SUSPENDED");
    let (s, _) = admin(
        &t.gw,
        "POST",
        "/devices/NO-SUCH-DEVICE/token-actions",
        Some(json!({"action": "SUSPEND", "reason": "x", "operator": "o"})),
        true,
    )
    .await;
    assert_eq!(s, 404);

    // The tokens view, refreshed from TSH: Thales's own state beside ours.
    let (s, v) = admin(
        &t.gw,
        "GET",
        &format!("/cards/{alice}/tokens?refresh=true"),
        None,
        true,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let states: Vec<(String, String, String)> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["virtualCardId"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
                t["thalesState"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&("VC-D2".into(), "suspended".into(), "SUSPENDED".into())),
        "{states:?}"
    );
    assert_eq!(v["pendingOperations"], json!([]));
    // The card lost now: its return to active resumes none of these (operators suspended them).
    t.fx.import(&status_line(ALICE, "lost")).await;
    let report = t.fx.import(&status_line(ALICE, "active")).await;
    assert!(report.operations.is_empty(), "{:?}", report.operations);
    t.gw.stop().await;
}

async fn a_waiting_operation_can_be_cancelled(backend: Backend) {
    let fx = Fixture::new(&backend).await;
    let gw = fx.start(|c| c.admin.token = Secret::new(ADMIN_TOKEN)).await;
    let card = card_ref(&gw, ALICE).await;
    fx.import(&status_line(ALICE, "lost")).await;
    let id = ops(&gw, &card).await[0].id;
    let (s, v) = admin(&gw, "GET", &format!("/cards/{card}/tokens"), None, true).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["pendingOperations"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["pendingOperations"][0]["state"], "waiting");
    let (s, _) = admin(
        &gw,
        "POST",
        &format!("/operations/{id}/cancel"),
        Some(json!({})),
        true,
    )
    .await;
    assert_eq!(s, 400, "the operator is required");
    let (s, v) = admin(
        &gw,
        "POST",
        &format!("/operations/{id}/cancel"),
        Some(json!({"operator": "ops on call"})),
        true,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "cancelled");
    assert_eq!(v["lastError"], "cancelled by ops on call");
    let (s, _) = admin(
        &gw,
        "POST",
        &format!("/operations/{id}/cancel"),
        Some(json!({"operator": "x"})),
        true,
    )
    .await;
    assert_eq!(s, 409);
    let (s, _) = admin(
        &gw,
        "POST",
        "/operations/999999/cancel",
        Some(json!({"operator": "x"})),
        true,
    )
    .await;
    assert_eq!(s, 404);
    gw.stop().await;
    // Configured afterwards: the cancelled one never goes, the next one does.
    fx.import(&status_line(ALICE, "closed")).await;
    let (sim, sim_url) = start_sim(&fx).await;
    let dir = fx.path().to_owned();
    let gw = fx.start(|c| tsh_settings(c, &dir, &sim_url)).await;
    until("the DELETE sent", || async {
        ops(&gw, &card).await[1].state == "sent"
    })
    .await;
    let got = of_card(&sim.received(), &card);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.as_deref(), Some("DELETE"));
    gw.stop().await;
}

/// Everything the database holds, as text (SQLite: its files; PostgreSQL: every row).
async fn database_text(fx: &Fixture) -> String {
    match &fx.pg {
        None => {
            let mut out = Vec::new();
            for f in ["gateway.db", "gateway.db-wal"] {
                out.extend(std::fs::read(fx.path().join(f)).unwrap_or_default());
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        Some(db) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let mut out = String::new();
            for (t,) in tables {
                let (text,): (Option<String>,) =
                    sqlx::query_as(&format!("SELECT string_agg(t::text, ' ') FROM {t} t"))
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                out.push_str(&text.unwrap_or_default());
            }
            out
        }
    }
}

async fn renewal_sends_update_card_with_the_two_expiries(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let card = card_ref(&t.gw, ALICE).await;
    token(&t.gw, &t.sim, &card, "VC-R1", "DEV-1").await;
    let report =
        t.fx.import("pan,exp,status,product_id\n4111111111111111,1231,active,VISA_PLATINUM\n")
            .await;
    assert_eq!(report.operations, counts(&[("updateCard", 1)]));
    until("the updateCard confirmed by its UPDATE notice", || async {
        ops(&t.gw, &card).await[0].state == "confirmed"
    })
    .await;
    let got = t.sim.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].operation, "updateCard");
    assert_eq!(got[0].card_ref, card);
    let f = got[0].fpan.clone().expect("fpanDetails opened by TSH");
    assert_eq!(
        (
            f.old_fpan.as_str(),
            f.old_exp.as_str(),
            f.new_fpan.as_str(),
            f.new_exp.as_str()
        ),
        (ALICE.pan, "1229", ALICE.pan, "1231")
    );
    let op = &ops(&t.gw, &card).await[0];
    assert!(
        op.fpan_details.is_none(),
        "the sealed fpanDetails is gone once finished"
    );
    assert_eq!(
        t.gw.state
            .store
            .token("VC-R1")
            .await
            .unwrap()
            .unwrap()
            .state,
        "active"
    );
    // The same file again: nothing changed, nothing sent.
    let report =
        t.fx.import("pan,exp,status,product_id\n4111111111111111,1231,active,VISA_PLATINUM\n")
            .await;
    assert!(report.operations.is_empty());
    let now = t.now();
    let Lifecycle { fx, gw, .. } = t;
    gw.stop().await;

    // Without Thales's certificate a renewal cannot be told to TSH: the card is renewed, and
    // the import says TSH was not told.
    let mut fx_config = fx.config.clone();
    fx_config.tsh.encryption_cert = None;
    let file = write_card_file(
        fx.path(),
        "pan,exp,status,product_id\n4111111111111111,0132,active,VISA_PLATINUM\n",
    );
    let report = issuer_gateway::card_file::import_cards_at(
        &fx_config,
        &file,
        issuer_gateway::domain::Millis(now),
    )
    .await
    .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.renewals_not_told, vec![2]);
    assert!(report.operations.is_empty());
}

async fn replacement_moves_the_tokens_with_one_update_card(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let card = card_ref(&t.gw, ALICE).await;
    token(&t.gw, &t.sim, &card, "VC-P1", "DEV-1").await;
    token(&t.gw, &t.sim, &card, "VC-P2", "DEV-2").await;
    const NEW_PAN: &str = "4000000000000002";
    let row = format!(
        "pan,exp,status,product_id,replaces_pan\n{NEW_PAN},0131,active,VISA_PLATINUM,{}\n",
        ALICE.pan
    );
    let report = t.fx.import(&row).await;
    assert_eq!(
        (report.added, report.updated),
        (1, 0),
        "{:?}",
        report.rejected
    );
    assert_eq!(
        report.operations,
        counts(&[("updateCard", 1)]),
        "one updateCard, no DELETE"
    );
    until("the updateCard confirmed", || async {
        let o = ops(&t.gw, &card).await;
        o.len() == 1 && o[0].state == "confirmed" && o[0].notices == 2
    })
    .await;
    let got = t.sim.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].operation.as_str(), got[0].card_ref.as_str()),
        ("updateCard", card.as_str())
    );
    let f = got[0].fpan.clone().unwrap();
    assert_eq!(
        (
            f.old_fpan.as_str(),
            f.old_exp.as_str(),
            f.new_fpan.as_str(),
            f.new_exp.as_str()
        ),
        (ALICE.pan, "1229", NEW_PAN, "0131")
    );
    // The tokens stay with the reference, now the new card's; none was deleted.
    for v in ["VC-P1", "VC-P2"] {
        let tk = t.gw.state.store.token(v).await.unwrap().unwrap();
        assert_eq!(
            (tk.card_ref.as_str(), tk.state.as_str()),
            (card.as_str(), "active")
        );
        assert_eq!(t.sim.token(v).unwrap().status, "RESUMED");
    }
    // The new PAN is answered with the same reference; the old one as a card no longer usable.
    let a =
        t.gw.tsh
            .check_eligibility("lc-new", NEW_PAN, "0131", WALLET)
            .await
            .unwrap();
    assert_eq!(
        (a.status, a.str("issuerCardRefId")),
        (200, Some(card.as_str())),
        "{:?}",
        a.body
    );
    let a =
        t.gw.tsh
            .check_eligibility("lc-old", ALICE.pan, ALICE.exp, WALLET)
            .await
            .unwrap();
    assert_ne!(a.status, 200, "{:?}", a.body);
    // Neither PAN anywhere in the database.
    let text = database_text(&t.fx).await;
    for pan in [ALICE.pan, NEW_PAN] {
        assert!(!text.contains(pan), "a PAN is in the database");
    }
    // The same row again is an update of the new card: nothing more.
    let report = t.fx.import(&row).await;
    assert_eq!(
        (report.added, report.updated),
        (0, 1),
        "{:?}",
        report.rejected
    );
    assert!(report.operations.is_empty());
    // Replacing a card nobody has is refused.
    let report =
        t.fx.import(
            "pan,exp,status,product_id,replaces_pan\n4012888888881881,0131,active,P1,6011111111111117\n",
        )
        .await;
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].1.contains("replaces_pan"),
        "{:?}",
        report.rejected
    );
    t.gw.stop().await;
}

async fn full_import_closes_absent_cards_within_its_guard(backend: Backend) {
    let t = Lifecycle::start(backend, |_| {}).await;
    let frank = card_ref(&t.gw, FRANK).await;
    let bob = card_ref(&t.gw, BOB).await;
    token(&t.gw, &t.sim, &frank, "VC-F1", "DEV-F").await;
    let full = |csv: &str, max_closed: Option<u64>| {
        let file = write_card_file(t.fx.path(), csv);
        let config = t.fx.config.clone();
        let now = issuer_gateway::domain::Millis(t.now());
        async move {
            issuer_gateway::card_file::import_cards_with(
                &config,
                &file,
                now,
                Some(issuer_gateway::card_file::Full { max_closed }),
            )
            .await
        }
    };
    // Every card but FRANK: one card closed, within 1% of the registry (rounded up).
    let without_frank: String = CARD_FILE
        .lines()
        .filter(|l| !l.starts_with(FRANK.pan))
        .map(|l| format!("{l}\n"))
        .collect();
    let report = full(&without_frank, None).await.unwrap();
    assert_eq!(report.closed, 1);
    assert_eq!(report.operations, counts(&[("updateCardState DELETE", 1)]));
    until("FRANK's tokens deleted at TSH", || async {
        t.gw.state
            .store
            .token("VC-F1")
            .await
            .unwrap()
            .unwrap()
            .state
            == "deleted"
    })
    .await;
    assert_eq!(
        of_card(&t.sim.received(), &frank),
        vec![(
            "updateCardState".into(),
            Some("DELETE".into()),
            None,
            Some("CARD_CLOSED".into()),
            200
        )]
    );
    // A file of one card would close four: refused, nothing changed.
    let only_alice = format!(
        "pan,exp,status,product_id\n{},{},active,VISA_PLATINUM\n",
        ALICE.pan, ALICE.exp
    );
    let err = full(&only_alice, None).await.unwrap_err().to_string();
    assert!(
        err.contains("--max-closed") && err.contains("nothing was changed"),
        "{err}"
    );
    let card = t.gw.state.store.card_by_ref(&bob).await.unwrap().unwrap();
    assert_eq!(card.status.as_str(), "active");
    assert!(ops(&t.gw, &bob).await.is_empty());
    // Told so: they are closed.
    let report = full(&only_alice, Some(4)).await.unwrap();
    assert_eq!(report.closed, 4);
    assert_eq!(report.operations, counts(&[("updateCardState DELETE", 4)]));
    t.gw.stop().await;
}

/// Mutual TLS to the simulated TSH: the gateway presents `tsh.client_cert` and trusts only
/// `tsh.server_ca`; a client without a certificate gets no answer.
async fn operations_go_over_mutual_tls(backend: Backend) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert, key)
    };
    let leaf = |ca: &(rcgen::Certificate, KeyPair), name: &str, sans: &[&str]| {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca.0, &ca.1).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let mut fx = Fixture::new(&backend).await;
    fx.config.tsh.encryption_cert = Some(fx.path().join("thales/issuer-pkcs7-cert.pem"));
    let pki = fx.path().join("tsh-pki");
    std::fs::create_dir_all(&pki).unwrap();
    let thales_ca = ca("Thales test server CA");
    let issuer_ca = ca("Issuer client CA (pinned by Thales)");
    let (server_chain, server_key) = leaf(&thales_ca, "tsh", &["localhost"]);
    let (client_chain, client_key) = leaf(&issuer_ca, "issuer", &[]);
    let write = |name: &str, text: &str| {
        let path = pki.join(name);
        issuer_gateway::data_keys::write_private_file(&path, text.as_bytes()).unwrap();
        path
    };
    let sim_tls = issuer_gateway::config::TlsConfig {
        cert_chain: write("server.pem", &server_chain),
        private_key: write("server-key.pem", &server_key),
        client_ca: write("issuer-ca.pem", &issuer_ca.0.pem()),
    };
    let thales = fx.path().join("thales");
    issuer_gateway::keys::generate(&thales, 2048, "thales test").unwrap();
    let key = std::fs::read_to_string(thales.join("issuer-pkcs7-key.pem")).unwrap();
    let sim = InboundSim::new(&key, Duration::ZERO).unwrap();
    let (addr, _task) = sim
        .listen("127.0.0.1:0".parse().unwrap(), Some(&sim_tls))
        .await
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let client_cert = write("client.pem", &client_chain);
    let client_key_file = write("client-key.pem", &client_key);
    let server_ca = write("thales-ca.pem", &thales_ca.0.pem());
    let dir = fx.path().to_owned();
    let gw = fx
        .start(|c| {
            tsh_settings(c, &dir, &base);
            c.tsh.timeout_ms = 2_000;
            c.tsh.client_cert = Some(client_cert.clone());
            c.tsh.client_key = Some(client_key_file.clone());
            c.tsh.server_ca = Some(server_ca.clone());
        })
        .await;
    sim.connect_gateway(gw.tsh.clone());
    let card = card_ref(&gw, ALICE).await;
    token(&gw, &sim, &card, "VC-T1", "DEV-1").await;
    fx.import(&status_line(ALICE, "lost")).await;
    until("the SUSPEND confirmed over mutual TLS", || async {
        ops(&gw, &card).await[0].state == "confirmed"
    })
    .await;
    assert_eq!(sim.accepted().len(), 1);
    // Without the client certificate the handshake fails: nothing reaches TSH.
    let no_cert = TshClientFor::without_identity(&server_ca);
    assert!(
        no_cert
            .post(format!("{base}/updateCardState"))
            .send()
            .await
            .is_err()
    );
    assert_eq!(sim.received().len(), 1);
    gw.stop().await;
}

struct TshClientFor;

impl TshClientFor {
    fn without_identity(ca: &std::path::Path) -> reqwest::Client {
        issuer_gateway::install_crypto_provider();
        let pem = std::fs::read(ca).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    }
}

/// `issuer-gateway tokens ...`: the same operations from the command line.
async fn tokens_command_makes_and_lists_operations(backend: Backend) {
    let fx = Fixture::new(&backend).await;
    let (sim, sim_url) = start_sim(&fx).await;
    let gw = fx.start(|_| {}).await;
    let card = card_ref(&gw, BOB).await;
    token(&gw, &sim, &card, "VC-C1", "DEV-C").await;
    gw.stop().await;
    let config = write_config(fx.path(), &fx.config.database.url);
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&[
        "tokens",
        "suspend",
        "--card",
        &card,
        "--token",
        "VC-C1",
        "--reason",
        "FRAUD_SUSPECTED",
        "--operator",
        "fraud desk",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("updateCardState SUSPEND of token VC-C1, by fraud desk: waiting"),
        "{out}"
    );
    assert!(out.contains("tsh.base_url is not set"), "{out}");
    let (code, _, err) = run(&["tokens", "resume", "--card", &card, "--reason", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--token: required with resume"), "{err}");
    let (code, _, err) = run(&[
        "tokens",
        "delete",
        "--card",
        "no-such-card",
        "--reason",
        "x",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--card: no card"), "{err}");
    let (code, out, _) = run(&["tokens", "list", "--card", &card]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("VC-C1") && out.contains("updateCardState SUSPEND") && out.contains("waiting"),
        "{out}"
    );
    // Once [tsh] is set, serve sends it; list --refresh shows TSH's own state beside ours.
    // (The command ran on the system's clock: the gateway's catches up.)
    fx.advance_ms(120_000);
    let dir = fx.path().to_owned();
    let gw = fx.start(|c| tsh_settings(c, &dir, &sim_url)).await;
    until("sent", || async {
        ops(&gw, &card).await[0].state == "sent"
    })
    .await;
    gw.stop().await;
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[tsh]\nbase_url = \"{sim_url}\"\nencryption_cert = \"{}\"\n",
        fx.path().join("thales/issuer-pkcs7-cert.pem").display()
    ));
    std::fs::write(&config, text).unwrap();
    let (code, out, err) = run(&["tokens", "list", "--card", &card, "--refresh"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("TSH: SUSPENDED"), "{out}");
    assert_eq!(
        sim.received()
            .iter()
            .filter(|r| r.operation == "updateCardState")
            .count(),
        1
    );
}

crate::on_both_backends!(
    tokens_command_makes_and_lists_operations,
    operations_go_over_mutual_tls,
    full_import_closes_absent_cards_within_its_guard,
    renewal_sends_update_card_with_the_two_expiries,
    replacement_moves_the_tokens_with_one_update_card,
    lost_then_found_suspends_and_resumes_only_what_it_suspended,
    admin_status_updates_block_then_close,
    retries_back_off_on_5xx_retryable_codes_and_time_outs,
    other_400s_are_refused_at_once_and_release_the_queue,
    one_cards_operations_go_in_order_others_do_not_wait,
    sent_without_notices_is_unconfirmed_after_the_window,
    gives_up_after_the_window_and_is_retried_on_demand,
    not_configured_keeps_operations_waiting_until_it_is,
    two_instances_share_the_log_without_double_sends,
    thousand_lost_cards_reach_tsh_within_a_minute,
    operators_act_on_one_token_and_on_a_device,
    a_waiting_operation_can_be_cancelled,
);

/// The real server killed with SIGKILL again and again during a stream of card changes: every
/// change answered 200 has its operation in the log, none is half-written, and after a clean
/// start every operation reaches TSH, each under one correlation id (a retry of an attempt cut
/// short keeps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_card_changes_loses_no_operation() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    std::fs::write(dir.path().join("cards.csv"), CARD_FILE).unwrap();
    let out = bin()
        .args(["cards", "import", "--config"])
        .arg(&config)
        .arg(dir.path().join("cards.csv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    issuer_gateway::keys::generate(&dir.path().join("thales"), 2048, "thales test").unwrap();
    let key = std::fs::read_to_string(dir.path().join("thales/issuer-pkcs7-key.pem")).unwrap();
    let sim = InboundSim::new(&key, Duration::ZERO).unwrap();
    let (sim_addr, _task) = sim
        .listen("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
    );
    text.push_str(&format!(
        "\n[tsh]\nbase_url = \"http://{sim_addr}\"\ntimeout_ms = 500\nmax_per_second = 200\nencryption_cert = \"{}\"\n",
        dir.path().join("thales/issuer-pkcs7-cert.pem").display()
    ));
    std::fs::write(&config, text).unwrap();
    let cert = std::fs::read_to_string(dir.path().join("keys/issuer-pkcs7-cert.pem")).unwrap();

    let cards = [ALICE, BOB, CLAIRE, FRANK];
    let mut refs = Vec::new();
    let answered: Arc<Vec<AtomicUsize>> =
        Arc::new(cards.iter().map(|_| AtomicUsize::new(0)).collect());
    let rounds = 4usize;
    for round in 0..rounds {
        let served = Served::start(&config);
        let tsh = issuer_gateway::sim::Tsh::new(
            &format!("http://{}/issuer/igwapi/v2.0", served.api),
            ISSUER_ID,
            &cert,
        )
        .unwrap();
        if refs.is_empty() {
            for c in cards {
                let a = tsh
                    .check_eligibility("crash-ref", c.pan, c.exp, WALLET)
                    .await
                    .unwrap();
                refs.push(a.str("issuerCardRefId").unwrap().to_owned());
            }
        }
        sim.connect_gateway(tsh.clone());
        let done = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(tokio::sync::Notify::new());
        let kill_after = 20 + 7 * round;
        let mut workers = Vec::new();
        for (w, card) in refs.iter().cloned().enumerate() {
            let (answered, done, reached) = (answered.clone(), done.clone(), reached.clone());
            let admin = served.admin.clone();
            workers.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let url = format!("http://{admin}/cards/{card}");
                let Ok(resp) = client.get(&url).bearer_auth(ADMIN_TOKEN).send().await else {
                    return;
                };
                let Ok(now) = resp.json::<Value>().await else {
                    return;
                };
                let mut lost = now["status"] == "lost";
                loop {
                    let next = if lost { "active" } else { "lost" };
                    let result = client
                        .patch(&url)
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&json!({ "status": next }))
                        .send()
                        .await;
                    let Ok(resp) = result else { return }; // the server is gone
                    if resp.status() != 200 {
                        return;
                    }
                    let Ok(body) = resp.json::<Value>().await else {
                        return;
                    };
                    if next == "lost" {
                        assert_eq!(
                            body["operationsCreated"],
                            json!(["updateCardState SUSPEND"])
                        );
                        answered[w].fetch_add(1, Ordering::SeqCst);
                    }
                    lost = !lost;
                    if done.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                        reached.notify_one();
                    }
                }
            }));
        }
        reached.notified().await;
        served.kill();
        for w in workers {
            w.await.unwrap();
        }
    }

    // A clean start: everything in the log reaches TSH.
    let served = Served::start(&config);
    sim.connect_gateway(
        issuer_gateway::sim::Tsh::new(
            &format!("http://{}/issuer/igwapi/v2.0", served.api),
            ISSUER_ID,
            &cert,
        )
        .unwrap(),
    );
    let store = issuer_gateway::store::Store::connect(
        &format!("sqlite://{}", dir.path().join("gw.db").display()),
        1,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let mut total = 0;
    for (w, card) in refs.iter().enumerate() {
        let ops = store.operations_of_card(card).await.unwrap();
        let answered = answered[w].load(Ordering::SeqCst);
        assert!(
            ops.len() >= answered && ops.len() <= answered + rounds,
            "card {w}: {answered} SUSPENDs answered, {} in the log",
            ops.len()
        );
        assert!(
            ops.iter().all(|o| o.action.as_deref() == Some("SUSPEND")
                && o.reason.as_deref() == Some("CARD_LOST"))
        );
        total += ops.len();
    }
    // The lease of an attempt cut short by the kill runs out (tsh.timeout_ms + 10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = 0;
        for card in &refs {
            waiting += store
                .operations_of_card(card)
                .await
                .unwrap()
                .iter()
                .filter(|o| o.state == "waiting")
                .count();
        }
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} operations still waiting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = sim.received();
    let mut ids: Vec<&str> = received.iter().map(|r| r.correlation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        total,
        "every operation reached TSH, each under its own correlation id"
    );
    for card in &refs {
        for o in store.operations_of_card(card).await.unwrap() {
            assert_eq!(o.state, "sent", "{o:?}");
            assert!(ids.contains(&o.correlation_id.as_str()));
        }
    }
    eprintln!(
        "{rounds} SIGKILLs: {total} operations in the log, {} requests received by TSH ({} distinct)",
        received.len(),
        ids.len()
    );
    served.stop();
}

/// `simulate --tsh-listen`: the simulated inbound TSH as a command, for a bank's own tests.
#[test]
fn simulate_tsh_listen_serves_the_inbound_api() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    keyed_config(dir.path());
    issuer_gateway::keys::generate(&dir.path().join("thales"), 2048, "thales test").unwrap();
    let help = bin().args(["simulate", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("--tsh-listen") && help.contains("--tsh-key"),
        "{help}"
    );
    let mut child = bin()
        .args(["simulate", "--tsh-listen", "127.0.0.1:0", "--tsh-key"])
        .arg(dir.path().join("thales/issuer-pkcs7-key.pem"))
        .args([
            "--target",
            "http://127.0.0.1:9",
            "--issuer-id",
            ISSUER_ID,
            "--cert",
        ])
        .arg(dir.path().join("keys/issuer-pkcs7-cert.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("simulated TSH inbound API on http://127.0.0.1:"),
        "{line}"
    );
    // Without --tsh-key it does not start.
    let out = bin()
        .args([
            "simulate",
            "--tsh-listen",
            "127.0.0.1:0",
            "--target",
            "http://x",
            "--issuer-id",
            ISSUER_ID,
            "--cert",
            "c.pem",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tsh-key"));
}
