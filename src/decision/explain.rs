//! `policy check` and `policy explain`: the policy examined offline, without a server.

use super::{Policy, Signals, decide};
use crate::api::fields::Fields;
use crate::config::Config;
use std::fmt::Write;
use std::path::Path;

/// `policy check`: the compiled policy as a readable list, or every problem (one per line).
pub fn check(config: &Config) -> Result<String, Vec<String>> {
    let policy = Policy::compile(&config.policy)?;
    let mut out = String::new();
    let source = if config.policy.rules.is_empty() {
        "built-in default policy"
    } else {
        "policy from the configuration"
    };
    let _ = writeln!(
        out,
        "policy is valid ({source}, {} rules, then the default):",
        policy.rules.len()
    );
    for (i, r) in policy.rules.iter().enumerate() {
        let channels = r
            .channels
            .as_ref()
            .map(|c| {
                format!(
                    " offering {}",
                    c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:>2}. {:<32} -> {}{channels}",
            i + 1,
            r.name,
            r.outcome
        );
        if let Some(d) = &r.description {
            let _ = writeln!(out, "      {d}");
        }
    }
    let _ = writeln!(
        out,
        "      {:<32} -> {} (when no rule matches)",
        policy.default_rule_name, policy.default_outcome
    );
    Ok(out)
}

/// `policy explain`: reads a `requestCardDigitization` body from `request`, takes the card's
/// record from the database when `card_ref` is given (else assumes an active card that has not
/// expired, with no tokens and no recent contact change), and says which rule decides and why.
pub async fn explain(
    config: &Config,
    request: &Path,
    card_ref: Option<&str>,
) -> anyhow::Result<(String, super::Decision)> {
    let policy =
        Policy::compile(&config.policy).map_err(|e| anyhow::anyhow!("{}", e.join("\n")))?;
    let text = std::fs::read_to_string(request)
        .map_err(|e| anyhow::anyhow!("--request {}: cannot read: {e}", request.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--request {}: not JSON: {e}", request.display()))?;
    let map = value
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("--request {}: must be a JSON object", request.display()))?;
    let signals = Signals::from_request(&Fields(map))
        .map_err(|e| anyhow::anyhow!("--request {}: {}", request.display(), e.message))?;
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
            signals.with_card(&card, now, tokens)
        }
        None => {
            let _ = writeln!(
                out,
                "no --card: assuming an active card that has not expired, with no tokens and no recent contact change"
            );
            Signals {
                card_status: "active".into(),
                card_active: true,
                ..signals
            }
        }
    };
    let _ = writeln!(
        out,
        "signals: {}",
        serde_json::to_string(&signals).unwrap_or_default()
    );
    let decision = decide(&policy, &signals);
    let mut decided = false;
    for (i, t) in policy.trace(&signals).iter().enumerate() {
        let mark = if t.matched && !decided {
            "DECIDES"
        } else if t.matched {
            "matches (too late)"
        } else {
            "no"
        };
        let _ = writeln!(
            out,
            "  {:>2}. {:<32} -> {:<6} {mark}",
            i + 1,
            t.name,
            t.outcome.as_str()
        );
        for c in &t.checks {
            let _ = writeln!(
                out,
                "        {} {} (value: {})",
                if c.holds { "+" } else { "-" },
                c.condition,
                c.value
            );
        }
        for (j, g) in t.any_groups.iter().enumerate() {
            let holds = g.iter().all(|c| c.holds);
            let _ = writeln!(
                out,
                "        any-of #{} {}",
                j + 1,
                if holds { "holds" } else { "does not hold" }
            );
            for c in g {
                let _ = writeln!(
                    out,
                    "          {} {} (value: {})",
                    if c.holds { "+" } else { "-" },
                    c.condition,
                    c.value
                );
            }
        }
        decided |= t.matched;
    }
    if !decided {
        let _ = writeln!(
            out,
            "      {:<32} -> {:<6} DECIDES (no rule matched)",
            policy.default_rule_name,
            policy.default_outcome.as_str()
        );
    }
    let _ = writeln!(
        out,
        "decision: {} by rule {}",
        decision.outcome, decision.rule
    );
    if decision.outcome == crate::domain::LevelOfTrust::Yellow {
        let _ = writeln!(
            out,
            "(the server turns yellow into red, rule {}, when no ID&V method can be offered)",
            super::NO_METHOD_RULE
        );
    }
    Ok((out, decision))
}
