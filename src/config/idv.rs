//! `[idv]`: the ID&V methods offered in yellow answers: the OTP channels (Option B), the bank's
//! app (`[idv.bank_app]`, Option C) and customer service (`[idv.customer_service]`, Option D).

use crate::domain::{IdvKind, Language};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest `type`, `value`, `source` accepted (Thales publishes no maximum).
const MAX_TEXT: usize = 128;

#[derive(Debug, Clone, Serialize)]
pub struct IdvConfig {
    /// `type` of the SMS-OTP method in `idvMethodList`.
    pub sms_type: String,
    /// `type` of the e-mail-OTP method in `idvMethodList`.
    pub email_type: String,
    /// Method order in `idvMethodList` (a kind not listed is not offered, except customer
    /// service as the policy's fallback), and the channel used when `sendOTP` names no method.
    pub channel_preference: Vec<IdvKind>,
    pub bank_app: BankAppConfig,
    pub customer_service: CustomerServiceConfig,
}

/// `[idv.bank_app]`: activation by the bank's own app (Option C).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BankAppConfig {
    pub enabled: bool,
    /// `type` of the method in `idvMethodList`.
    #[serde(rename = "type")]
    pub method_type: String,
    /// What the wallet shows (the app's name).
    pub value: String,
    /// How long after the yellow answer the app may still activate the token.
    pub valid_for_minutes: u32,
    /// Per wallet (`walletProviderId`, upper case): the app that proves the cardholder's
    /// identity. A wallet with no entry is not offered the method.
    pub wallets: BTreeMap<String, BankAppWallet>,
}

/// `[idv.bank_app.wallets.<WALLET>]`: added to the method for that wallet (VTS-backed wallets
/// need both; an empty entry offers the method without them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BankAppWallet {
    /// The app's Apple Adam ID, or its Android package name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `IOS`, `ANDROID` or `WEB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// `[idv.customer_service]`: the call centre (Option D).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerServiceConfig {
    pub enabled: bool,
    /// `type` of the method in `idvMethodList`.
    #[serde(rename = "type")]
    pub method_type: String,
    /// The phone number to call.
    pub value: String,
    /// The number to call per language (`values.fr = "..."`), else `value`.
    pub values: BTreeMap<String, String>,
}

impl Default for BankAppConfig {
    fn default() -> Self {
        BankAppConfig {
            enabled: false,
            method_type: "bank_app".into(),
            value: String::new(),
            valid_for_minutes: 30,
            wallets: BTreeMap::new(),
        }
    }
}

impl Default for CustomerServiceConfig {
    fn default() -> Self {
        CustomerServiceConfig {
            enabled: false,
            method_type: "customer_service".into(),
            value: String::new(),
            values: BTreeMap::new(),
        }
    }
}

/// `[idv]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct IdvFile {
    sms_type: String,
    email_type: String,
    channel_preference: Vec<String>,
    bank_app: BankAppConfig,
    customer_service: CustomerServiceConfig,
}

impl Default for IdvFile {
    fn default() -> Self {
        IdvFile {
            sms_type: "sms".into(),
            email_type: "email".into(),
            channel_preference: vec!["sms".into(), "email".into()],
            bank_app: BankAppConfig::default(),
            customer_service: CustomerServiceConfig::default(),
        }
    }
}

const KINDS: &str = "sms, email, bank_app, customer_service";

