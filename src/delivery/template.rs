//! Building the message of a send: the template of the cardholder's language (the enrolment's
//! device language, else the card's, else the default; each template set on its own), with the
//! OTP inserted byte for byte. The template syntax itself is `domain::template`.

use super::Message;
use crate::config::TemplatesConfig;
use crate::domain::template::{Template, Values};
use crate::domain::{Channel, Language, Otp};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// What a message is about, besides its OTP and destination.
pub struct About<'a> {
    /// The card's last four digits.
    pub last4: &'a str,
    /// The wallet's `walletProviderId`, when known.
    pub wallet: Option<&'a str>,
    /// The languages to try, in order (device, then card).
    pub languages: &'a [Language],
}

/// The message for the channel.
pub fn build(
    templates: &TemplatesConfig,
    channel: Channel,
    to: Zeroizing<String>,
    otp: &Otp,
    about: &About<'_>,
) -> Message {
    let render = |m: &BTreeMap<String, Template>, v: &Values<'_>| {
        pick(m, about.languages, &templates.default_language)
            .map(|t| t.render(v))
            .unwrap_or_default()
    };
    let wallet_name = wallet_display_name(about.wallet.unwrap_or(""));
    let values = Values {
        otp: otp.expose(),
        last4: about.last4,
        wallet: &wallet_name,
    };
    match channel {
        Channel::Sms => Message {
            channel,
            to,
            subject: None,
            body: render(&templates.sms, &values),
        },
        Channel::Email => Message {
            channel,
            to,
            subject: Some(
                render(&templates.email_subject, &Values { otp: "", ..values }).to_string(),
            ),
            body: render(&templates.email_body, &values),
        },
    }
}

/// The first of `languages` the set has a template for, else the default language's.
fn pick<'m>(
    m: &'m BTreeMap<String, Template>,
    languages: &[Language],
    default_language: &str,
) -> Option<&'m Template> {
    languages
        .iter()
        .find_map(|l| m.get(l.as_str()))
        .or_else(|| m.get(default_language))
}

/// The display name of a wallet provider id, for messages.
pub fn wallet_display_name(wallet_provider_id: &str) -> String {
    match wallet_provider_id.to_ascii_uppercase().as_str() {
        "APPLE_PAY" => "Apple Pay".into(),
        "ANDROID_PAY" | "GOOGLE_PAY" => "Google Pay".into(),
        "SPAYHCE" | "SAMSUNG_PAY" => "Samsung Pay".into(),
        "GARMIN_PAY" => "Garmin Pay".into(),
        "FITBIT_PAY" => "Fitbit Pay".into(),
        "" => "your wallet".into(),
        _ => wallet_provider_id
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(64)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn each_template_set_falls_back_on_its_own() {
        let mut t = Config::default().templates;
        t.email_subject.remove("fr");
        let fr = [Language::parse("fr-FR").unwrap()];
        let about = About {
            last4: "1111",
            wallet: Some("APPLE_PAY"),
            languages: &fr,
        };
        let otp = Otp::new("123456").unwrap();
        let m = build(
            &t,
            Channel::Email,
            Zeroizing::new("a@b.c".into()),
            &otp,
            &about,
        );
        assert_eq!(
            m.subject.as_deref(),
            Some("Your code to add your card to Apple Pay")
        );
        assert!(m.body.starts_with("Bonjour"), "{}", m.body.as_str());
        assert!(m.body.contains("123456"));
    }
}
