//! `[templates]`: message templates per channel and language, parsed once at load.

use crate::domain::template::Template;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Message templates per purpose and language. Placeholders: `{otp}`, `{last4}`, `{wallet}`.
/// Adding a card to a wallet is `sms` / `email_subject` / `email_body`; confirming a device for a
/// card already in the wallet (a `sendOTP` carrying `deviceBindingReference`) is
/// `device_binding_*`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplatesConfig {
    pub default_language: String,
    pub sms: BTreeMap<String, Template>,
    pub email_subject: BTreeMap<String, Template>,
    pub email_body: BTreeMap<String, Template>,
    pub device_binding_sms: BTreeMap<String, Template>,
    pub device_binding_email_subject: BTreeMap<String, Template>,
    pub device_binding_email_body: BTreeMap<String, Template>,
    /// The notice after an ACTIVATE (`notices.token_activated`): `{last4}`, `{wallet}`,
    /// `{device}`, `{support_phone}`; no OTP.
    pub token_activated_sms: BTreeMap<String, Template>,
    pub token_activated_email_subject: BTreeMap<String, Template>,
    pub token_activated_email_body: BTreeMap<String, Template>,
}

/// `[templates]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TemplatesFile {
    default_language: String,
    sms: BTreeMap<String, String>,
    email_subject: BTreeMap<String, String>,
    email_body: BTreeMap<String, String>,
    device_binding_sms: BTreeMap<String, String>,
    device_binding_email_subject: BTreeMap<String, String>,
    device_binding_email_body: BTreeMap<String, String>,
    token_activated_sms: BTreeMap<String, String>,
    token_activated_email_subject: BTreeMap<String, String>,
    token_activated_email_body: BTreeMap<String, String>,
}

/// The shipped templates: (language, text) for each set.
const SMS: &[(&str, &str)] = &[
    (
        "en",
        "{otp} is your code to add your card ending {last4} to {wallet}. Never share it, not even with us.",
    ),
    (
        "fr",
        "{otp} est votre code pour ajouter votre carte se terminant par {last4} à {wallet}. Ne le communiquez à personne.",
    ),
    (
        "es",
        "{otp} es su código para {wallet} (tarjeta {last4}). No lo comparta.",
    ),
    (
        "de",
        "{otp} ist Ihr Code, um Ihre Karte mit den Endziffern {last4} zu {wallet} hinzuzufügen. Geben Sie ihn niemandem weiter.",
    ),
    (
        "it",
        "{otp} è il codice per aggiungere la carta che termina con {last4} a {wallet}. Non comunicarlo a nessuno.",
    ),
    (
        "pt",
        "{otp} é o código para {wallet} (cartão {last4}). Não o partilhe.",
    ),
];

const EMAIL_SUBJECT: &[(&str, &str)] = &[
    ("en", "Your code to add your card to {wallet}"),
    ("fr", "Votre code pour ajouter votre carte à {wallet}"),
    ("es", "Su código para añadir su tarjeta a {wallet}"),
    ("de", "Ihr Code, um Ihre Karte zu {wallet} hinzuzufügen"),
    ("it", "Il suo codice per aggiungere la carta a {wallet}"),
    (
        "pt",
        "O seu código para adicionar o cartão à carteira {wallet}",
    ),
];

const EMAIL_BODY: &[(&str, &str)] = &[
    (
        "en",
        "Hello,\n\nYour verification code to add your card ending {last4} to {wallet} is:\n\n{otp}\n\nIf you did not ask for it, call us on the number on the back of your card. We will never ask you for this code.\n",
    ),
    (
        "fr",
        "Bonjour,\n\nVotre code pour ajouter votre carte se terminant par {last4} à {wallet} est :\n\n{otp}\n\nSi vous ne l'avez pas demandé, appelez le numéro au dos de votre carte. Nous ne vous demanderons jamais ce code.\n",
    ),
    (
        "es",
        "Hola:\n\nSu código para añadir su tarjeta terminada en {last4} a {wallet} es:\n\n{otp}\n\nSi no lo ha solicitado, llame al número que figura en el reverso de su tarjeta. Nunca le pediremos este código.\n",
    ),
    (
        "de",
        "Guten Tag,\n\nIhr Bestätigungscode, um Ihre Karte mit den Endziffern {last4} zu {wallet} hinzuzufügen, lautet:\n\n{otp}\n\nWenn Sie ihn nicht angefordert haben, rufen Sie die Nummer auf der Rückseite Ihrer Karte an. Wir werden Sie nie nach diesem Code fragen.\n",
    ),
    (
        "it",
        "Gentile cliente,\n\nil codice per aggiungere la carta che termina con {last4} a {wallet} è:\n\n{otp}\n\nSe non l'ha richiesto, chiami il numero riportato sul retro della carta. Non le chiederemo mai questo codice.\n",
    ),
    (
        "pt",
        "Olá,\n\nO seu código para adicionar o cartão terminado em {last4} à carteira {wallet} é:\n\n{otp}\n\nSe não o pediu, ligue para o número no verso do seu cartão. Nunca lhe pediremos este código.\n",
    ),
];

