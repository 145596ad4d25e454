//! Building the message of a send: the template of the cardholder's language (the enrolment's
//! device language, else the card's, else the default; each template set on its own), with the
//! OTP inserted byte for byte. The template syntax itself is `domain::template`.

use super::Message;
use crate::config::TemplatesConfig;
use crate::domain::template::{Template, Values};
use crate::domain::{Channel, Language, Otp};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// What the code is for, which picks the template set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Adding a card to a wallet (the enrolment's ID&V).
    AddCard,
    /// Confirming another device for a card already in the wallet (`deviceBindingReference`).
    DeviceBinding,
}

/// What a message is about, besides its OTP and destination.
pub struct About<'a> {
    pub purpose: Purpose,
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
        ..Values::default()
    };
    let (sms, subject, body) = match about.purpose {
        Purpose::AddCard => (
            &templates.sms,
            &templates.email_subject,
            &templates.email_body,
        ),
        Purpose::DeviceBinding => (
            &templates.device_binding_sms,
            &templates.device_binding_email_subject,
            &templates.device_binding_email_body,
        ),
    };
    match channel {
        Channel::Sms => Message {
            channel,
            to,
            subject: None,
            body: render(sms, &values),
        },
        Channel::Email => Message {
            channel,
            to,
            subject: Some(render(subject, &Values { otp: "", ..values }).to_string()),
            body: render(body, &values),
        },
    }
}

/// What the activation notice says, besides its destination.
#[derive(Debug, Clone, Copy)]
pub struct Activated<'a> {
    /// The card's last four digits.
    pub last4: &'a str,
    /// The wallet's `walletProviderId`.
    pub wallet: &'a str,
    /// The device the digitization named ([`device_label`]), if any.
    pub device: Option<&'a str>,
    /// `notices.support_phone` (empty: "the number on the back of your card").
    pub support_phone: &'a str,
    /// The languages to try, in order (device, then card).
    pub languages: &'a [Language],
}

/// The notice after an ACTIVATE: the card ending `last4` was added to `wallet` on `device`; not
/// you? call `support_phone` (empty: "the number on the back of your card"), in the message's
/// language.
pub fn token_activated(
    templates: &TemplatesConfig,
    channel: Channel,
    to: Zeroizing<String>,
    a: &Activated<'_>,
) -> Message {
    let Activated {
        last4,
        wallet,
        device,
        support_phone,
        languages,
    } = *a;
    let wallet_name = wallet_display_name(wallet);
    let render = |m: &BTreeMap<String, Template>| {
        let (language, template) = pick_with_language(m, languages, &templates.default_language);
        let phone = if support_phone.trim().is_empty() {
            back_of_card(language)
        } else {
            support_phone.trim()
        };
        let device = on_device(language, device);
        template
            .map(|t| {
                t.render(&Values {
                    last4,
                    wallet: &wallet_name,
                    support_phone: phone,
                    device: &device,
                    ..Values::default()
                })
            })
            .unwrap_or_default()
    };
    match channel {
        Channel::Sms => Message {
            channel,
            to,
            subject: None,
            body: render(&templates.token_activated_sms),
        },
        Channel::Email => Message {
            channel,
            to,
            subject: Some(render(&templates.token_activated_email_subject).to_string()),
            body: render(&templates.token_activated_email_body),
        },
    }
}

/// "The number on the back of your card", written to follow the shipped templates' "call"
/// (`Appelez le ...`, `Llame al ...`).
fn back_of_card(language: &str) -> &'static str {
    match language {
        "fr" => "numéro au dos de votre carte",
        "es" => "número que figura en el reverso de su tarjeta",
        "de" => "die Nummer auf der Rückseite Ihrer Karte",
        "it" => "il numero riportato sul retro della carta",
        "pt" => "o número no verso do seu cartão",
        _ => "the number on the back of your card",
    }
}

/// `{device}`: "on Google Pixel 8", or "on a new device" when the digitization named none, in
/// `language` (English for a language not shipped).
fn on_device(language: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => match language {
            "fr" => format!("sur l'appareil {d}"),
            "es" => format!("en el dispositivo {d}"),
            "de" => format!("auf dem Gerät {d}"),
            "it" => format!("sul dispositivo {d}"),
            "pt" => format!("no dispositivo {d}"),
            _ => format!("on {d}"),
        },
        None => match language {
            "fr" => "sur un nouvel appareil",
            "es" => "en un nuevo dispositivo",
            "de" => "auf einem neuen Gerät",
            "it" => "su un nuovo dispositivo",
            "pt" => "num novo dispositivo",
            _ => "on a new device",
        }
        .to_owned(),
    }
}

