//! The decision policy as configuration: an ordered list of named rules, each a set of
//! conditions on the request's signals and the card's record, and an outcome. The first rule
//! whose conditions all hold decides; `policy.default_outcome` closes the list.
//!
//! A condition on a signal the request did not send does not hold, except the `*_not_in`
//! conditions, which hold when the signal is absent or not in the list.

use super::Signals;
use crate::config::PolicyConfig;
use crate::domain::{CardStatus, IdvKind, LevelOfTrust};
use serde::{Deserialize, Serialize};

/// The conditions a rule may use. All that are set must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// The card's status is one of these (`active`, `blocked`, `lost`, `stolen`, `closed`).
    pub card_status_in: Option<Vec<String>>,
    /// The card is (true) or is not (false) active.
    pub card_active: Option<bool>,
    /// The card has (true) or has not (false) expired.
    pub card_expired: Option<bool>,
    /// The card expires within this many days.
    pub card_expires_within_days: Option<u32>,
    /// The card's product (`productId`) is one of these.
    pub product_in: Option<Vec<String>>,
    /// The request's `tncStatus` is exactly this.
    pub tnc_status: Option<bool>,
    /// The request's `cvvValidated` is exactly this.
    pub cvv_validated: Option<bool>,
    /// The capture method (`cardCaptureInformation.captureMethod`, else `captureMethod`) is one of these.
    pub capture_method_in: Option<Vec<String>>,
    /// The TSP's own `scoringInformation.levelOfTrust` is one of these.
    pub tsp_level_of_trust_in: Option<Vec<String>>,
    /// The TSP's own levelOfTrust is absent or not one of these.
    pub tsp_level_of_trust_not_in: Option<Vec<String>>,
    /// Any of the TSP's `reasonCodes` is one of these.
    pub reason_codes_any: Option<Vec<String>>,
    /// Any of deviceScore, accountScore, walletScore, phoneNumberScore is at most this (1..5).
    pub any_score_at_most: Option<f64>,
    pub device_score_at_most: Option<f64>,
    pub account_score_at_most: Option<f64>,
    pub wallet_score_at_most: Option<f64>,
    pub phone_number_score_at_most: Option<f64>,
    /// `walletUserInformation.provisioningAttemptsOnDeviceIn24Hours` is above this.
    pub provisioning_attempts_above: Option<f64>,
    /// The device country (ISO 3166 alpha-2) is one of these.
    pub device_country_in: Option<Vec<String>>,
    /// The device country is absent or not one of these.
    pub device_country_not_in: Option<Vec<String>>,
    /// The wallet (`walletProviderId`) is one of these.
    pub wallet_provider_in: Option<Vec<String>>,
    /// The token requestor (`tokenRequestor.id`) is one of these.
    pub token_requestor_in: Option<Vec<String>>,
    /// The card already has at least this many active tokens.
    pub active_tokens_at_least: Option<u32>,
    /// The card's phone number changed within this many days.
    pub phone_changed_within_days: Option<u32>,
    /// The card's e-mail address changed within this many days.
    pub email_changed_within_days: Option<u32>,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    name: String,
    outcome: String,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    when: Conditions,
    #[serde(default)]
    when_any: Vec<Conditions>,
    #[serde(default)]
    description: Option<String>,
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub outcome: LevelOfTrust,
    /// For yellow: the ID&V methods that may be offered, in the rule's order of preference
    /// (None: every configured method, in `idv.channel_preference` order).
    pub channels: Option<Vec<IdvKind>>,
    pub when: Conditions,
    pub when_any: Vec<Conditions>,
    pub description: Option<String>,
}

/// The compiled policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub default_outcome: LevelOfTrust,
    pub default_rule_name: String,
    /// `policy.when_no_otp_method = "customer_service"`: a yellow decision left with no
    /// deliverable OTP method offers customer service instead of turning red.
    pub customer_service_fallback: bool,
}

/// One condition's verdict, for `policy explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub condition: String,
    pub holds: bool,
    pub value: String,
}

/// A rule's verdict.
#[derive(Debug, Clone)]
pub struct RuleTrace {
    pub name: String,
    pub outcome: LevelOfTrust,
    pub matched: bool,
    pub checks: Vec<Check>,
    pub any_groups: Vec<Vec<Check>>,
}

const CAPTURE_METHODS: &[&str] = &["BANK_APP", "ON_FILE", "CAMERA", "MANUAL", "UNKNOWN"];

