//! Which ID&V methods a yellow decision offers, and in what order: the OTP channels that can
//! deliver (found by the caller: a destination on file, not changed recently, ...), the bank's
//! app (for a wallet with an entry in `idv.bank_app.wallets`), customer service; ordered by the
//! deciding rule's `channels` when it lists them, else by `idv.channel_preference`; customer
//! service added when no OTP method remains and the policy says so
//! (`policy.when_no_otp_method = "customer_service"`). Pure: no I/O.

use super::Policy;
use crate::config::IdvConfig;
use crate::domain::{IdvKind, Language};
use serde_json::{Value, json};

/// One method to offer: its kind and the value the wallet shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub kind: IdvKind,
    pub value: String,
}

/// What the request and the card say, for the choice.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The request's `walletProviderId`.
    pub wallet: Option<&'a str>,
    /// The device's language, then the card's.
    pub languages: &'a [Language],
}

/// The methods to offer, in order. `otp` holds the OTP methods that can deliver (kind and
/// masked destination); `rule_channels` the deciding rule's `channels`, if it lists them.
pub fn arrange(
    idv: &IdvConfig,
    policy: &Policy,
    rule_channels: Option<&[IdvKind]>,
    otp: &[(IdvKind, String)],
    ctx: Context<'_>,
) -> Vec<Offer> {
    let order: Vec<IdvKind> = match rule_channels {
        Some(rule) => rule
            .iter()
            .copied()
            .filter(|k| idv.channel_preference.contains(k))
            .collect(),
        None => idv.channel_preference.clone(),
    };
    let mut out: Vec<Offer> = Vec::new();
    for kind in order {
        let value = match kind {
            IdvKind::Sms | IdvKind::Email => {
                otp.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.clone())
            }
            IdvKind::BankApp => (idv.bank_app.enabled && idv.bank_app_wallet(ctx.wallet).is_some())
                .then(|| idv.bank_app.value.clone()),
            IdvKind::CustomerService => idv
                .customer_service
                .enabled
                .then(|| idv.customer_service_value(ctx.languages).to_owned()),
        };
        if let Some(value) = value {
            out.push(Offer { kind, value });
        }
    }
    let has_otp = out.iter().any(|o| o.kind.channel().is_some());
    if !has_otp
        && policy.customer_service_fallback
        && idv.customer_service.enabled
        && !out.iter().any(|o| o.kind == IdvKind::CustomerService)
    {
        out.push(Offer {
            kind: IdvKind::CustomerService,
            value: idv.customer_service_value(ctx.languages).to_owned(),
        });
    }
    out
}

/// One entry of `idvMethodList`: `{"id", "type", "value"}`, and for the bank's app the wallet's
/// `source` and `platform` when its entry has them.
pub fn method_json(
    idv: &IdvConfig,
    wallet: Option<&str>,
    kind: IdvKind,
    id: &str,
    method_type: &str,
    value: &str,
) -> Value {
    let mut m = json!({ "id": id, "type": method_type, "value": value });
    if kind == IdvKind::BankApp {
        if let (Some(entry), Some(obj)) = (idv.bank_app_wallet(wallet), m.as_object_mut()) {
            if let (Some(source), Some(platform)) = (&entry.source, &entry.platform) {
                obj.insert("source".into(), Value::String(source.clone()));
                obj.insert("platform".into(), Value::String(platform.clone()));
            }
        }
    }
    m
}

