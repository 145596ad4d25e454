//! The demo's life-cycle part: a simulated inbound TSH, then a card reported lost (its tokens
//! suspended at TSH, the notices coming back), found again (resumed), renewed (updateCard with
//! fpanDetails that TSH opens), and an operator suspending one token.

use crate::config::{Config, Secret};
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
    Ok(sim)
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
