//! `[templates]`: message templates per channel and language, parsed once at load.

use crate::domain::template::Template;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Message templates per language. Placeholders: `{otp}`, `{last4}`, `{wallet}`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplatesConfig {
    pub default_language: String,
    pub sms: BTreeMap<String, Template>,
    pub email_subject: BTreeMap<String, Template>,
    pub email_body: BTreeMap<String, Template>,
}

/// `[templates]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TemplatesFile {
    default_language: String,
    sms: BTreeMap<String, String>,
    email_subject: BTreeMap<String, String>,
    email_body: BTreeMap<String, String>,
}

impl Default for TemplatesFile {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        TemplatesFile {
            default_language: "en".into(),
            sms: map(&[
                (
                    "en",
                    "{otp} is your code to add your card ending {last4} to {wallet}. Never share it, not even with us.",
                ),
                (
                    "fr",
                    "{otp} est votre code pour ajouter votre carte se terminant par {last4} a {wallet}. Ne le communiquez jamais.",
                ),
            ]),
            email_subject: map(&[
                ("en", "Your code to add your card to {wallet}"),
                ("fr", "Votre code pour ajouter votre carte a {wallet}"),
            ]),
            email_body: map(&[
                (
                    "en",
                    "Hello,\n\nYour verification code to add your card ending {last4} to {wallet} is:\n\n{otp}\n\nIf you did not ask for it, call us on the number on the back of your card. We will never ask you for this code.\n",
                ),
                (
                    "fr",
                    "Bonjour,\n\nVotre code pour ajouter votre carte se terminant par {last4} a {wallet} est :\n\n{otp}\n\nSi vous ne l'avez pas demande, appelez le numero au dos de votre carte. Nous ne vous demanderons jamais ce code.\n",
                ),
            ]),
        }
    }
}

impl TemplatesFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> TemplatesConfig {
        let lang = &self.default_language;
        let mut parse_set = |key: &str, map: BTreeMap<String, String>, needs_otp: bool| {
            if !map.contains_key(lang) {
                p.push(format!(
                    "{key}: has no template for templates.default_language '{lang}'"
                ));
            }
            let mut out = BTreeMap::new();
            for (l, t) in map {
                match Template::parse(&t) {
                    Ok(t) => {
                        if needs_otp && !t.has_otp() {
                            p.push(format!("{key}.{l}: must contain {{otp}}"));
                        }
                        out.insert(l, t);
                    }
                    Err(e) => p.push(format!("{key}.{l}: {e}")),
                }
            }
            out
        };
        let sms = parse_set("templates.sms", self.sms, true);
        let email_subject = parse_set("templates.email_subject", self.email_subject, false);
        let email_body = parse_set("templates.email_body", self.email_body, true);
        TemplatesConfig {
            default_language: self.default_language,
            sms,
            email_subject,
            email_body,
        }
    }
}
