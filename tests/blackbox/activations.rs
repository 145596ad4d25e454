//! Options C and D (token-lifecycle.md, section 5): the bank's app and customer service as ID&V
//! methods of yellow answers, the app API that activates a waiting token (one RESUME, completed
//! by the ACTIVATE notice that comes back), each of its refusals, and an agent's activation
//! through the admin API. TSH is the simulated inbound side; time is the fixture's clock.

use crate::common::*;
use issuer_gateway::config::{AppApiConfig, BankAppWallet, Config, Secret};
use issuer_gateway::domain::{IdvKind, Reason};
use issuer_gateway::sim::tsh::{InboundSim, Scripted};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const APP_TOKEN: &str = "app-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "activations-admin-token";
const WALLET: &str = "APPLE_PAY";

/// A gateway with the app API, both new methods and the simulated inbound TSH.
struct Activations {
    fx: Fixture,
    gw: Gateway,
    sim: InboundSim,
    sim_url: String,
}

fn settings(c: &mut Config, dir: &std::path::Path, sim_url: &str) {
    c.tsh.base_url = sim_url.to_owned();
    c.tsh.encryption_cert = Some(dir.join("thales/issuer-pkcs7-cert.pem"));
    c.tsh.timeout_ms = 300;
    c.tsh.max_per_second = 200;
    c.admin.token = Secret::new(ADMIN_TOKEN);
    c.idv.channel_preference = vec![
        IdvKind::BankApp,
        IdvKind::Sms,
        IdvKind::Email,
        IdvKind::CustomerService,
    ];
    c.idv.bank_app.enabled = true;
    c.idv.bank_app.value = "Test Bank".into();
    c.idv.bank_app.wallets.insert(
        "APPLE_PAY".into(),
        BankAppWallet {
            source: Some("1234567890".into()),
            platform: Some("IOS".into()),
        },
    );
    c.idv.bank_app.wallets.insert(
        "GOOGLE_PAY".into(),
        BankAppWallet {
            source: Some("com.testbank.app".into()),
            platform: Some("ANDROID".into()),
        },
    );
    c.idv.customer_service.enabled = true;
    c.idv.customer_service.value = "+44 20 7946 0000".into();
    c.idv
        .customer_service
        .values
        .insert("fr".into(), "+33 1 23 45 67 89".into());
    c.app = Some(AppApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Secret::new(APP_TOKEN),
        tls: None,
        max_body_bytes: 1024,
        request_timeout_ms: 5000,
        max_connections: 16,
        card_limit: 50,
        card_limit_window_minutes: 60,
    });
}

