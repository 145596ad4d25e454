//! `policy check` and `policy explain`: the reading half (configuration, request file, the card's
//! record); the policy itself and the text are `decision`'s.
//!
//! `policy explain` reads the request with the very function the server uses
//! (`api::digitization::read_signals`), so that what it explains is what the server decides:
//! that is the one import of `api` outside `api/` and `app.rs` (see ARCHITECTURE.md).

use crate::config::Config;
use crate::decision::{Decision, Policy, Signals, explain};
use crate::domain::CardStatus;
use std::fmt::Write;
use std::path::Path;

/// `policy check`: the compiled policy as a readable list, or every problem (one per line).
pub fn check(config: &Config) -> Result<String, Vec<String>> {
    let policy = Policy::compile(&config.policy)?;
    Ok(explain::check(&policy, !config.policy.rules.is_empty()))
}

/// `policy explain`: reads a `requestCardDigitization` body from `request`, takes the card's
/// record from the database when `card_ref` is given (else assumes an active card that has not
/// expired, with no tokens and no recent contact change), and says which rule decides and why.
pub async fn explain(
    config: &Config,
    request: &Path,
    card_ref: Option<&str>,
) -> anyhow::Result<(String, Decision)> {
    let policy =
        Policy::compile(&config.policy).map_err(|e| anyhow::anyhow!("{}", e.join("\n")))?;
    let text = std::fs::read_to_string(request)
        .map_err(|e| anyhow::anyhow!("--request {}: cannot read: {e}", request.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--request {}: not JSON: {e}", request.display()))?;
    let map = value
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("--request {}: must be a JSON object", request.display()))?;
    let signals = crate::api::digitization::read_signals(map)
        .map_err(|e| anyhow::anyhow!("--request {}: {e}", request.display()))?;
    let now = crate::clock::Clock::system().now_ms();
    let mut out = String::new();
    let signals = match card_ref {
        Some(r) => {
            let store = crate::store::Store::connect(
                &config.database.url,
                1,
                std::time::Duration::from_millis(config.database.timeout_ms),
            )
            .await
            .map_err(|e| anyhow::anyhow!("database.url: cannot open the database: {e}"))?;
            let card = store
                .card_by_ref(r)
                .await?
                .ok_or_else(|| anyhow::anyhow!("--card {r}: no such card"))?;
            let tokens = store.count_active_tokens(r).await?;
            store.close().await;
            let _ = writeln!(
                out,
                "card {r}: {} {}******{} exp {}, {tokens} active token(s)",
                card.status, card.bin, card.last4, card.exp
            );
            // The eligibility rules come first, as on the server (the expiry sent is not
            // known here: explain does not open envelopes).
            let wallet = map.get("walletProviderId").and_then(|w| w.as_str());
            let wallet_enabled = wallet.is_none_or(|w| card.allows_wallet(w));
            let clock_now = crate::clock::Clock::system().now();
            if let Some(why) =
                crate::decision::eligibility::check(&card.card(), None, wallet_enabled, clock_now)
            {
                let decision = why.decision();
                let _ = writeln!(
                    out,
                    "  eligibility rule {} -> red    DECIDES ({})\ndecision: red by rule {}",
                    why.rule(),
                    why.message(),
                    why.rule()
                );
                return Ok((out, decision));
            }
            signals.with_card(&card.card(), now, tokens)
        }
        None => {
            let _ = writeln!(
                out,
                "no --card: assuming an active card that has not expired, with no tokens and no recent contact change"
            );
            Signals {
                card_status: CardStatus::Active.as_str().into(),
                card_active: true,
                ..signals
            }
        }
    };
    let (mut out, decision) = explain::explain(&policy, &signals, out);
    if decision.outcome == crate::domain::LevelOfTrust::Yellow {
        let wallet = map.get("walletProviderId").and_then(|w| w.as_str());
        out.push_str(&crate::decision::methods::explain(
            &config.idv,
            &policy,
            decision.channels.as_deref(),
            wallet,
        ));
    }
    Ok((out, decision))
}
