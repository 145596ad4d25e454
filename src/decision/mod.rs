//! The digitization decision: an ordered list of rules over the request's signals and the
//! card's record; the first rule that matches decides, and its name is recorded.

use crate::api::fields::Fields;
use crate::domain::LevelOfTrust;
use serde::Serialize;

/// What the decision may look at. Nothing here is cardholder data.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Signals {
    pub card_active: bool,
    pub card_expired: bool,
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
}

impl Signals {
    /// Reads the signals of a `requestCardDigitization` body. Unreadable signals are absent;
    /// only wrongly typed top-level fields are errors.
    pub fn from_request(
        body: &Fields<'_>,
        card_active: bool,
        card_expired: bool,
    ) -> Result<Signals, crate::api::error::ApiError> {
        let capture = body.opt_obj("cardCaptureInformation")?;
        let scoring = body.opt_obj("scoringInformation")?;
        let wallet_user = body.opt_obj("walletUserInformation")?;
        let device = body.opt_obj("deviceInformation")?;
        let capture_method = capture
            .as_ref()
            .and_then(|c| c.signal("captureMethod"))
            .or_else(|| body.signal("captureMethod"))
            .map(|s| s.to_ascii_uppercase());
        let score = |name: &str| scoring.as_ref().and_then(|s| s.signal_num(name));
        let reason_codes = scoring
            .as_ref()
            .and_then(|s| s.0.get("reasonCodes"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| match v {
                        serde_json::Value::String(s) => Some(s.trim().to_ascii_uppercase()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .take(64)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Signals {
            card_active,
            card_expired,
            tnc_status: body.opt_bool("tncStatus")?,
            cvv_validated: body.opt_bool("cvvValidated")?,
            capture_method,
            tsp_level_of_trust: scoring
                .as_ref()
                .and_then(|s| s.signal("levelOfTrust"))
                .map(|s| s.to_ascii_lowercase()),
            device_score: score("deviceScore"),
            account_score: score("accountScore"),
            wallet_score: score("walletScore"),
            phone_number_score: score("phoneNumberScore"),
            provisioning_attempts_24h: wallet_user
                .as_ref()
                .and_then(|w| w.signal_num("provisioningAttemptsOnDeviceIn24Hours")),
            reason_codes,
            device_country: scoring
                .as_ref()
                .and_then(|s| s.signal("deviceCountry"))
                .or_else(|| device.as_ref().and_then(|d| d.signal("deviceCountry")))
                .map(|s| s.to_ascii_uppercase()),
            wallet_provider_id: body
                .signal("walletProviderId")
                .map(|s| s.to_ascii_uppercase()),
        })
    }
}

/// The outcome and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: LevelOfTrust,
    pub rule: String,
    pub reason: String,
}

struct Rule {
    name: &'static str,
    reason: &'static str,
    outcome: LevelOfTrust,
    matches: fn(&Signals) -> bool,
}

/// The default policy of the contract (section 5 of the API spec), in order.
const DEFAULT_RULES: &[Rule] = &[
    Rule {
        name: "card-not-active-or-expired",
        reason: "the card is not active or has expired",
        outcome: LevelOfTrust::Red,
        matches: |s| !s.card_active || s.card_expired,
    },
    Rule {
        name: "terms-not-accepted",
        reason: "tncStatus is false",
        outcome: LevelOfTrust::Red,
        matches: |s| s.tnc_status == Some(false),
    },
    Rule {
        name: "tsp-says-red",
        reason: "the wallet's or TSP's own levelOfTrust is red",
        outcome: LevelOfTrust::Red,
        matches: |s| s.tsp_level_of_trust.as_deref() == Some("red"),
    },
    Rule {
        name: "lowest-risk-score",
        reason: "a device, account, wallet or phone-number score is 1 (least trusted)",
        outcome: LevelOfTrust::Red,
        matches: |s| {
            [
                s.device_score,
                s.account_score,
                s.wallet_score,
                s.phone_number_score,
            ]
            .contains(&Some(1.0))
        },
    },
    Rule {
        name: "too-many-provisioning-attempts",
        reason: "more than 5 provisioning attempts on the device in 24 hours",
        outcome: LevelOfTrust::Red,
        matches: |s| s.provisioning_attempts_24h.is_some_and(|n| n > 5.0),
    },
    Rule {
        name: "trusted-capture",
        reason: "CVV validated, or card from the bank app or on file, and the TSP did not ask for step-up",
        outcome: LevelOfTrust::Green,
        matches: |s| {
            let trusted = s.cvv_validated == Some(true)
                || matches!(s.capture_method.as_deref(), Some("BANK_APP" | "ON_FILE"));
            trusted && s.tsp_level_of_trust.as_deref() != Some("yellow")
        },
    },
];

/// The rule that closes the list.
pub const DEFAULT_RULE: &str = "step-up";
/// The rule recorded when a yellow decision has no deliverable ID&V method left.
pub const NO_METHOD_RULE: &str = "no-deliverable-idv-method";

/// Applies the policy: the first matching rule decides, else step-up (yellow).
pub fn decide(signals: &Signals) -> Decision {
    for r in DEFAULT_RULES {
        if (r.matches)(signals) {
            return Decision {
                outcome: r.outcome,
                rule: r.name.to_owned(),
                reason: r.reason.to_owned(),
            };
        }
    }
    Decision {
        outcome: LevelOfTrust::Yellow,
        rule: DEFAULT_RULE.to_owned(),
        reason: "no rule approved or declined: step-up with an OTP".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Signals {
        Signals {
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
                DEFAULT_RULE,
                LevelOfTrust::Yellow,
            ),
            (
                Signals {
                    capture_method: Some("MANUAL".into()),
                    ..base()
                },
                DEFAULT_RULE,
                LevelOfTrust::Yellow,
            ),
            (
                Signals {
                    provisioning_attempts_24h: Some(5.0),
                    ..base()
                },
                DEFAULT_RULE,
                LevelOfTrust::Yellow,
            ),
        ];
        for (signals, rule, outcome) in cases {
            let d = decide(&signals);
            assert_eq!((d.rule.as_str(), d.outcome), (rule, outcome), "{signals:?}");
        }
    }
}