impl Activations {
    async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Activations {
        let fx = Fixture::new(&backend).await;
        let thales = fx.path().join("thales");
        issuer_gateway::keys::generate(&thales, 2048, "thales test").unwrap();
        let key = std::fs::read_to_string(thales.join("issuer-pkcs7-key.pem")).unwrap();
        let sim = InboundSim::new(&key, Duration::ZERO).unwrap();
        let (addr, _task) = sim
            .listen("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let sim_url = format!("http://{addr}");
        let dir = fx.path().to_owned();
        let gw = fx
            .start(|c| {
                settings(c, &dir, &sim_url);
                tweak(c);
            })
            .await;
        sim.connect_gateway(gw.tsh.clone());
        Activations {
            fx,
            gw,
            sim,
            sim_url,
        }
    }

    /// Eligibility and a digitization that steps up: the card's reference and the answer.
    async fn enrol(&self, cid: &str, card: TestCard, wallet: &str) -> (String, Value) {
        let a = self
            .gw
            .tsh
            .check_eligibility(cid, card.pan, card.exp, wallet)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
        let d = self
            .gw
            .tsh
            .request_digitization(
                cid,
                card.pan,
                card.exp,
                wallet,
                json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}}),
            )
            .await
            .unwrap();
        assert_eq!(d.status, 200, "{:?}", d.body);
        (card_ref, d.body)
    }

    /// A call to the app API: status and JSON body.
    async fn app(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("http://{}{path}", self.gw.app_api.unwrap());
        let mut req = if method == "GET" {
            client.get(&url)
        } else {
            client.post(&url)
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

    async fn activate(&self, card_ref: &str, wallet: &str, vcid: Option<&str>) -> (u16, Value) {
        let mut body = json!({
            "issuerCardRefId": card_ref,
            "walletProviderId": wallet,
            "verification": "biometric",
        });
        if let Some(v) = vcid {
            body["virtualCardId"] = json!(v);
        }
        self.app("POST", "/v1/activations", Some(body), Some(APP_TOKEN))
            .await
    }

    async fn enrolment_state(&self, cid: &str) -> String {
        self.gw
            .state
            .store
            .enrolment(cid)
            .await
            .unwrap()
            .unwrap()
            .state
    }

    /// The RESUMEs the simulated TSH accepted for the card.
    fn resumes(&self, card_ref: &str) -> Vec<issuer_gateway::sim::tsh::Received> {
        self.sim
            .accepted()
            .into_iter()
            .filter(|r| r.card_ref == card_ref && r.action.as_deref() == Some("RESUME"))
            .collect()
    }
}

/// Polls `cond` until it holds (fails after 30 s): waits for what the test expects.
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

fn kinds(body: &Value) -> Vec<String> {
    methods(body).into_iter().map(|(_, t, _)| t).collect()
}

async fn methods_appear_in_yellow_answers_as_configured(backend: Backend) {
    let t = Activations::start(backend, |_| {}).await;
    // Apple Pay has an entry: the bank's app first, with its source and platform.
    let (card_ref, body) = t.enrol("m-apple", ALICE, WALLET).await;
    assert_eq!(
        kinds(&body),
        ["bank_app", "sms", "email", "customer_service"],
        "{body}"
    );
    let list = body["idvMethodList"].as_array().unwrap();
    assert_eq!(list[0]["value"], "Test Bank");
    assert_eq!(list[0]["source"], "1234567890");
    assert_eq!(list[0]["platform"], "IOS");
    assert_eq!(list[3]["value"], "+44 20 7946 0000");
    assert!(list[1].get("source").is_none());
    // Samsung Pay has no entry: no bank-app method.
    let (_, body) = t.enrol("m-samsung", ALICE, "SAMSUNG_PAY").await;
    assert_eq!(kinds(&body), ["sms", "email", "customer_service"], "{body}");
    // The number to call in the card's language.
    let (_, body) = t.enrol("m-claire", CLAIRE, "GOOGLE_PAY").await;
    let list = body["idvMethodList"].as_array().unwrap();
    assert_eq!(kinds(&body), ["bank_app", "email", "customer_service"]);
    assert_eq!(list[0]["platform"], "ANDROID");
    assert_eq!(list[2]["value"], "+33 1 23 45 67 89");
    // sendOTP naming the bank's app or customer service: unknown_method.
    let unknown =
        t.gw.state
            .config
            .response_codes
            .number(Reason::UnknownMethod);
    let offered = methods(&t.enrol("m-otp", ALICE, WALLET).await.1);
    for (id, kind, _) in offered
        .iter()
        .filter(|(_, k, _)| k != "sms" && k != "email")
    {
        let a =
            t.gw.tsh
                .send_otp("m-otp", &card_ref, "123456", Some(id), WALLET)
                .await
                .unwrap();
        assert_eq!(a.status, 400, "{kind}: {:?}", a.body);
        assert_eq!(a.code(), unknown, "{kind}: {:?}", a.body);
    }
    // Without otpMethodId the first OTP method is used, never the app.
    let a =
        t.gw.tsh
            .send_otp("m-otp", &card_ref, "123456", None, WALLET)
            .await
            .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    // A card with no OTP destination on file: customer service (listed) remains.
    let (_, body) = t.enrol("m-frank", FRANK, "SAMSUNG_PAY").await;
    assert_eq!(body["levelOfTrust"], "yellow", "{body}");
    assert_eq!(kinds(&body), ["customer_service"]);
    t.gw.stop().await;
}

async fn customer_service_replaces_red_when_the_policy_says_so(backend: Backend) {
    let only_otp = |c: &mut Config| {
        c.idv.channel_preference = vec![IdvKind::BankApp, IdvKind::Sms, IdvKind::Email];
    };
    let t = Activations::start(backend.clone(), only_otp).await;
    let (_, body) = t.enrol("f-red", FRANK, "SAMSUNG_PAY").await;
    assert_eq!(body["levelOfTrust"], "red", "{body}");
    t.gw.stop().await;
    let t = Activations::start(backend, |c| {
        only_otp(c);
        c.policy.when_no_otp_method = "customer_service".into();
    })
    .await;
    let (_, body) = t.enrol("f-cs", FRANK, "SAMSUNG_PAY").await;
    assert_eq!(body["levelOfTrust"], "yellow", "{body}");
    assert_eq!(kinds(&body), ["customer_service"]);
    // The app alone is not an OTP method: customer service is added beside it.
    let (_, body) = t.enrol("f-app", FRANK, WALLET).await;
    assert_eq!(kinds(&body), ["bank_app", "customer_service"]);
    t.gw.stop().await;
}

async fn an_app_activation_makes_one_resume_and_the_activate_completes_the_enrolment(
    backend: Backend,
) {
    let t = Activations::start(backend, |_| {}).await;
    let (card_ref, _) = t.enrol("c-app", ALICE, WALLET).await;
    // TSH holds the token waiting for step-up; the gateway never heard of it. Its getCardInfo
    // is answered; the RESUME's first attempt meets a 503 (so that it is still waiting, due
    // after its back-off on the test's clock, when the app backend repeats its request).
    t.sim
        .add_inactive_token(&card_ref, "VC-APP-1", WALLET, "DEV-1");
    t.sim.script([Scripted::Normal, Scripted::Status(503)]);
    let (status, body) = t.activate(&card_ref, WALLET, None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["operationId"].as_i64().unwrap();
    let store = t.gw.state.store.clone();
    until("the first attempt recorded", || async {
        store.operation_attempts(id).await.unwrap().len() == 1
    })
    .await;
    // The app backend repeats its request: the same operation, no second RESUME.
    let (status, again) = t.activate(&card_ref, WALLET, None).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["operationId"].as_i64(), Some(id));
    let ops = store.operations_of_card(&card_ref).await.unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    t.fx.advance_ms(2_000);
    until("the enrolment completed", || async {
        t.enrolment_state("c-app").await == "complete"
    })
    .await;
    let resumes = t.resumes(&card_ref);
    assert_eq!(resumes.len(), 1, "{resumes:?}");
    assert_eq!(resumes[0].virtual_card_id.as_deref(), Some("VC-APP-1"));
    assert_eq!(resumes[0].reason.as_deref(), Some("CARDHOLDER_VERIFIED"));
    let op = t.gw.state.store.operation(id).await.unwrap().unwrap();
    assert_eq!(op.state, "confirmed");
    assert_eq!(op.verification.as_deref(), Some("biometric"));
    let token = t.gw.state.store.token("VC-APP-1").await.unwrap().unwrap();
    assert_eq!(token.state, "active");
    let (status, read) = t
        .app(
            "GET",
            &format!("/v1/activations/{id}"),
            None,
            Some(APP_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["operationId"].as_i64(), Some(id));
    assert_eq!(read["state"], "confirmed");
    assert_eq!(read["enrolmentState"], "complete");
    // Once complete, a further request is refused.
    let (status, body) = t.activate(&card_ref, WALLET, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("enrolment_completed")),
        "{body}"
    );
    assert_eq!(t.resumes(&card_ref).len(), 1);
    t.gw.stop().await;
}

async fn each_refusal_answers_its_status(backend: Backend) {
    let t = Activations::start(backend, |c| {
        if let Some(app) = c.app.as_mut() {
            app.card_limit = 5;
        }
    })
    .await;
    let err = |b: &Value| b["error"].as_str().map(str::to_owned);
    let (alice, _) = t.enrol("r-alice", ALICE, WALLET).await;
    // Bad or missing token.
    let body = json!({"issuerCardRefId": alice, "walletProviderId": WALLET, "verification": "pin"});
    for token in [None, Some("wrong-token-0123456789")] {
        let (s, b) = t
            .app("POST", "/v1/activations", Some(body.clone()), token)
            .await;
        assert_eq!((s, err(&b)), (401, Some("unauthorized".into())), "{b}");
        let (s, _) = t.app("GET", "/v1/activations/1", None, token).await;
        assert_eq!(s, 401);
    }
    // A card number anywhere: refused, never looked at.
    let pan =
        json!({"issuerCardRefId": ALICE.pan, "walletProviderId": WALLET, "verification": "pin"});
    let (s, b) = t
        .app("POST", "/v1/activations", Some(pan), Some(APP_TOKEN))
        .await;
    assert_eq!((s, err(&b)), (400, Some("pan_refused".into())), "{b}");
    assert!(!b.to_string().contains(ALICE.pan));
    let pan = json!({"issuerCardRefId": alice, "walletProviderId": WALLET, "verification": format!("pin {}", BOB.pan)});
    let (s, b) = t
        .app("POST", "/v1/activations", Some(pan), Some(APP_TOKEN))
        .await;
    assert_eq!((s, err(&b)), (400, Some("pan_refused".into())), "{b}");
    // A body over app.max_body_bytes; a field that is not one.
    let big = json!({"issuerCardRefId": alice, "walletProviderId": WALLET, "verification": "x".repeat(2000)});
    let (s, b) = t
        .app("POST", "/v1/activations", Some(big), Some(APP_TOKEN))
        .await;
    assert_eq!((s, err(&b)), (413, Some("body_too_large".into())), "{b}");
    let odd = json!({"issuerCardRefId": alice, "walletProviderId": WALLET, "verification": "pin", "cvv": "1"});
    let (s, b) = t
        .app("POST", "/v1/activations", Some(odd), Some(APP_TOKEN))
        .await;
    assert_eq!((s, err(&b)), (400, Some("bad_request".into())), "{b}");
    // Unknown card.
    let (s, b) = t.activate("no-such-card", WALLET, None).await;
    assert_eq!((s, err(&b)), (404, Some("unknown_card".into())), "{b}");
    // Nothing to activate: TSH has no INACTIVE token of the card; another wallet's enrolment.
    let (s, b) = t.activate(&alice, WALLET, None).await;
    assert_eq!(
        (s, err(&b)),
        (409, Some("nothing_to_activate".into())),
        "{b}"
    );
    let (s, b) = t.activate(&alice, "GOOGLE_PAY", None).await;
    assert_eq!(
        (s, err(&b)),
        (409, Some("nothing_to_activate".into())),
        "{b}"
    );
    // Two candidates.
    t.sim.add_inactive_token(&alice, "VC-R-1", WALLET, "DEV-1");
    t.sim.add_inactive_token(&alice, "VC-R-2", WALLET, "DEV-2");
    let (s, b) = t.activate(&alice, WALLET, None).await;
    assert_eq!((s, err(&b)), (409, Some("ambiguous".into())), "{b}");
    // A completed enrolment (its token activated by the OTP).
    let (claire, _) = t.enrol("r-claire", CLAIRE, WALLET).await;
    let n =
        t.gw.tsh
            .notify("r-claire", &claire, "VC-CLAIRE", "ACTIVATE", WALLET, None)
            .await
            .unwrap();
    assert_eq!(n.status, 200);
    let (s, b) = t.activate(&claire, WALLET, None).await;
    assert_eq!(
        (s, err(&b)),
        (409, Some("enrolment_completed".into())),
        "{b}"
    );
    // The window passed.
    let (bob, _) = t.enrol("r-bob", BOB, WALLET).await;
    t.sim.add_inactive_token(&bob, "VC-BOB", WALLET, "DEV-3");
    t.fx.advance_ms(31 * 60_000);
    let (s, b) = t.activate(&bob, WALLET, None).await;
    assert_eq!((s, err(&b)), (410, Some("window_passed".into())), "{b}");
    // The card's rate limit (5 per hour here: ALICE has had 3 requests so far).
    let mut last = (0, Value::Null);
    for _ in 0..3 {
        last = t.activate(&alice, WALLET, None).await;
    }
    assert_eq!(
        (last.0, err(&last.1)),
        (429, Some("rate_limited".into())),
        "{}",
        last.1
    );
    // No RESUME was sent for any of these.
    assert!(
        t.sim
            .accepted()
            .iter()
            .all(|r| r.action.as_deref() != Some("RESUME"))
    );
    let (s, b) = t
        .app("GET", "/v1/activations/999", None, Some(APP_TOKEN))
        .await;
    assert_eq!((s, err(&b)), (404, Some("not_found".into())), "{b}");
    let (s, b) = t.app("GET", "/v1/activations", None, Some(APP_TOKEN)).await;
    assert_eq!(
        (s, err(&b)),
        (405, Some("method_not_allowed".into())),
        "{b}"
    );
    // The metrics count the refusals by kind.
    let metrics = reqwest::get(format!("http://{}/metrics", t.gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("issuer_gateway_app_requests_total")
                && l.contains("outcome=\"ambiguous\"")
                && l.contains("route=\"create_activation\"")),
        "{metrics}"
    );
    t.gw.stop().await;
}

async fn a_named_token_is_checked_and_resumed(backend: Backend) {
    let t = Activations::start(backend, |_| {}).await;
    let (alice, _) = t.enrol("n-alice", ALICE, WALLET).await;
    t.sim.add_inactive_token(&alice, "VC-N-1", WALLET, "DEV-1");
    t.sim.add_inactive_token(&alice, "VC-N-2", WALLET, "DEV-2");
    // A token of another card is not this card's to activate.
    let (bob, _) = t.enrol("n-bob", BOB, WALLET).await;
    let n =
        t.gw.tsh
            .notify("n-bob", &bob, "VC-BOB-ACTIVE", "ACTIVATE", WALLET, None)
            .await
            .unwrap();
    assert_eq!(n.status, 200);
    let (s, b) = t.activate(&alice, WALLET, Some("VC-BOB-ACTIVE")).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("nothing_to_activate")),
        "{b}"
    );
    // Named, the two candidates are no longer ambiguous.
    let (s, b) = t.activate(&alice, WALLET, Some("VC-N-2")).await;
    assert_eq!(s, 202, "{b}");
    until("the enrolment completed", || async {
        t.enrolment_state("n-alice").await == "complete"
    })
    .await;
    let resumes = t.resumes(&alice);
    assert_eq!(resumes.len(), 1);
    assert_eq!(resumes[0].virtual_card_id.as_deref(), Some("VC-N-2"));
    assert_eq!(t.sim.token("VC-N-1").unwrap().status, "INACTIVE");
    t.gw.stop().await;
}

