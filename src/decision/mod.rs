//! The digitization decision: an ordered list of rules over the request's signals and the
//! card's record; the first rule that matches decides, and its name is recorded.

use crate::domain::{Card, CardStatus, LevelOfTrust, Millis};
use serde::Serialize;

pub mod eligibility;
pub mod explain;
pub mod methods;
pub mod policy;

pub use policy::Policy;

/// What the decision may look at. Nothing here is cardholder data.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Signals {
    pub card_status: String,
    pub card_active: bool,
    pub card_expired: bool,
    pub card_expires_in_days: Option<i64>,
    pub product_id: String,
    pub tnc_status: Option<bool>,
    pub cvv_validated: Option<bool>,
    pub capture_method: Option<String>,
    pub tsp_level_of_trust: Option<String>,
    pub device_score: Option<f64>,
    pub account_score: Option<f64>,
    pub wallet_score: Option<f64>,
    pub phone_number_score: Option<f64>,
    pub provisioning_attempts_24h: Option<f64>,
    pub reason_codes: Vec<String>,
    pub device_country: Option<String>,
    pub wallet_provider_id: Option<String>,
    pub token_requestor_id: Option<String>,
    pub active_tokens: i64,
    pub days_since_phone_change: Option<f64>,
    pub days_since_email_change: Option<f64>,
}

impl Signals {
    /// Fills in what the issuer's record says of the card, at `now_ms`.
    pub fn with_card(mut self, card: &Card, now_ms: Millis, active_tokens: i64) -> Signals {
        let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms.0) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        self.card_status = card.status.as_str().to_owned();
        self.card_active = card.status == CardStatus::Active;
        self.card_expired = card.expiry.is_none_or(|e| e.is_expired_at(now));
        self.card_expires_in_days = card.expiry.and_then(|e| e.days_left_at(now));
        self.product_id = card.product_id.clone();
        self.active_tokens = active_tokens;
        let days = |t: Option<Millis>| t.map(|t| now_ms.since(t).as_days());
        self.days_since_phone_change = days(card.phone_changed_at);
        self.days_since_email_change = days(card.email_changed_at);
        self
    }
}

/// The outcome, the rule that decided it, and for yellow the channels the rule allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: LevelOfTrust,
    pub rule: String,
    pub reason: String,
    #[serde(skip)]
    pub channels: Option<Vec<crate::domain::IdvKind>>,
}

/// The rule recorded when a yellow decision has no deliverable ID&V method left.
pub const NO_METHOD_RULE: &str = "no-deliverable-idv-method";