impl IdvFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> IdvConfig {
        if self.channel_preference.is_empty() {
            p.push(format!(
                "idv.channel_preference: list at least one of {KINDS}"
            ));
        }
        let mut kinds = Vec::new();
        for (i, c) in self.channel_preference.iter().enumerate() {
            match IdvKind::parse(c) {
                Some(k) if kinds.contains(&k) => {
                    p.push(format!("idv.channel_preference: {k} is listed twice"));
                }
                Some(k) => kinds.push(k),
                None => p.push(format!(
                    "idv.channel_preference: item {} is not a channel ({KINDS})",
                    i + 1
                )),
            }
        }
        let mut bank_app = self.bank_app;
        bank_app.wallets = bank_app
            .wallets
            .into_iter()
            .map(|(w, e)| (w.trim().to_ascii_uppercase(), e))
            .collect();
        let mut customer_service = self.customer_service;
        let mut values = BTreeMap::new();
        for (lang, v) in customer_service.values {
            match Language::parse(&lang) {
                Some(l) => {
                    values.insert(l.to_string(), v);
                }
                None => p.push(format!(
                    "idv.customer_service.values.{}: not a language code (en, fr, ...)",
                    crate::domain::log_safe(&lang)
                )),
            }
        }
        customer_service.values = values;
        IdvConfig {
            sms_type: self.sms_type,
            email_type: self.email_type,
            channel_preference: kinds,
            bank_app,
            customer_service,
        }
    }
}