/// For `policy explain`: the methods a yellow decision would offer for this wallet, when
/// every OTP channel that is configured can deliver (the server also drops those with no
/// destination on file, changed recently, ...).
pub fn explain(
    idv: &IdvConfig,
    policy: &Policy,
    rule_channels: Option<&[IdvKind]>,
    wallet: Option<&str>,
) -> String {
    let otp: Vec<(IdvKind, String)> = [IdvKind::Sms, IdvKind::Email]
        .into_iter()
        .map(|k| (k, "(destination on file)".to_owned()))
        .collect();
    let with_otp = arrange(
        idv,
        policy,
        rule_channels,
        &otp,
        Context {
            wallet,
            languages: &[],
        },
    );
    let without_otp = arrange(
        idv,
        policy,
        rule_channels,
        &[],
        Context {
            wallet,
            languages: &[],
        },
    );
    let list = |offers: &[Offer]| {
        if offers.is_empty() {
            "none: the server answers red (rule no-deliverable-idv-method)".to_owned()
        } else {
            offers
                .iter()
                .map(|o| {
                    let extra = match (o.kind, idv.bank_app_wallet(wallet)) {
                        (IdvKind::BankApp, Some(e)) => match (&e.source, &e.platform) {
                            (Some(s), Some(p)) => format!(" (source {s}, platform {p})"),
                            _ => String::new(),
                        },
                        _ => String::new(),
                    };
                    format!("{}{extra}", o.kind)
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "methods offered if yellow: {}\n  with no deliverable OTP method: {}\n",
        list(&with_otp),
        list(&without_otp)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn idv(text: &str) -> IdvConfig {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), text).unwrap();
        Config::load(Some(path.path()), vec![]).unwrap().idv
    }

    const BOTH: &str = r#"
        [idv]
        channel_preference = ["bank_app", "sms", "email"]
        [idv.bank_app]
        enabled = true
        value = "My Bank"
        [idv.bank_app.wallets.APPLE_PAY]
        source = "123456789"
        platform = "IOS"
        [idv.customer_service]
        enabled = true
        value = "+44 20 7946 0000"
        values.fr = "+33 1 23 45 67 89"
    "#;

    fn kinds(o: &[Offer]) -> Vec<IdvKind> {
        o.iter().map(|o| o.kind).collect()
    }

    #[test]
    fn bank_app_only_for_a_wallet_with_an_entry_and_in_preference_order() {
        let idv = idv(BOTH);
        let policy = Policy::default_policy();
        let otp = vec![(IdvKind::Sms, "*******0123".to_owned())];
        let apple = Context {
            wallet: Some("APPLE_PAY"),
            languages: &[],
        };
        let google = Context {
            wallet: Some("GOOGLE_PAY"),
            languages: &[],
        };
        assert_eq!(
            kinds(&arrange(&idv, &policy, None, &otp, apple)),
            vec![IdvKind::BankApp, IdvKind::Sms]
        );
        assert_eq!(
            kinds(&arrange(&idv, &policy, None, &otp, google)),
            vec![IdvKind::Sms]
        );
        // A rule orders and restricts.
        let rule = [IdvKind::Sms, IdvKind::BankApp];
        assert_eq!(
            kinds(&arrange(&idv, &policy, Some(&rule), &otp, apple)),
            vec![IdvKind::Sms, IdvKind::BankApp]
        );
        let m = method_json(
            &idv,
            Some("apple_pay"),
            IdvKind::BankApp,
            "x",
            "bank_app",
            "My Bank",
        );
        assert_eq!(m["source"], "123456789");
        assert_eq!(m["platform"], "IOS");
    }

    #[test]
    fn customer_service_replaces_red_only_when_the_policy_says_so() {
        let idv = idv(BOTH);
        let mut policy = Policy::default_policy();
        let fr = [Language::parse("fr").unwrap()];
        let ctx = Context {
            wallet: Some("GOOGLE_PAY"),
            languages: &fr,
        };
        assert!(arrange(&idv, &policy, None, &[], ctx).is_empty());
        policy.customer_service_fallback = true;
        let offered = arrange(&idv, &policy, None, &[], ctx);
        assert_eq!(
            offered,
            vec![Offer {
                kind: IdvKind::CustomerService,
                value: "+33 1 23 45 67 89".into()
            }]
        );
        // With an OTP method left, no fallback.
        let otp = vec![(IdvKind::Email, "j***@example.com".to_owned())];
        assert_eq!(
            kinds(&arrange(&idv, &policy, None, &otp, ctx)),
            vec![IdvKind::Email]
        );
    }
}
