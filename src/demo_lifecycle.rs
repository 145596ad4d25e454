//! The demo's life-cycle part: a simulated inbound TSH, then a card reported lost (its tokens
//! suspended at TSH, the notices coming back), found again (resumed), renewed (updateCard with
//! fpanDetails that TSH opens), an operator suspending one token, the bank's app activating a
//! waiting token (Option C) and an agent activating one after a call (Option D).

use crate::config::{AppApiConfig, BankAppWallet, Config, Secret};
use crate::domain::IdvKind;
use crate::sim::Tsh;
use crate::sim::tsh::InboundSim;
use crate::state::SharedState;
use std::path::Path;
use std::time::Duration;

/// How the demo prints (implemented by the demo's printer).
pub trait Narrator {
    fn title(&mut self, t: &str);
    fn step(&mut self, who: &str, what: &str);
    fn expect(&mut self, cond: bool, what: &str);
}

/// The admin token the demo sets (token actions need one).
const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

/// The app API's token in the demo (the bank's app backend sends it).
const DEMO_APP_TOKEN: &str = "demo-app-backend-token";

/// Starts the simulated TSH (Thales's key pair made in `dir/thales`) and points `config` at it.
pub async fn prepare(dir: &Path, config: &mut Config) -> anyhow::Result<InboundSim> {
    let thales = dir.join("thales");
    crate::keys::generate(&thales, 2048, "simulated Thales fpanDetails key")?;
    let key = std::fs::read_to_string(thales.join(crate::keys::PRIVATE_KEY_FILE))?;
    let sim = InboundSim::new(&key, Duration::from_millis(100))?;
    let (addr, _task) = sim
        .listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await?;
    config.tsh.base_url = format!("http://{addr}");
    config.tsh.encryption_cert = Some(thales.join(crate::keys::CERTIFICATE_FILE));
    config.admin.token = Secret::new(DEMO_ADMIN_TOKEN);
    // Options C and D: the bank's app (for Apple Pay and Google Pay) and customer service, after
    // the OTP channels; the app API on a loopback port of its own.
    config.idv.channel_preference = vec![
        IdvKind::Sms,
        IdvKind::Email,
        IdvKind::BankApp,
        IdvKind::CustomerService,
    ];
    config.idv.bank_app.enabled = true;
    config.idv.bank_app.value = "Demo Bank".into();
    for (wallet, source, platform) in [
        ("APPLE_PAY", "1122334455", "IOS"),
        ("GOOGLE_PAY", "com.demobank.app", "ANDROID"),
    ] {
        config.idv.bank_app.wallets.insert(
            wallet.into(),
            BankAppWallet {
                source: Some(source.into()),
                platform: Some(platform.into()),
            },
        );
    }
    config.idv.customer_service.enabled = true;
    config.idv.customer_service.value = "+44 20 7946 0000".into();
    config
        .idv
        .customer_service
        .values
        .insert("fr".into(), "+33 1 70 00 00 00".into());
    config.app = Some(AppApiConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        token: Secret::new(DEMO_APP_TOKEN),
        tls: None,
        max_body_bytes: 4096,
        request_timeout_ms: 5000,
        max_connections: 16,
        card_limit: 10,
        card_limit_window_minutes: 60,
    });
    Ok(sim)
}

/// A field of a JSON answer (`null` when absent).
fn at<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    v.get(key).unwrap_or(&serde_json::Value::Null)
}