/// The device a digitization names, as a notice may show it: its manufacturer and model
/// (`Google Pixel 8`). The wallet's device reports them, so whoever enrols chooses them: only
/// letters, digits, spaces and `.,_()+-`, at most 40 characters, and no run of five digits or
/// `www` (no phone number or address can be slipped into the bank's message); anything else
/// gives `None` (the notice then says "a new device").
pub fn device_label(manufacturer: Option<&str>, model: Option<&str>) -> Option<String> {
    let model = model.map(str::trim).filter(|m| !m.is_empty())?;
    let label = match manufacturer.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m)
            if !model
                .to_ascii_lowercase()
                .starts_with(&m.to_ascii_lowercase()) =>
        {
            format!("{m} {model}")
        }
        _ => model.to_owned(),
    };
    let label = label.split_whitespace().collect::<Vec<_>>().join(" ");
    let allowed = label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " .,_()+-".contains(c));
    let mut digits = 0;
    let long_number = label.chars().any(|c| {
        digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
        digits >= 5
    });
    let ok =
        allowed && label.len() <= 40 && !long_number && !label.to_ascii_lowercase().contains("www");
    ok.then_some(label)
}

/// [`pick`], and the language of the template picked.
fn pick_with_language<'m>(
    m: &'m BTreeMap<String, Template>,
    languages: &[Language],
    default_language: &'m str,
) -> (&'m str, Option<&'m Template>) {
    for l in languages {
        if let Some((k, t)) = m.get_key_value(l.as_str()) {
            return (k.as_str(), Some(t));
        }
    }
    (default_language, m.get(default_language))
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

/// The GSM 03.38 default alphabet: a text of only these characters is sent as GSM-7, 160 to a
/// message; any other character makes it UCS-2, 70 to a message.
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡\
ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM-7 extension table: two septets each.
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// How an SMS text is sent: its encoding and its length in that encoding's units.
pub fn sms_length(text: &str) -> (&'static str, usize, usize) {
    let gsm = text
        .chars()
        .all(|c| GSM7.contains(c) || GSM7_EXTENDED.contains(c));
    if gsm {
        let units = text
            .chars()
            .map(|c| if GSM7_EXTENDED.contains(c) { 2 } else { 1 })
            .sum();
        ("GSM-7", units, 160)
    } else {
        ("UCS-2", text.encode_utf16().count(), 70)
    }
}

/// The SMS templates that would not fit one message, rendered with an 8-digit OTP, four digits
/// and the longest wallet name messages use: one line each, naming the template.
pub fn sms_warnings(templates: &TemplatesConfig) -> Vec<String> {
    let values = Values {
        otp: "12345678",
        last4: "1234",
        wallet: "Samsung Pay",
        ..Values::default()
    };
    let mut out = Vec::new();
    for (key, set) in [
        ("templates.sms", &templates.sms),
        (
            "templates.device_binding_sms",
            &templates.device_binding_sms,
        ),
    ] {
        for (language, template) in set {
            let text = template.render(&values);
            let (encoding, units, limit) = sms_length(&text);
            if units > limit {
                out.push(format!(
                    "{key}.{language}: {units} {encoding} characters with an 8-digit code: more than one SMS ({limit}); shorten it (a character outside GSM-7, such as á or ç, makes the whole message UCS-2)"
                ));
            }
        }
    }
    out
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
            purpose: Purpose::AddCard,
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
        let binding = About {
            purpose: Purpose::DeviceBinding,
            ..about
        };
        let m = build(
            &t,
            Channel::Sms,
            Zeroizing::new("+33".into()),
            &otp,
            &binding,
        );
        assert!(
            m.body.contains("confirmer cet appareil"),
            "{}",
            m.body.as_str()
        );
    }

    #[test]
    fn the_activation_notice_names_card_wallet_and_number() {
        let t = Config::default().templates;
        let to = || Zeroizing::new("+33".to_owned());
        let fr = [Language::parse("fr").unwrap()];
        let notice = Activated {
            last4: "1234",
            wallet: "GOOGLE_PAY",
            device: None,
            support_phone: "",
            languages: &fr,
        };
        let m = token_activated(&t, Channel::Sms, to(), &notice);
        assert_eq!(
            m.body.as_str(),
            "Votre carte se terminant par 1234 a été ajoutée à Google Pay sur un nouvel appareil. Ce n'est pas vous ? Appelez le numéro au dos de votre carte."
        );
        let en = Activated {
            wallet: "APPLE_PAY",
            device: Some("Apple iPhone15,2"),
            support_phone: "+44 20 7946 0000",
            languages: &[],
            ..notice
        };
        let m = token_activated(&t, Channel::Sms, to(), &en);
        assert_eq!(
            m.body.as_str(),
            "Your card ending 1234 was added to Apple Pay on Apple iPhone15,2. Not you? Call +44 20 7946 0000 now."
        );
        let de = [Language::parse("de").unwrap()];
        let m = token_activated(
            &t,
            Channel::Sms,
            to(),
            &Activated {
                languages: &de,
                ..notice
            },
        );
        assert!(
            m.body.starts_with(
                "Ihre Karte mit den Endziffern 1234 wurde auf einem neuen Gerät zu Google Pay hinzugefügt."
            ),
            "{}",
            m.body.as_str()
        );
        let es = [Language::parse("es").unwrap()];
        let m = token_activated(
            &t,
            Channel::Email,
            to(),
            &Activated {
                last4: "9876",
                wallet: "SAMSUNG_PAY",
                languages: &es,
                ..notice
            },
        );
        assert_eq!(
            m.subject.as_deref(),
            Some("Su tarjeta se ha añadido a Samsung Pay")
        );
        assert!(
            m.body
                .contains("llame cuanto antes al número que figura en el reverso de su tarjeta"),
            "{}",
            m.body.as_str()
        );
        for language in ["en", "fr", "es", "de", "it", "pt"] {
            for set in [
                &t.token_activated_sms,
                &t.token_activated_email_subject,
                &t.token_activated_email_body,
            ] {
                assert!(set.contains_key(language), "{language}");
            }
        }
    }

    #[test]
    fn a_device_label_carries_no_number_or_address() {
        assert_eq!(
            device_label(Some("Google"), Some("Pixel 8")).as_deref(),
            Some("Google Pixel 8")
        );
        assert_eq!(
            device_label(Some("samsung"), Some("Samsung  SM-G991B")).as_deref(),
            Some("Samsung SM-G991B")
        );
        assert_eq!(
            device_label(None, Some("Pixel 8")).as_deref(),
            Some("Pixel 8")
        );
        // Line breaks and runs of spaces become one space.
        assert_eq!(
            device_label(None, Some(" Pixel\n 8 ")).as_deref(),
            Some("Pixel 8")
        );
        for (m, model) in [
            (Some("Call"), Some("0800 123456")),
            (Some("x"), Some("www.bank-help.example")),
            (None, Some("http://phish")),
            (None, Some("Pixel <b>")),
            (None, Some("x".repeat(41).as_str())),
            (Some("Google"), None),
        ] {
            assert_eq!(device_label(m, model), None, "{model:?}");
        }
    }

    #[test]
    fn shipped_sms_templates_fit_one_message_and_long_ones_are_named() {
        let t = Config::default().templates;
        assert_eq!(sms_warnings(&t), Vec::<String>::new());
        for language in ["en", "fr", "es", "de", "it", "pt"] {
            for set in [
                &t.sms,
                &t.email_subject,
                &t.email_body,
                &t.device_binding_sms,
            ] {
                assert!(set.contains_key(language), "{language}");
            }
        }
        assert_eq!(sms_length("Code 1234").0, "GSM-7");
        assert_eq!(sms_length("código 1234"), ("UCS-2", 11, 70));
        assert_eq!(sms_length("a€").1, 3);
        let mut long = t.clone();
        long.sms.insert(
            "es".into(),
            crate::domain::template::Template::parse(
                "{otp} es su código para añadir su tarjeta terminada en {last4} a {wallet}.",
            )
            .unwrap(),
        );
        let w = sms_warnings(&long);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("templates.sms.es: 77 UCS-2 characters"),
            "{w:?}"
        );
    }
}