fn default_rules() -> Vec<Rule> {
    let c = Conditions::default;
    vec![
        Rule {
            name: "card-not-active-or-expired".into(),
            outcome: LevelOfTrust::Red,
            channels: None,
            when: c(),
            when_any: vec![Conditions { card_active: Some(false), ..c() }, Conditions { card_expired: Some(true), ..c() }],
            description: Some("the card is not active or has expired".into()),
        },
        Rule {
            name: "terms-not-accepted".into(),
            outcome: LevelOfTrust::Red,
            channels: None,
            when: Conditions { tnc_status: Some(false), ..c() },
            when_any: vec![],
            description: Some("tncStatus is false".into()),
        },
        Rule {
            name: "tsp-says-red".into(),
            outcome: LevelOfTrust::Red,
            channels: None,
            when: Conditions { tsp_level_of_trust_in: Some(vec!["red".into()]), ..c() },
            when_any: vec![],
            description: Some("the wallet's or TSP's own levelOfTrust is red".into()),
        },
        Rule {
            name: "lowest-risk-score".into(),
            outcome: LevelOfTrust::Red,
            channels: None,
            when: Conditions { any_score_at_most: Some(1.0), ..c() },
            when_any: vec![],
            description: Some("a device, account, wallet or phone-number score is 1 (least trusted)".into()),
        },
        Rule {
            name: "too-many-provisioning-attempts".into(),
            outcome: LevelOfTrust::Red,
            channels: None,
            when: Conditions { provisioning_attempts_above: Some(5.0), ..c() },
            when_any: vec![],
            description: Some("more than 5 provisioning attempts on the device in 24 hours".into()),
        },
        Rule {
            name: "trusted-capture".into(),
            outcome: LevelOfTrust::Green,
            channels: None,
            when: Conditions { tsp_level_of_trust_not_in: Some(vec!["yellow".into()]), ..c() },
            when_any: vec![
                Conditions { cvv_validated: Some(true), ..c() },
                Conditions { capture_method_in: Some(vec!["BANK_APP".into(), "ON_FILE".into()]), ..c() },
            ],
            description: Some("CVV validated, or card from the bank app or on file, and the TSP did not ask for step-up".into()),
        },
    ]
}

impl Policy {
    /// The built-in default policy of the contract.
    pub fn default_policy() -> Policy {
        Policy {
            rules: default_rules(),
            default_outcome: LevelOfTrust::Yellow,
            default_rule_name: "step-up".into(),
            customer_service_fallback: false,
        }
    }