/// Applies the policy: the first matching rule decides, else the default.
pub fn decide(policy: &Policy, signals: &Signals) -> Decision {
    let (outcome, rule, matched) = policy.decide(signals);
    Decision {
        outcome,
        reason: matched
            .and_then(|r| r.description.clone())
            .unwrap_or_else(|| {
                if matched.is_some() {
                    String::new()
                } else {
                    "no rule matched: the default outcome".into()
                }
            }),
        channels: matched.and_then(|r| r.channels.clone()),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Signals {
        Signals {
            card_status: "active".into(),
            card_active: true,
            tnc_status: Some(true),
            ..Signals::default()
        }
    }

    #[test]
    fn each_default_rule_decides_its_case() {
        let cases: Vec<(Signals, &str, LevelOfTrust)> = vec![
            (
                Signals {
                    card_active: false,
                    ..base()
                },
                "card-not-active-or-expired",
                LevelOfTrust::Red,
            ),
            (
                Signals {
                    card_expired: true,
                    cvv_validated: Some(true),
                    ..base()
                },
                "card-not-active-or-expired",
                LevelOfTrust::Red,
            ),
            (
                Signals {
                    tnc_status: Some(false),
                    ..base()
                },
                "terms-not-accepted",
                LevelOfTrust::Red,
            ),
            (
                Signals {
                    tsp_level_of_trust: Some("red".into()),
                    ..base()
                },
                "tsp-says-red",
                LevelOfTrust::Red,
            ),
            (
                Signals {
                    wallet_score: Some(1.0),
                    cvv_validated: Some(true),
                    ..base()
                },
                "lowest-risk-score",
                LevelOfTrust::Red,
            ),
            (
                Signals {
                    provisioning_attempts_24h: Some(6.0),
                    ..base()
                },
                "too-many-provisioning-attempts",
                LevelOfTrust::Red,
            ),
            (
                Signals {
                    cvv_validated: Some(true),
                    ..base()
                },
                "trusted-capture",
                LevelOfTrust::Green,
            ),
            (
                Signals {
                    capture_method: Some("ON_FILE".into()),
                    ..base()
                },
                "trusted-capture",
                LevelOfTrust::Green,
            ),
            (
                Signals {
                    cvv_validated: Some(true),
                    tsp_level_of_trust: Some("yellow".into()),
                    ..base()
                },
                "step-up",
                LevelOfTrust::Yellow,
            ),
            (
                Signals {
                    capture_method: Some("MANUAL".into()),
                    ..base()
                },
                "step-up",
                LevelOfTrust::Yellow,
            ),
            (
                Signals {
                    provisioning_attempts_24h: Some(5.0),
                    ..base()
                },
                "step-up",
                LevelOfTrust::Yellow,
            ),
        ];
        for (signals, rule, outcome) in cases {
            let d = decide(&Policy::default_policy(), &signals);
            assert_eq!((d.rule.as_str(), d.outcome), (rule, outcome), "{signals:?}");
        }
    }
}

#[cfg(test)]
mod property {
    use super::*;
    use proptest::prelude::*;

    fn opt<T: std::fmt::Debug + Clone + 'static>(
        s: impl Strategy<Value = T> + 'static,
    ) -> impl Strategy<Value = Option<T>> {
        prop_oneof![Just(None), s.prop_map(Some)]
    }

    prop_compose! {
        fn signals()(
            status in prop::sample::select(vec!["active", "blocked", "lost", "stolen", "closed"]),
            expired in any::<bool>(),
            tnc in opt(any::<bool>()),
            cvv in opt(any::<bool>()),
            capture in opt(prop::sample::select(vec!["BANK_APP", "ON_FILE", "CAMERA", "MANUAL", "UNKNOWN", "NEW_METHOD"])),
            tsp in opt(prop::sample::select(vec!["green", "yellow", "red", "purple"])),
            scores in prop::collection::vec(opt(1u8..=5), 4),
            attempts in opt(0u8..20),
            country in opt(prop::sample::select(vec!["GB", "FR", "US", "KP"])),
            tokens in 0i64..4,
        ) -> Signals {
            Signals {
                card_status: status.into(),
                card_active: status == "active",
                card_expired: expired,
                tnc_status: tnc,
                cvv_validated: cvv,
                capture_method: capture.map(str::to_owned),
                tsp_level_of_trust: tsp.map(str::to_owned),
                device_score: scores[0].map(f64::from),
                account_score: scores[1].map(f64::from),
                wallet_score: scores[2].map(f64::from),
                phone_number_score: scores[3].map(f64::from),
                provisioning_attempts_24h: attempts.map(f64::from),
                device_country: country.map(str::to_owned),
                active_tokens: tokens,
                ..Signals::default()
            }
        }
    }

    fn custom() -> Policy {
        let text = r#"
            default_outcome = "yellow"
            default_rule_name = "step-up"
            [[rules]]
            name = "sanctioned-country"
            outcome = "red"
            when = { device_country_in = ["KP"] }
            [[rules]]
            name = "many-tokens-email-only"
            outcome = "yellow"
            channels = ["email"]
            when = { active_tokens_at_least = 3 }
            [[rules]]
            name = "trusted"
            outcome = "green"
            when = { card_active = true, tsp_level_of_trust_not_in = ["yellow", "red"] }
            when_any = [ { cvv_validated = true }, { capture_method_in = ["BANK_APP"] } ]
        "#;
        let cfg: crate::config::PolicyConfig = toml::from_str(text).unwrap();
        Policy::compile(&cfg).unwrap()
    }

    proptest! {
        /// Every request gets exactly one outcome: the first matching rule's, else the default;
        /// the trace (what `policy explain` prints) agrees with the decision.
        #[test]
        fn exactly_one_outcome_and_explain_agrees(s in signals()) {
            for policy in [Policy::default_policy(), custom()] {
                let d = decide(&policy, &s);
                let trace = policy.trace(&s);
                let first = trace.iter().find(|t| t.matched);
                match first {
                    Some(t) => {
                        prop_assert_eq!(&d.rule, &t.name);
                        prop_assert_eq!(d.outcome, t.outcome);
                    }
                    None => {
                        prop_assert_eq!(&d.rule, &policy.default_rule_name);
                        prop_assert_eq!(d.outcome, policy.default_outcome);
                    }
                }
                if !s.card_active || s.card_expired {
                    prop_assert!(policy != Policy::default_policy() || d.outcome == LevelOfTrust::Red);
                }
            }
        }
    }

    #[test]
    fn errors_name_the_rule() {
        let text = r#"
            [[rules]]
            name = "ok-rule"
            outcome = "red"
            when = { tnc_status = false }
            [[rules]]
            name = "typo"
            outcome = "red"
            when = { devise_score_at_most = 2 }
            [[rules]]
            name = "bad-values"
            outcome = "purple"
            when = { any_score_at_most = 7, capture_method_in = ["TELEPATHY"] }
            [[rules]]
            name = "catch-all"
            outcome = "green"
            [[rules]]
            name = "never"
            outcome = "red"
            when = { card_active = false }
            [[rules]]
            name = "ok-rule"
            outcome = "yellow"
            channels = ["fax"]
            when = { cvv_validated = false }
        "#;
        let cfg: crate::config::PolicyConfig = toml::from_str(text).unwrap();
        let errors = Policy::compile(&cfg).unwrap_err();
        let all = errors.join("\n");
        for needle in [
            "policy.rules[2] 'typo': unknown setting or condition 'devise_score_at_most'",
            "policy.rules[3] 'bad-values': outcome: 'purple'",
            "policy.rules[3] 'bad-values': when.any_score_at_most: scores run from 1 to 5",
            "policy.rules[3] 'bad-values': when.capture_method_in: 'TELEPATHY'",
            "policy.rules[4] 'catch-all': has no condition, so the rules after it can never decide (unreachable: never, ok-rule)",
            "policy.rules[6] 'ok-rule': name 'ok-rule' is used twice",
            "policy.rules[6] 'ok-rule': channels: 'fax'",
        ] {
            assert!(all.contains(needle), "missing: {needle}\n{all}");
        }
    }
}