const DEVICE_BINDING_SMS: &[(&str, &str)] = &[
    (
        "en",
        "{otp} is your code to confirm this device for your card ending {last4} in {wallet}. Never share it, not even with us.",
    ),
    (
        "fr",
        "{otp} est votre code pour confirmer cet appareil pour votre carte se terminant par {last4} dans {wallet}. Ne le communiquez à personne.",
    ),
    (
        "es",
        "Código {otp} para confirmar su dispositivo. No lo comparta.",
    ),
    (
        "de",
        "{otp} ist Ihr Code, um dieses Gerät für Ihre Karte mit den Endziffern {last4} in {wallet} zu bestätigen. Geben Sie ihn niemandem weiter.",
    ),
    (
        "it",
        "{otp} è il codice per confermare questo dispositivo per la carta che termina con {last4} in {wallet}. Non comunicarlo a nessuno.",
    ),
    (
        "pt",
        "Código {otp} para confirmar o seu dispositivo. Não o partilhe.",
    ),
];

const DEVICE_BINDING_EMAIL_SUBJECT: &[(&str, &str)] = &[
    ("en", "Your code to confirm your device for {wallet}"),
    (
        "fr",
        "Votre code pour confirmer votre appareil dans {wallet}",
    ),
    ("es", "Su código para confirmar su dispositivo en {wallet}"),
    ("de", "Ihr Code, um Ihr Gerät für {wallet} zu bestätigen"),
    (
        "it",
        "Il suo codice per confermare il dispositivo in {wallet}",
    ),
    (
        "pt",
        "O seu código para confirmar o dispositivo na carteira {wallet}",
    ),
];

const DEVICE_BINDING_EMAIL_BODY: &[(&str, &str)] = &[
    (
        "en",
        "Hello,\n\nYour code to confirm this device for your card ending {last4} in {wallet} is:\n\n{otp}\n\nIf you did not ask for it, call us on the number on the back of your card. We will never ask you for this code.\n",
    ),
    (
        "fr",
        "Bonjour,\n\nVotre code pour confirmer cet appareil pour votre carte se terminant par {last4} dans {wallet} est :\n\n{otp}\n\nSi vous ne l'avez pas demandé, appelez le numéro au dos de votre carte. Nous ne vous demanderons jamais ce code.\n",
    ),
    (
        "es",
        "Hola:\n\nSu código para confirmar este dispositivo para su tarjeta terminada en {last4} en {wallet} es:\n\n{otp}\n\nSi no lo ha solicitado, llame al número que figura en el reverso de su tarjeta. Nunca le pediremos este código.\n",
    ),
    (
        "de",
        "Guten Tag,\n\nIhr Code, um dieses Gerät für Ihre Karte mit den Endziffern {last4} in {wallet} zu bestätigen, lautet:\n\n{otp}\n\nWenn Sie ihn nicht angefordert haben, rufen Sie die Nummer auf der Rückseite Ihrer Karte an. Wir werden Sie nie nach diesem Code fragen.\n",
    ),
    (
        "it",
        "Gentile cliente,\n\nil codice per confermare questo dispositivo per la carta che termina con {last4} in {wallet} è:\n\n{otp}\n\nSe non l'ha richiesto, chiami il numero riportato sul retro della carta. Non le chiederemo mai questo codice.\n",
    ),
    (
        "pt",
        "Olá,\n\nO seu código para confirmar este dispositivo para o cartão terminado em {last4} na carteira {wallet} é:\n\n{otp}\n\nSe não o pediu, ligue para o número no verso do seu cartão. Nunca lhe pediremos este código.\n",
    ),
];

const TOKEN_ACTIVATED_SMS: &[(&str, &str)] = &[
    (
        "en",
        "Your card ending {last4} was added to {wallet} {device}. Not you? Call {support_phone} now.",
    ),
    (
        "fr",
        "Votre carte se terminant par {last4} a été ajoutée à {wallet} {device}. Ce n'est pas vous ? Appelez le {support_phone}.",
    ),
    (
        "es",
        "Su tarjeta terminada en {last4} se ha añadido a {wallet} {device}. ¿No ha sido usted? Llame al {support_phone}.",
    ),
    (
        "de",
        "Ihre Karte mit den Endziffern {last4} wurde {device} zu {wallet} hinzugefügt. Waren Sie das nicht? Rufen Sie {support_phone} an.",
    ),
    (
        "it",
        "La carta che termina con {last4} è stata aggiunta a {wallet} {device}. Non è stato lei? Chiami {support_phone}.",
    ),
    (
        "pt",
        "O seu cartão terminado em {last4} foi adicionado à carteira {wallet} {device}. Não foi você? Ligue para {support_phone}.",
    ),
];