    /// Compiles `[policy]`, reporting every problem with the rule it belongs to.
    pub fn compile(c: &PolicyConfig) -> Result<Policy, Vec<String>> {
        let mut problems = Vec::new();
        let default_outcome = LevelOfTrust::parse(&c.default_outcome).unwrap_or_else(|| {
            problems.push(format!(
                "policy.default_outcome: '{}' is not green, yellow or red",
                c.default_outcome
            ));
            LevelOfTrust::Yellow
        });
        if !valid_name(&c.default_rule_name) {
            problems.push(
                "policy.default_rule_name: use 1 to 64 characters a-z, 0-9, '-' or '_'".into(),
            );
        }
        let customer_service_fallback = match c.when_no_otp_method.as_str() {
            "red" => false,
            "customer_service" => true,
            _ => {
                problems.push("policy.when_no_otp_method: must be red or customer_service".into());
                false
            }
        };
        if c.rules.is_empty() {
            let mut p = Policy::default_policy();
            p.default_outcome = default_outcome;
            p.default_rule_name = c.default_rule_name.clone();
            p.customer_service_fallback = customer_service_fallback;
            return if problems.is_empty() {
                Ok(p)
            } else {
                Err(problems)
            };
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut positions: Vec<usize> = Vec::new();
        for (i, raw) in c.rules.iter().enumerate() {
            let label = match raw.get("name").and_then(|v| v.as_str()) {
                Some(n) => format!("policy.rules[{}] '{n}'", i + 1),
                None => format!("policy.rules[{}]", i + 1),
            };
            let rule: RuleConfig = match toml::Value::Table(raw.clone()).try_into() {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{label}: {}", describe_serde_error(&e.to_string())));
                    continue;
                }
            };
            let mut p = Vec::new();
            if !valid_name(&rule.name) {
                p.push("name: use 1 to 64 characters a-z, 0-9, '-' or '_'".to_owned());
            }
            if rules.iter().any(|r| r.name == rule.name) || rule.name == c.default_rule_name {
                p.push(format!("name '{}' is used twice", rule.name));
            }
            let outcome = LevelOfTrust::parse(&rule.outcome);
            if outcome.is_none() {
                p.push(format!(
                    "outcome: '{}' is not green, yellow or red",
                    rule.outcome
                ));
            }
            let channels = match &rule.channels {
                None => None,
                Some(list) => {
                    if outcome != Some(LevelOfTrust::Yellow) {
                        p.push("channels: only a yellow rule offers channels".into());
                    }
                    if list.is_empty() {
                        p.push(
                            "channels: list at least one of sms, email, bank_app, customer_service"
                                .into(),
                        );
                    }
                    let mut out = Vec::new();
                    for ch in list {
                        match IdvKind::parse(ch) {
                            Some(x) if out.contains(&x) => {
                                p.push(format!("channels: '{x}' is listed twice"));
                            }
                            Some(x) => out.push(x),
                            None => p.push(format!(
                                "channels: '{ch}' is not sms, email, bank_app or customer_service"
                            )),
                        }
                    }
                    Some(out)
                }
            };
            check_conditions(&rule.when, "when", &mut p);
            for (j, group) in rule.when_any.iter().enumerate() {
                let at = format!("when_any[{}]", j + 1);
                if *group == Conditions::default() {
                    p.push(format!("{at}: has no condition"));
                }
                check_conditions(group, &at, &mut p);
            }
            problems.extend(p.into_iter().map(|m| format!("{label}: {m}")));
            if let Some(outcome) = outcome {
                positions.push(i + 1);
                rules.push(Rule {
                    name: rule.name,
                    outcome,
                    channels,
                    when: rule.when,
                    when_any: rule.when_any,
                    description: rule.description,
                });
            }
        }
        // A rule without any condition matches every request: what follows can never decide.
        if let Some(pos) = rules
            .iter()
            .position(|r| r.when == Conditions::default() && r.when_any.is_empty())
        {
            let later: Vec<&str> = rules
                .iter()
                .skip(pos + 1)
                .map(|r| r.name.as_str())
                .collect();
            let r = rules.get(pos).map(|r| r.name.as_str()).unwrap_or("");
            let at = positions.get(pos).copied().unwrap_or(pos + 1);
            if later.is_empty() {
                problems.push(format!(
                    "policy.rules[{at}] '{r}': has no condition, so it decides every request that reaches it; use policy.default_outcome instead"
                ));
            } else {
                problems.push(format!(
                    "policy.rules[{at}] '{r}': has no condition, so the rules after it can never decide (unreachable: {})",
                    later.join(", ")
                ));
            }
        }
        if problems.is_empty() {
            Ok(Policy {
                rules,
                default_outcome,
                default_rule_name: c.default_rule_name.clone(),
                customer_service_fallback,
            })
        } else {
            Err(problems)
        }
    }

    /// Every rule's verdict on these signals, in order (all rules, for `policy explain`).
    pub fn trace(&self, s: &Signals) -> Vec<RuleTrace> {
        self.rules
            .iter()
            .map(|r| {
                let checks = evaluate(&r.when, s);
                let any_groups: Vec<Vec<Check>> =
                    r.when_any.iter().map(|g| evaluate(g, s)).collect();
                let matched = checks.iter().all(|c| c.holds)
                    && (any_groups.is_empty()
                        || any_groups.iter().any(|g| g.iter().all(|c| c.holds)));
                RuleTrace {
                    name: r.name.clone(),
                    outcome: r.outcome,
                    matched,
                    checks,
                    any_groups,
                }
            })
            .collect()
    }

    /// True when a rule looks at the card's active tokens (a database count per decision).
    pub fn uses_active_tokens(&self) -> bool {
        self.rules.iter().any(|r| {
            r.when.active_tokens_at_least.is_some()
                || r.when_any
                    .iter()
                    .any(|g| g.active_tokens_at_least.is_some())
        })
    }

    /// The first rule that matches, or the default.
    pub fn decide(&self, s: &Signals) -> (LevelOfTrust, String, Option<&Rule>) {
        for r in &self.rules {
            let all = evaluate(&r.when, s).iter().all(|c| c.holds);
            if !all {
                continue;
            }
            let any = r.when_any.is_empty()
                || r.when_any
                    .iter()
                    .any(|g| evaluate(g, s).iter().all(|c| c.holds));
            if any {
                return (r.outcome, r.name.clone(), Some(r));
            }
        }
        (self.default_outcome, self.default_rule_name.clone(), None)
    }
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Serde's "unknown field `x`, expected one of ..." as "unknown condition 'x'" when it is one.
fn describe_serde_error(e: &str) -> String {
    let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(rest) = e.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        return format!(
            "unknown setting or condition '{name}' (see docs/risk-policy.md for the conditions)"
        );
    }
    e
}

