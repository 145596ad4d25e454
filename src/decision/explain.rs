//! `policy check` and `policy explain` as text: the compiled policy as a readable list, and the
//! trace of one decision. Pure: reading the request file and the card's record is the CLI's
//! business (`cli::policy`).

use super::{Decision, Policy, Signals, decide};
use std::fmt::Write;

/// `policy check`: the compiled policy as a readable list. `from_config` says whether the rules
/// came from the configuration (else the built-in default policy).
pub fn check(policy: &Policy, from_config: bool) -> String {
    let mut out = String::new();
    let source = if from_config {
        "policy from the configuration"
    } else {
        "built-in default policy"
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
    if policy.customer_service_fallback {
        let _ = writeln!(
            out,
            "  a yellow decision with no deliverable OTP method offers customer_service (policy.when_no_otp_method)"
        );
    }
    out
}

/// `policy explain`: which rule decides for these signals, and why, rule by rule; `out` already
/// holds what the caller said of the card.
pub fn explain(policy: &Policy, signals: &Signals, mut out: String) -> (String, Decision) {
    let _ = writeln!(
        out,
        "signals: {}",
        serde_json::to_string(signals).unwrap_or_default()
    );
    let decision = decide(policy, signals);
    let mut decided = false;
    for (i, t) in policy.trace(signals).iter().enumerate() {
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
    (out, decision)
}