const TOKEN_ACTIVATED_EMAIL_SUBJECT: &[(&str, &str)] = &[
    ("en", "Your card was added to {wallet}"),
    ("fr", "Votre carte a été ajoutée à {wallet}"),
    ("es", "Su tarjeta se ha añadido a {wallet}"),
    ("de", "Ihre Karte wurde zu {wallet} hinzugefügt"),
    ("it", "La sua carta è stata aggiunta a {wallet}"),
    ("pt", "O seu cartão foi adicionado à carteira {wallet}"),
];

const TOKEN_ACTIVATED_EMAIL_BODY: &[(&str, &str)] = &[
    (
        "en",
        "Hello,\n\nYour card ending {last4} was just added to {wallet} {device}.\n\nIf this was you, there is nothing to do. If it was not, call {support_phone} now: we will block the card in the wallet.\n",
    ),
    (
        "fr",
        "Bonjour,\n\nVotre carte se terminant par {last4} vient d'être ajoutée à {wallet} {device}.\n\nSi c'est vous, vous n'avez rien à faire. Sinon, appelez sans attendre le {support_phone} : nous bloquerons la carte dans le portefeuille.\n",
    ),
    (
        "es",
        "Hola:\n\nSu tarjeta terminada en {last4} se acaba de añadir a {wallet} {device}.\n\nSi ha sido usted, no tiene que hacer nada. Si no, llame cuanto antes al {support_phone}: bloquearemos la tarjeta en el monedero.\n",
    ),
    (
        "de",
        "Guten Tag,\n\nIhre Karte mit den Endziffern {last4} wurde soeben {device} zu {wallet} hinzugefügt.\n\nWenn Sie das waren, müssen Sie nichts tun. Wenn nicht, rufen Sie sofort {support_phone} an: Wir sperren die Karte im Wallet.\n",
    ),
    (
        "it",
        "Gentile cliente,\n\nla carta che termina con {last4} è appena stata aggiunta a {wallet} {device}.\n\nSe è stato lei, non deve fare nulla. Altrimenti chiami subito {support_phone}: bloccheremo la carta nel portafoglio.\n",
    ),
    (
        "pt",
        "Olá,\n\nO seu cartão terminado em {last4} acabou de ser adicionado à carteira {wallet} {device}.\n\nSe foi você, não precisa de fazer nada. Se não foi, ligue já para {support_phone}: bloquearemos o cartão na carteira.\n",
    ),
];

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
            sms: map(SMS),
            email_subject: map(EMAIL_SUBJECT),
            email_body: map(EMAIL_BODY),
            device_binding_sms: map(DEVICE_BINDING_SMS),
            device_binding_email_subject: map(DEVICE_BINDING_EMAIL_SUBJECT),
            device_binding_email_body: map(DEVICE_BINDING_EMAIL_BODY),
            token_activated_sms: map(TOKEN_ACTIVATED_SMS),
            token_activated_email_subject: map(TOKEN_ACTIVATED_EMAIL_SUBJECT),
            token_activated_email_body: map(TOKEN_ACTIVATED_EMAIL_BODY),
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
        let device_binding_sms = parse_set(
            "templates.device_binding_sms",
            self.device_binding_sms,
            true,
        );
        let device_binding_email_subject = parse_set(
            "templates.device_binding_email_subject",
            self.device_binding_email_subject,
            false,
        );
        let device_binding_email_body = parse_set(
            "templates.device_binding_email_body",
            self.device_binding_email_body,
            true,
        );
        let token_activated_sms = parse_set(
            "templates.token_activated_sms",
            self.token_activated_sms,
            false,
        );
        let token_activated_email_subject = parse_set(
            "templates.token_activated_email_subject",
            self.token_activated_email_subject,
            false,
        );
        let token_activated_email_body = parse_set(
            "templates.token_activated_email_body",
            self.token_activated_email_body,
            false,
        );
        // A notice carries no code: an `{otp}` there would render as nothing.
        for (key, set) in [
            ("templates.token_activated_sms", &token_activated_sms),
            (
                "templates.token_activated_email_subject",
                &token_activated_email_subject,
            ),
            (
                "templates.token_activated_email_body",
                &token_activated_email_body,
            ),
        ] {
            for (l, t) in set {
                if t.has_otp() {
                    p.push(format!("{key}.{l}: a notice has no {{otp}}"));
                }
            }
        }
        TemplatesConfig {
            default_language: self.default_language,
            sms,
            email_subject,
            email_body,
            device_binding_sms,
            device_binding_email_subject,
            device_binding_email_body,
            token_activated_sms,
            token_activated_email_subject,
            token_activated_email_body,
        }
    }
}