fn check_conditions(c: &Conditions, at: &str, p: &mut Vec<String>) {
    let score = |name: &str, v: Option<f64>, p: &mut Vec<String>| {
        if let Some(v) = v {
            if !(1.0..=5.0).contains(&v) {
                p.push(format!(
                    "{at}.{name}: scores run from 1 to 5, {v} is impossible"
                ));
            }
        }
    };
    score("any_score_at_most", c.any_score_at_most, p);
    score("device_score_at_most", c.device_score_at_most, p);
    score("account_score_at_most", c.account_score_at_most, p);
    score("wallet_score_at_most", c.wallet_score_at_most, p);
    score(
        "phone_number_score_at_most",
        c.phone_number_score_at_most,
        p,
    );
    if c.provisioning_attempts_above.is_some_and(|v| v < 0.0) {
        p.push(format!(
            "{at}.provisioning_attempts_above: cannot be negative"
        ));
    }
    let list = |name: &str,
                v: &Option<Vec<String>>,
                p: &mut Vec<String>,
                valid: &dyn Fn(&str) -> bool,
                what: &str| {
        if let Some(items) = v {
            if items.is_empty() {
                p.push(format!("{at}.{name}: an empty list never matches"));
            }
            for i in items {
                if !valid(i) {
                    p.push(format!("{at}.{name}: '{i}' is not {what}"));
                }
            }
        }
    };
    list(
        "card_status_in",
        &c.card_status_in,
        p,
        &|s| CardStatus::parse(s).is_some(),
        "a card status (active, blocked, lost, stolen, closed)",
    );
    let level = |s: &str| LevelOfTrust::parse(s).is_some();
    list(
        "tsp_level_of_trust_in",
        &c.tsp_level_of_trust_in,
        p,
        &level,
        "green, yellow or red",
    );
    list(
        "tsp_level_of_trust_not_in",
        &c.tsp_level_of_trust_not_in,
        p,
        &level,
        "green, yellow or red",
    );
    list(
        "capture_method_in",
        &c.capture_method_in,
        p,
        &|s| CAPTURE_METHODS.contains(&s.to_ascii_uppercase().as_str()),
        "a capture method (BANK_APP, ON_FILE, CAMERA, MANUAL, UNKNOWN)",
    );
    let country = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic());
    list(
        "device_country_in",
        &c.device_country_in,
        p,
        &country,
        "a two-letter country code",
    );
    list(
        "device_country_not_in",
        &c.device_country_not_in,
        p,
        &country,
        "a two-letter country code",
    );
    let any = |s: &str| !s.trim().is_empty();
    list("product_in", &c.product_in, p, &any, "a product id");
    list(
        "reason_codes_any",
        &c.reason_codes_any,
        p,
        &any,
        "a reason code",
    );
    list(
        "wallet_provider_in",
        &c.wallet_provider_in,
        p,
        &any,
        "a wallet provider id",
    );
    list(
        "token_requestor_in",
        &c.token_requestor_in,
        p,
        &any,
        "a token requestor id",
    );
    if c.card_active == Some(true)
        && c.card_status_in
            .as_ref()
            .is_some_and(|l| l.iter().all(|s| !s.eq_ignore_ascii_case("active")))
    {
        p.push(format!(
            "{at}: card_active = true with card_status_in not listing active can never hold"
        ));
    }
}

fn in_list(v: &Option<String>, list: &[String]) -> bool {
    v.as_ref()
        .is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v)))
}

fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(x) => format!("{x:?}"),
        None => "absent".into(),
    }
}