/// Waits (up to 10 s) for the enrolment to be complete.
async fn wait_complete(state: &SharedState, cid: &str) -> bool {
    for _ in 0..100 {
        if let Ok(Some(e)) = state.store.enrolment(cid).await {
            if e.state == "complete" {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Eligibility and a digitization that steps up: the card's reference and the methods offered.
async fn enrol_yellow(
    p: &mut dyn Narrator,
    gateway: &Tsh,
    cid: &str,
    (pan, exp): (&str, &str),
    wallet: &str,
    language: &str,
) -> anyhow::Result<(String, Vec<serde_json::Value>)> {
    let a = gateway.check_eligibility(cid, pan, exp, wallet).await?;
    let card_ref = a.str("issuerCardRefId").unwrap_or("").to_owned();
    let d = gateway
        .request_digitization(
            cid,
            pan,
            exp,
            wallet,
            serde_json::json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}, "deviceInformation": {"language": language}}),
        )
        .await?;
    let methods: Vec<serde_json::Value> = d
        .body
        .get("idvMethodList")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    p.step(
        "TSH",
        &format!(
            "checkCardEligibility {}, requestCardDigitization {} {}",
            a.status,
            d.status,
            d.str("levelOfTrust").unwrap_or("?")
        ),
    );
    for m in &methods {
        p.step("gateway", &format!("offers {m}"));
    }
    Ok((card_ref, methods))
}

/// Scenes 11 and 12: Option C, the bank's app activating a waiting token; Option D, an agent
/// activating one after a call. `app_card` and `agent_card`: PAN and expiry of two cards.
#[allow(clippy::too_many_arguments)]
pub async fn show_activations(
    p: &mut dyn Narrator,
    state: &SharedState,
    sim: &InboundSim,
    gateway: &Tsh,
    admin: std::net::SocketAddr,
    app: Option<std::net::SocketAddr>,
    app_card: (&str, &str),
    agent_card: (&str, &str),
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    p.title("11. Option C: the bank's app verifies the cardholder and activates the token");
    let cid = "demo-bank-app-0011";
    let (card_ref, methods) = enrol_yellow(p, gateway, cid, app_card, "APPLE_PAY", "en").await?;
    p.expect(
        methods
            .iter()
            .any(|m| at(m, "type") == "bank_app" && at(m, "platform") == "IOS"),
        "the bank's app offered, with its Apple source and platform",
    );
    sim.add_inactive_token(&card_ref, "DEMO-VC-APP-0011", "APPLE_PAY", "DEMO-IPHONE");
    p.step(
        "TSH",
        "the token DEMO-VC-APP-0011 waits for step-up (INACTIVE); the wallet opens the bank's app",
    );
    let Some(app) = app else {
        p.expect(false, "the app API is listening");
        return Ok(());
    };
    let resp = client
        .post(format!("http://{app}/v1/activations"))
        .bearer_auth(DEMO_APP_TOKEN)
        .json(&serde_json::json!({"issuerCardRefId": card_ref, "walletProviderId": "APPLE_PAY", "verification": "biometric"}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    p.step(
        "app",
        &format!("the app authenticated the cardholder (Face ID); POST /v1/activations -> {status} {body}"),
    );
    let ok = wait_complete(state, cid).await;
    let id = at(&body, "operationId").as_i64().unwrap_or_default();
    let read: serde_json::Value = client
        .get(format!("http://{app}/v1/activations/{id}"))
        .bearer_auth(DEMO_APP_TOKEN)
        .send()
        .await?
        .json()
        .await
        .unwrap_or_default();
    for r in sim.received().iter().filter(|r| r.card_ref == card_ref) {
        p.step(
            "TSH",
            &format!(
                "received {} {} {}",
                r.operation,
                r.action.as_deref().unwrap_or(""),
                r.reason.as_deref().unwrap_or("")
            ),
        );
    }
    p.step("app", &format!("GET /v1/activations/{id} -> {read}"));
    p.expect(
        status == 202 && ok && at(&read, "state") == "confirmed",
        "one RESUME (CARDHOLDER_VERIFIED); its ACTIVATE completes the enrolment",
    );

    p.title("12. Option D: no usable phone; the cardholder calls, an agent activates the token");
    let cid = "demo-agent-0012";
    let (card_ref, methods) =
        enrol_yellow(p, gateway, cid, agent_card, "SAMSUNG_PAY", "fr-FR").await?;
    p.expect(
        methods.iter().any(|m| at(m, "type") == "customer_service"),
        "customer service offered, with the number for French",
    );
    sim.add_inactive_token(
        &card_ref,
        "DEMO-VC-AGENT-0012",
        "SAMSUNG_PAY",
        "DEMO-GALAXY",
    );
    let tokens: serde_json::Value = client
        .get(format!(
            "http://{admin}/cards/{card_ref}/tokens?refresh=true"
        ))
        .bearer_auth(DEMO_ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await
        .unwrap_or_default();
    p.step(
        "agent",
        &format!(
            "verified the caller; GET /cards/{card_ref}/tokens?refresh=true: waiting at TSH {}",
            at(&tokens, "thalesOnly")
        ),
    );
    let resp = client
        .post(format!("http://{admin}/cards/{card_ref}/token-actions"))
        .bearer_auth(DEMO_ADMIN_TOKEN)
        .json(&serde_json::json!({"action": "RESUME", "virtualCardId": "DEMO-VC-AGENT-0012", "reason": "CARDHOLDER_VERIFIED", "operator": "agent.jones", "verification": "security questions"}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    p.step(
        "agent",
        &format!("POST /cards/{card_ref}/token-actions RESUME -> {status} {body}"),
    );
    let ok = wait_complete(state, cid).await;
    let op = state
        .store
        .operation(at(&body, "operationId").as_i64().unwrap_or_default())
        .await?;
    if let Some(op) = &op {
        p.step(
            "gateway",
            &format!(
                "operation {}: {}, operator {}, verification {}",
                op.id,
                op.state,
                op.operator.as_deref().unwrap_or(""),
                op.verification.as_deref().unwrap_or("")
            ),
        );
    }
    p.expect(
        status == 202 && ok && op.is_some_and(|o| o.operator.as_deref() == Some("agent.jones")),
        "the agent's RESUME is recorded with who and how, and completes the enrolment",
    );
    Ok(())
}

async fn wait_for(state: &SharedState, card_ref: &str, n: usize, want: &str) -> bool {
    for _ in 0..100 {
        let ops = state
            .store
            .operations_of_card(card_ref)
            .await
            .unwrap_or_default();
        if ops.len() >= n && ops.iter().all(|o| o.state == want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn tokens_line(state: &SharedState, card_ref: &str) -> String {
    let tokens = state
        .store
        .tokens_of_card(card_ref)
        .await
        .unwrap_or_default();
    tokens
        .iter()
        .map(|t| format!("{} {}", t.virtual_card_id, t.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The four scenes. `card`: a card-file line's PAN, expiry and product, of a card with tokens.
#[allow(clippy::too_many_arguments)]
pub async fn show(
    p: &mut dyn Narrator,
    config: &Config,
    state: &SharedState,
    sim: &InboundSim,
    gateway: &Tsh,
    admin: std::net::SocketAddr,
    card_ref: &str,
    (pan, exp, product, new_exp): (&str, &str, &str, &str),
    dir: &Path,
) -> anyhow::Result<()> {
    sim.connect_gateway(gateway.clone());
    for t in state.store.tokens_of_card(card_ref).await? {
        sim.add_token(
            card_ref,
            &t.virtual_card_id,
            &t.wallet_provider_id,
            t.token_storage_id.as_deref().unwrap_or("SIM-DEVICE"),
        );
    }
    let import = |status: &str, exp: &str| {
        let file = dir.join(format!("card-{status}-{exp}.csv"));
        let csv = format!("pan,exp,status,product_id\n{pan},{exp},{status},{product}\n");
        async move {
            std::fs::write(&file, csv)?;
            crate::card_file::import_cards(config, &file).await
        }
    };
    let last = |sim: &InboundSim, n: usize| -> Vec<String> {
        let r = sim.received();
        r.iter()
            .skip(r.len().saturating_sub(n))
            .map(|r| {
                let what = match (&r.action, &r.fpan) {
                    (Some(a), _) => format!(
                        "{} {a} of {}, reason {}",
                        r.operation,
                        r.virtual_card_id
                            .as_deref()
                            .unwrap_or("every token of the card"),
                        r.reason.as_deref().unwrap_or("")
                    ),
                    (None, Some(f)) => {
                        format!("{} with fpanDetails opened by TSH: {f:?}", r.operation)
                    }
                    (None, None) => r.operation.clone(),
                };
                format!("{what} (x-correlation-id {})", r.correlation_id)
            })
            .collect()
    };

    p.title("7. The card is reported lost: its tokens stop paying");
    let report = import("lost", exp).await?;
    p.step(
        "bank",
        &format!(
            "cards import: status lost; {}",
            crate::card_file::operations_line(&report)
        ),
    );
    let ok = wait_for(state, card_ref, 1, "confirmed").await;
    for l in last(sim, 1) {
        p.step("TSH", &format!("received {l}"));
    }
    p.step(
        "gateway",
        &format!(
            "notices back: tokens {}",
            tokens_line(state, card_ref).await
        ),
    );
    p.expect(ok, "the SUSPEND is confirmed by its notices");

    p.title("8. Found again: the tokens the loss suspended are resumed");
    let report = import("active", exp).await?;
    p.step(
        "bank",
        &format!(
            "cards import: status active; {}",
            crate::card_file::operations_line(&report)
        ),
    );
    let n = state.store.operations_of_card(card_ref).await?.len();
    let ok = wait_for(state, card_ref, n, "confirmed").await;
    for l in last(sim, n - 1) {
        p.step("TSH", &format!("received {l}"));
    }
    p.step(
        "gateway",
        &format!(
            "notices back: tokens {}",
            tokens_line(state, card_ref).await
        ),
    );
    p.expect(ok && n >= 2, "one RESUME per token, confirmed");

    p.title("9. Renewed: same card number, new expiry; the tokens follow (updateCard)");
    let report = import("active", new_exp).await?;
    p.step(
        "bank",
        &format!(
            "cards import: expiry {exp} -> {new_exp}; {}",
            crate::card_file::operations_line(&report)
        ),
    );
    let n = state.store.operations_of_card(card_ref).await?.len();
    let ok = wait_for(state, card_ref, n, "confirmed").await;
    for l in last(sim, 1) {
        p.step("TSH", &format!("received {l}"));
    }
    p.step("gateway", "fpanDetails was sealed to Thales's certificate; the database never held the card number, and the sealed value is gone once sent");
    p.expect(ok, "the updateCard is confirmed by its UPDATE notices");

    p.title("10. The fraud desk suspends one token");
    let token = state
        .store
        .tokens_of_card(card_ref)
        .await?
        .into_iter()
        .find(|t| t.state == "active");
    if let Some(t) = token {
        let resp = reqwest::Client::new()
            .post(format!("http://{admin}/cards/{card_ref}/token-actions"))
            .bearer_auth(DEMO_ADMIN_TOKEN)
            .json(&serde_json::json!({"action": "SUSPEND", "virtualCardId": t.virtual_card_id, "reason": "FRAUD_SUSPECTED", "operator": "fraud desk"}))
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        p.step(
            "admin",
            &format!(
                "POST /cards/{card_ref}/token-actions SUSPEND {} -> {status} {body}",
                t.virtual_card_id
            ),
        );
        let n = state.store.operations_of_card(card_ref).await?.len();
        let ok = wait_for(state, card_ref, n, "confirmed").await;
        for l in last(sim, 1) {
            p.step("TSH", &format!("received {l}"));
        }
        p.step(
            "gateway",
            &format!("tokens {}", tokens_line(state, card_ref).await),
        );
        p.expect(status == 202 && ok, "the operator's SUSPEND is confirmed");
    } else {
        p.expect(false, "an active token to suspend");
    }
    Ok(())
}