impl IdvConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        let types = [
            ("idv.sms_type", &self.sms_type),
            ("idv.email_type", &self.email_type),
            ("idv.bank_app.type", &self.bank_app.method_type),
            (
                "idv.customer_service.type",
                &self.customer_service.method_type,
            ),
        ];
        for (key, v) in types {
            if v.trim().is_empty() {
                p.push(format!("{key}: must not be empty"));
            } else if v.len() > MAX_TEXT {
                p.push(format!("{key}: at most {MAX_TEXT} characters"));
            }
        }
        for (i, (key, v)) in types.iter().enumerate() {
            if let Some((earlier, _)) = types
                .iter()
                .take(i)
                .find(|(_, w)| w.eq_ignore_ascii_case(v))
            {
                p.push(format!("{key}: must differ from {earlier}"));
            }
        }
        let b = &self.bank_app;
        if b.enabled {
            if b.value.trim().is_empty() || b.value.len() > MAX_TEXT {
                p.push(format!(
                    "idv.bank_app.value: required when idv.bank_app.enabled (the app's name, 1 to {MAX_TEXT} characters)"
                ));
            }
            if !self.channel_preference.contains(&IdvKind::BankApp) {
                p.push("idv.channel_preference: add bank_app, or idv.bank_app.enabled offers it nowhere".into());
            }
            if b.wallets.is_empty() {
                p.push("idv.bank_app.wallets: name at least one wallet (a wallet with no entry is not offered the method)".into());
            }
        } else if self.channel_preference.contains(&IdvKind::BankApp) {
            p.push(
                "idv.channel_preference: lists bank_app, but idv.bank_app.enabled is false".into(),
            );
        }
        if !(1..=1440).contains(&b.valid_for_minutes) {
            p.push("idv.bank_app.valid_for_minutes: must be 1 to 1440".into());
        }
        for (wallet, e) in &b.wallets {
            let at = format!("idv.bank_app.wallets.{}", crate::domain::log_safe(wallet));
            match (&e.source, &e.platform) {
                (None, None) => {}
                (Some(_), None) | (None, Some(_)) => {
                    p.push(format!("{at}: give both source and platform, or neither"));
                }
                (Some(source), Some(platform)) => {
                    if source.trim().is_empty() || source.len() > MAX_TEXT {
                        p.push(format!("{at}.source: 1 to {MAX_TEXT} characters"));
                    }
                    if !["IOS", "ANDROID", "WEB"].contains(&platform.as_str()) {
                        p.push(format!("{at}.platform: must be IOS, ANDROID or WEB"));
                    }
                }
            }
        }
        let c = &self.customer_service;
        if c.enabled {
            if c.value.trim().is_empty() || c.value.len() > MAX_TEXT {
                p.push(format!(
                    "idv.customer_service.value: required when idv.customer_service.enabled (the number to call, 1 to {MAX_TEXT} characters)"
                ));
            }
        } else if self.channel_preference.contains(&IdvKind::CustomerService) {
            p.push(
                "idv.channel_preference: lists customer_service, but idv.customer_service.enabled is false"
                    .into(),
            );
        }
        for (lang, v) in &c.values {
            if v.trim().is_empty() || v.len() > MAX_TEXT {
                p.push(format!(
                    "idv.customer_service.values.{lang}: 1 to {MAX_TEXT} characters"
                ));
            }
        }
    }

    /// The checks that need `[policy]` too: customer service as the fallback needs it enabled.
    pub fn validate_with_policy(&self, policy: &super::PolicyConfig, p: &mut Vec<String>) {
        if policy.when_no_otp_method == "customer_service" && !self.customer_service.enabled {
            p.push("policy.when_no_otp_method: is customer_service, but idv.customer_service.enabled is false".into());
        }
    }

    /// The `type` of the method in `idvMethodList`.
    pub fn method_type(&self, kind: IdvKind) -> &str {
        match kind {
            IdvKind::Sms => &self.sms_type,
            IdvKind::Email => &self.email_type,
            IdvKind::BankApp => &self.bank_app.method_type,
            IdvKind::CustomerService => &self.customer_service.method_type,
        }
    }

    /// The number to call for this language (else the first of `languages` that has one, else
    /// `value`).
    pub fn customer_service_value(&self, languages: &[Language]) -> &str {
        languages
            .iter()
            .find_map(|l| self.customer_service.values.get(l.as_str()))
            .unwrap_or(&self.customer_service.value)
    }

    /// The bank-app entry of a wallet (`None`: the wallet is not offered the method).
    pub fn bank_app_wallet(&self, wallet: Option<&str>) -> Option<&BankAppWallet> {
        let w = wallet?.trim().to_ascii_uppercase();
        self.bank_app.wallets.get(&w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (IdvConfig, Vec<String>) {
        let file: IdvFile = toml::from_str(text).unwrap();
        let mut p = Vec::new();
        let c = file.parse(&mut p);
        c.validate(&mut p);
        (c, p)
    }

    #[test]
    fn bank_app_and_customer_service_parse_and_are_checked() {
        let (c, p) = parse(
            r#"
            channel_preference = ["bank_app", "sms", "email", "customer_service"]
            [bank_app]
            enabled = true
            value = "My Bank"
            [bank_app.wallets.apple_pay]
            source = "123456789"
            platform = "IOS"
            [bank_app.wallets.MDES_WALLET]
            [customer_service]
            enabled = true
            value = "+44 20 7946 0000"
            values.fr-FR = "+33 1 23 45 67 89"
            "#,
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.channel_preference.first(), Some(&IdvKind::BankApp));
        let apple = c.bank_app_wallet(Some("Apple_Pay")).unwrap();
        assert_eq!(apple.platform.as_deref(), Some("IOS"));
        assert!(
            c.bank_app_wallet(Some("MDES_WALLET"))
                .unwrap()
                .source
                .is_none()
        );
        assert!(c.bank_app_wallet(Some("GOOGLE_PAY")).is_none());
        assert!(c.bank_app_wallet(None).is_none());
        let fr = Language::parse("fr").unwrap();
        assert_eq!(c.customer_service_value(&[fr]), "+33 1 23 45 67 89");
        assert_eq!(c.customer_service_value(&[]), "+44 20 7946 0000");
    }

    #[test]
    fn errors_name_the_key() {
        let (_, p) = parse(
            r#"
            channel_preference = ["bank_app", "customer_service", "fax"]
            [bank_app]
            enabled = true
            type = "SMS"
            valid_for_minutes = 0
            [bank_app.wallets.GOOGLE_PAY]
            platform = "PALM"
            [bank_app.wallets.APPLE_PAY]
            source = "1"
            platform = "PALM"
            "#,
        );
        let all = p.join("\n");
        for needle in [
            "idv.channel_preference: item 3 is not a channel",
            "idv.bank_app.type: must differ from idv.sms_type",
            "idv.bank_app.value: required when idv.bank_app.enabled",
            "idv.bank_app.valid_for_minutes: must be 1 to 1440",
            "idv.bank_app.wallets.GOOGLE_PAY: give both source and platform, or neither",
            "idv.bank_app.wallets.APPLE_PAY.platform: must be IOS, ANDROID or WEB",
            "idv.channel_preference: lists customer_service, but idv.customer_service.enabled is false",
        ] {
            assert!(all.contains(needle), "missing: {needle}\n{all}");
        }
    }
}