/// Evaluates each set condition.
fn evaluate(c: &Conditions, s: &Signals) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |condition: String, holds: bool, value: String| {
        out.push(Check {
            condition,
            holds,
            value,
        })
    };
    if let Some(l) = &c.card_status_in {
        push(
            format!("card_status_in {l:?}"),
            l.iter().any(|x| x.eq_ignore_ascii_case(&s.card_status)),
            s.card_status.clone(),
        );
    }
    if let Some(b) = c.card_active {
        push(
            format!("card_active = {b}"),
            s.card_active == b,
            s.card_active.to_string(),
        );
    }
    if let Some(b) = c.card_expired {
        push(
            format!("card_expired = {b}"),
            s.card_expired == b,
            s.card_expired.to_string(),
        );
    }
    if let Some(d) = c.card_expires_within_days {
        push(
            format!("card_expires_within_days {d}"),
            s.card_expires_in_days.is_some_and(|x| x <= i64::from(d)),
            show(&s.card_expires_in_days),
        );
    }
    if let Some(l) = &c.product_in {
        push(
            format!("product_in {l:?}"),
            l.iter().any(|x| x == &s.product_id),
            s.product_id.clone(),
        );
    }
    if let Some(b) = c.tnc_status {
        push(
            format!("tnc_status = {b}"),
            s.tnc_status == Some(b),
            show(&s.tnc_status),
        );
    }
    if let Some(b) = c.cvv_validated {
        push(
            format!("cvv_validated = {b}"),
            s.cvv_validated == Some(b),
            show(&s.cvv_validated),
        );
    }
    if let Some(l) = &c.capture_method_in {
        push(
            format!("capture_method_in {l:?}"),
            in_list(&s.capture_method, l),
            show(&s.capture_method),
        );
    }
    if let Some(l) = &c.tsp_level_of_trust_in {
        push(
            format!("tsp_level_of_trust_in {l:?}"),
            in_list(&s.tsp_level_of_trust, l),
            show(&s.tsp_level_of_trust),
        );
    }
    if let Some(l) = &c.tsp_level_of_trust_not_in {
        push(
            format!("tsp_level_of_trust_not_in {l:?}"),
            !in_list(&s.tsp_level_of_trust, l),
            show(&s.tsp_level_of_trust),
        );
    }
    if let Some(l) = &c.reason_codes_any {
        let holds = s
            .reason_codes
            .iter()
            .any(|r| l.iter().any(|x| x.eq_ignore_ascii_case(r)));
        push(
            format!("reason_codes_any {l:?}"),
            holds,
            format!("{:?}", s.reason_codes),
        );
    }
    let scores = [
        s.device_score,
        s.account_score,
        s.wallet_score,
        s.phone_number_score,
    ];
    if let Some(m) = c.any_score_at_most {
        push(
            format!("any_score_at_most {m}"),
            scores.iter().flatten().any(|x| *x <= m),
            format!("{scores:?}"),
        );
    }
    for (name, limit, value) in [
        (
            "device_score_at_most",
            c.device_score_at_most,
            s.device_score,
        ),
        (
            "account_score_at_most",
            c.account_score_at_most,
            s.account_score,
        ),
        (
            "wallet_score_at_most",
            c.wallet_score_at_most,
            s.wallet_score,
        ),
        (
            "phone_number_score_at_most",
            c.phone_number_score_at_most,
            s.phone_number_score,
        ),
    ] {
        if let Some(m) = limit {
            push(
                format!("{name} {m}"),
                value.is_some_and(|v| v <= m),
                show(&value),
            );
        }
    }
    if let Some(m) = c.provisioning_attempts_above {
        push(
            format!("provisioning_attempts_above {m}"),
            s.provisioning_attempts_24h.is_some_and(|v| v > m),
            show(&s.provisioning_attempts_24h),
        );
    }
    if let Some(l) = &c.device_country_in {
        push(
            format!("device_country_in {l:?}"),
            in_list(&s.device_country, l),
            show(&s.device_country),
        );
    }
    if let Some(l) = &c.device_country_not_in {
        push(
            format!("device_country_not_in {l:?}"),
            !in_list(&s.device_country, l),
            show(&s.device_country),
        );
    }
    if let Some(l) = &c.wallet_provider_in {
        push(
            format!("wallet_provider_in {l:?}"),
            in_list(&s.wallet_provider_id, l),
            show(&s.wallet_provider_id),
        );
    }
    if let Some(l) = &c.token_requestor_in {
        push(
            format!("token_requestor_in {l:?}"),
            in_list(&s.token_requestor_id, l),
            show(&s.token_requestor_id),
        );
    }
    if let Some(n) = c.active_tokens_at_least {
        push(
            format!("active_tokens_at_least {n}"),
            s.active_tokens >= i64::from(n),
            s.active_tokens.to_string(),
        );
    }
    if let Some(d) = c.phone_changed_within_days {
        push(
            format!("phone_changed_within_days {d}"),
            s.days_since_phone_change.is_some_and(|x| x < f64::from(d)),
            show(&s.days_since_phone_change),
        );
    }
    if let Some(d) = c.email_changed_within_days {
        push(
            format!("email_changed_within_days {d}"),
            s.days_since_email_change.is_some_and(|x| x < f64::from(d)),
            show(&s.days_since_email_change),
        );
    }
    out
}