/// A card reference is random hex: its digits may pass for a card number by chance. Such a
/// reference of ours is accepted (only what is not a card of ours is refused as one).
async fn a_reference_whose_digits_pass_for_a_card_number_is_still_ours(backend: Backend) {
    let t = Activations::start(backend, |_| {}).await;
    let odd = "d38bee92683637148984b085a486d353";
    assert!(issuer_gateway::domain::contains_pan_like(odd));
    t.fx.sql(
        "UPDATE cards SET card_ref = $1 WHERE last4 = '1111'",
        &[odd],
    )
    .await;
    let (card_ref, _) = t.enrol("o-alice", ALICE, WALLET).await;
    assert_eq!(card_ref, odd);
    t.sim.add_inactive_token(odd, "VC-ODD", WALLET, "DEV-1");
    let (s, b) = t.activate(odd, WALLET, None).await;
    assert_eq!(s, 202, "{b}");
    until("the enrolment completed", || async {
        t.enrolment_state("o-alice").await == "complete"
    })
    .await;
    // Another value of that shape, no card of ours: refused as a card number.
    let (s, b) = t
        .activate("e38bee92683637148984b085a486d353", WALLET, None)
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("pan_refused")), "{b}");
    t.gw.stop().await;
}

async fn an_agents_activation_is_recorded_with_operator_and_verification(backend: Backend) {
    let t = Activations::start(backend, |_| {}).await;
    let (card_ref, _) = t.enrol("d-agent", ALICE, "SAMSUNG_PAY").await;
    t.sim
        .add_inactive_token(&card_ref, "VC-AGENT", "SAMSUNG_PAY", "DEV-9");
    let client = reqwest::Client::new();
    // The agent sees the waiting token, which only TSH knows yet.
    let tokens: Value = client
        .get(format!(
            "http://{}/cards/{card_ref}/tokens?refresh=true",
            t.gw.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tokens["thalesOnly"],
        json!([{"virtualCardId": "VC-AGENT", "thalesState": "INACTIVE"}]),
        "{tokens}"
    );
    let resp = client
        .post(format!(
            "http://{}/cards/{card_ref}/token-actions",
            t.gw.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "action": "RESUME",
            "virtualCardId": "VC-AGENT",
            "reason": "CARDHOLDER_VERIFIED",
            "operator": "agent.smith",
            "verification": "security questions and date of birth",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.unwrap()["operationId"]
        .as_i64()
        .unwrap();
    until("the enrolment completed", || async {
        t.enrolment_state("d-agent").await == "complete"
    })
    .await;
    let op = t.gw.state.store.operation(id).await.unwrap().unwrap();
    assert_eq!(op.operator.as_deref(), Some("agent.smith"));
    assert_eq!(
        op.verification.as_deref(),
        Some("security questions and date of birth")
    );
    assert_eq!(op.state, "confirmed");
    let a = t.gw.state.store.activation(id).await.unwrap().unwrap();
    assert_eq!(a.method, "customer_service");
    assert_eq!(a.enrolment_id.as_deref(), Some("d-agent"));
    // The admin view of the operation says who and how.
    let view: Value = client
        .get(format!("http://{}/operations/{id}", t.gw.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["operator"], "agent.smith");
    assert_eq!(view["verification"], "security questions and date of birth");
    // The app API does not show an agent's activation.
    let (s, _) = t
        .app(
            "GET",
            &format!("/v1/activations/{id}"),
            None,
            Some(APP_TOKEN),
        )
        .await;
    assert_eq!(s, 404);
    t.gw.stop().await;
}

/// `simulate` plays both against a running gateway: the bank's app activating a waiting token,
/// an agent activating one after a call.
async fn simulate_plays_both_options(backend: Backend) {
    let t = Activations::start(backend, |_| {}).await;
    let cards = write_card_file(t.fx.path(), CARD_FILE);
    let ok = issuer_gateway::sim::simulate(issuer_gateway::sim::SimulateOptions {
        target: format!("http://{}", t.gw.api),
        issuer_id: ISSUER_ID.into(),
        cert: t.fx.path().join("keys/issuer-pkcs7-cert.pem"),
        cards,
        count: None,
        concurrency: 1,
        eligibility_only: false,
        rate: None,
        write_requests: None,
        client_cert: None,
        client_key: None,
        ca: None,
        activations: issuer_gateway::sim::activations::ActivationOptions {
            app_url: Some(format!("http://{}", t.gw.app_api.unwrap())),
            app_token: Some(APP_TOKEN.into()),
            admin_url: Some(format!("http://{}", t.gw.admin)),
            admin_token: Some(ADMIN_TOKEN.into()),
            tsh_sim: Some(t.sim_url.clone()),
        },
    })
    .await
    .unwrap();
    assert!(ok, "simulate reported a step not as expected");
    let resumes: Vec<_> = t
        .sim
        .accepted()
        .into_iter()
        .filter(|r| r.action.as_deref() == Some("RESUME"))
        .collect();
    assert_eq!(resumes.len(), 2, "{resumes:?}");
    let store = &t.gw.state.store;
    let mut completed = 0;
    for r in &resumes {
        let op = store
            .operations_of_card(&r.card_ref)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.correlation_id == r.correlation_id)
            .unwrap();
        let a = store.activation(op.id).await.unwrap().unwrap();
        let e = store
            .enrolment(a.enrolment_id.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        completed += usize::from(e.state == "complete");
    }
    assert_eq!(completed, 2);
    t.gw.stop().await;
}

/// A CA and a leaf certificate it signed (chain PEM, key PEM), for the app listener's TLS.
fn pki(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    (p.self_signed(&key).unwrap(), key)
}

fn leaf(ca: &(rcgen::Certificate, rcgen::KeyPair), name: &str) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.0, &ca.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn https_client(
    server_ca: &rcgen::Certificate,
    client: Option<&(String, String)>,
) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    issuer_gateway::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

/// `app.tls`: the app API over TLS; with `app.tls.client_ca`, only the app backend holding a
/// certificate of that CA gets through.
async fn the_app_api_speaks_tls_and_mutual_tls(backend: Backend) {
    let fx = Fixture::new(&backend).await;
    let dir = fx.path().join("app-tls");
    std::fs::create_dir_all(&dir).unwrap();
    let server_ca = pki("app server CA");
    let client_ca = pki("app backend CA");
    let (chain, key) = leaf(&server_ca, "gateway app API");
    std::fs::write(dir.join("server.pem"), chain).unwrap();
    issuer_gateway::data_keys::write_private_file(&dir.join("server-key.pem"), key.as_bytes())
        .unwrap();
    std::fs::write(dir.join("client-ca.pem"), client_ca.0.pem()).unwrap();
    let backend_cert = leaf(&client_ca, "bank app backend");
    let body = json!({"issuerCardRefId": "no-such-card", "walletProviderId": WALLET, "verification": "pin"});
    for mutual in [true, false] {
        let gw = fx
            .start(|c| {
                settings(c, fx.path(), "http://127.0.0.1:9");
                c.tsh.base_url = String::new();
                c.tsh.encryption_cert = None;
                if let Some(app) = c.app.as_mut() {
                    app.tls = Some(issuer_gateway::config::AppTlsConfig {
                        cert_chain: dir.join("server.pem"),
                        private_key: dir.join("server-key.pem"),
                        client_ca: mutual.then(|| dir.join("client-ca.pem")),
                    });
                }
            })
            .await;
        let url = format!(
            "https://localhost:{}/v1/activations",
            gw.app_api.unwrap().port()
        );
        let with_cert = https_client(&server_ca.0, Some(&backend_cert))
            .post(&url)
            .bearer_auth(APP_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(with_cert.status().as_u16(), 404);
        let v: Value = with_cert.json().await.unwrap();
        assert_eq!(v["error"], "unknown_card");
        let without = https_client(&server_ca.0, None)
            .post(&url)
            .bearer_auth(APP_TOKEN)
            .json(&body)
            .send()
            .await;
        if mutual {
            assert!(
                without.is_err(),
                "a client without a certificate got through"
            );
        } else {
            assert_eq!(without.unwrap().status().as_u16(), 404);
        }
        // Plain HTTP is not spoken on a TLS listener.
        let plain = reqwest::Client::new()
            .post(format!("http://{}/v1/activations", gw.app_api.unwrap()))
            .bearer_auth(APP_TOKEN)
            .json(&body)
            .send()
            .await;
        assert!(plain.is_err() || plain.unwrap().status().as_u16() != 404);
        gw.stop().await;
    }
}

/// `app.request_timeout_ms` bounds a call, its body included: a body that stops coming is
/// answered 408 `timeout` in JSON, and the listener goes on serving.
async fn a_stalled_body_is_answered_408(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = Activations::start(backend, |c| {
        if let Some(app) = c.app.as_mut() {
            app.request_timeout_ms = 300;
        }
    })
    .await;
    let addr = t.gw.app_api.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/activations HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {APP_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"issuerCardRefId\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains("}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"timeout\""), "{text}");
    let (s, _) = t.activate("no-such-card", WALLET, None).await;
    assert_eq!(s, 404);
    t.gw.stop().await;
}

/// The app API's OpenAPI document (openapi/app-api.yaml): valid YAML, its references resolve,
/// it names the two routes, and every refusal the tests above see, with its status.
#[test]
fn the_app_api_document_names_the_routes_and_refusals() {
    let doc: Value = serde_yaml::from_str(include_str!("../../openapi/app-api.yaml")).unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/v1/activations", "/v1/activations/{operationId}"]);
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("$ref", Value::String(r)) => out.push(r.clone()),
                _ => refs(v, out),
            }),
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.trim_start_matches('#');
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let kinds: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let post = &doc["paths"]["/v1/activations"]["post"]["responses"];
    for (status, kind) in [
        ("400", "bad_request"),
        ("400", "pan_refused"),
        ("401", "unauthorized"),
        ("404", "unknown_card"),
        ("404", "not_found"),
        ("409", "nothing_to_activate"),
        ("409", "ambiguous"),
        ("409", "enrolment_completed"),
        ("410", "window_passed"),
        ("413", "body_too_large"),
        ("429", "rate_limited"),
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from the Error enum");
        assert!(
            post.get(status).is_some(),
            "{status} missing from POST /v1/activations"
        );
    }
}

/// The real `serve`: with `[app]` it also serves the app API, and drains it on SIGTERM; without
/// `app.token` it refuses to start, naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_app_listener_when_app_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{base}\n[app]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app.token: required when [app] is configured"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        format!("{base}\n[app]\nlisten = \"127.0.0.1:0\"\ntoken = \"{APP_TOKEN}\"\n"),
    )
    .unwrap();
    let mut served = Served::start(&config);
    let app = loop {
        let line = served
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the app listener's line");
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        served.seen.push(line);
        if v["message"] == "app API listening" {
            break v["app"].as_str().unwrap().to_owned();
        }
    };
    let client = reqwest::Client::new();
    let body = json!({"issuerCardRefId": "no-such-card", "walletProviderId": WALLET, "verification": "pin"});
    let url = format!("http://{app}/v1/activations");
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .bearer_auth(APP_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unknown_card");
    let lines = served.stop();
    assert!(
        lines.iter().any(|l| l.contains("app.tls is not set")),
        "{lines:?}"
    );
    // The listener is closed once serve has stopped.
    assert!(client.post(&url).json(&body).send().await.is_err());
}

crate::on_both_backends!(
    the_app_api_speaks_tls_and_mutual_tls,
    simulate_plays_both_options,
    methods_appear_in_yellow_answers_as_configured,
    customer_service_replaces_red_when_the_policy_says_so,
    an_app_activation_makes_one_resume_and_the_activate_completes_the_enrolment,
    each_refusal_answers_its_status,
    a_named_token_is_checked_and_resumed,
    a_stalled_body_is_answered_408,
    a_reference_whose_digits_pass_for_a_card_number_is_still_ours,
    an_agents_activation_is_recorded_with_operator_and_verification,
);
