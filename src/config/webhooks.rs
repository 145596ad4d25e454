//! `[[webhooks]]`: the bank's own systems that receive the gateway's events, signed the Standard
//! Webhooks way (see docs/webhooks.md).

use super::Secret;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The event types the gateway emits.
pub const EVENT_TYPES: [&str; 6] = [
    "enrolment.decided",
    "otp.sent",
    "otp.failed",
    "token.state_changed",
    "card.status_changed",
    "lifecycle.operation_failed",
];

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest random bytes a secret may hold.
pub const MIN_SECRET_BYTES: usize = 24;

/// One endpoint, typed.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    pub allow_http: bool,
    /// The signing keys (the secrets' decoded bytes), newest first: every one signs. Printed
    /// as `secrets = ["[redacted]", ...]`.
    #[serde(rename = "secrets", serialize_with = "redacted")]
    pub keys: Vec<SigningKey>,
    /// The event types it takes: `["*"]` (or empty) for every type.
    pub events: Vec<String>,
    pub timeout_ms: u64,
    pub give_up_after_minutes: u32,
}

/// A secret's decoded bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The key of a Standard Webhooks secret (`whsec_` + base64 of at least 24 bytes).
    pub fn from_secret(secret: &str) -> Result<SigningKey, String> {
        decode_secret(secret).map(SigningKey)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

fn redacted<S: serde::Serializer>(keys: &[SigningKey], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys.iter().map(|_| "[redacted]"))
}

impl WebhookConfig {
    fn every_type(&self) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == "*")
    }

    /// Whether this endpoint takes events of type `ty`.
    pub fn takes(&self, ty: &str) -> bool {
        self.every_type() || self.events.iter().any(|e| e == ty)
    }

    /// The filter as the store keeps it: `*`, or the types between commas.
    pub fn events_filter(&self) -> String {
        if self.every_type() {
            "*".into()
        } else {
            format!(",{},", self.events.join(","))
        }
    }
}

/// One `[[webhooks]]` entry as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct WebhookFile {
    name: String,
    url: String,
    allow_http: bool,
    secret: Secret,
    /// During a rotation: `[new, old]`, every one signing.
    secrets: Vec<Secret>,
    events: Vec<String>,
    timeout_ms: u64,
    give_up_after_minutes: u32,
}

impl Default for WebhookFile {
    fn default() -> Self {
        WebhookFile {
            name: String::new(),
            url: String::new(),
            allow_http: false,
            secret: Secret::default(),
            secrets: Vec::new(),
            events: vec!["*".into()],
            timeout_ms: 5_000,
            give_up_after_minutes: 1440,
        }
    }
}

/// Decodes a Standard Webhooks secret (`whsec_` + base64 of at least 24 bytes). The error
/// never quotes the secret.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let Some(b64) = secret.trim().strip_prefix(SECRET_PREFIX) else {
        return Err(format!(
            "must start with {SECRET_PREFIX} (make one with `issuer-gateway webhooks new-secret`)"
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| format!("is not {SECRET_PREFIX} followed by base64"))?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "holds {} bytes, at least {MIN_SECRET_BYTES} random bytes are needed",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret(random: [u8; 32]) -> String {
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    )
}

impl WebhookFile {
    /// The entry typed; problems (naming `webhooks[i].key`) go to `p`.
    pub(super) fn parse(self, i: usize, p: &mut Vec<String>) -> WebhookConfig {
        let at = |key: &str| format!("webhooks[{i}].{key}");
        let mut keys = Vec::new();
        match (self.secret.is_empty(), self.secrets.is_empty()) {
            (true, true) => p.push(format!(
                "{}: required (or {} during a rotation)",
                at("secret"),
                at("secrets")
            )),
            (false, false) => p.push(format!(
                "{}: give either secret or secrets, not both",
                at("secret")
            )),
            (false, true) => match decode_secret(self.secret.expose()) {
                Ok(k) => keys.push(SigningKey(k)),
                Err(e) => p.push(format!("{}: {e}", at("secret"))),
            },
            (true, false) => {
                for (j, s) in self.secrets.iter().enumerate() {
                    match decode_secret(s.expose()) {
                        Ok(k) => keys.push(SigningKey(k)),
                        Err(e) => p.push(format!("{}[{j}]: {e}", at("secrets"))),
                    }
                }
            }
        }
        let events = if self.events.iter().any(|e| e == "*") {
            if self.events.len() > 1 {
                p.push(format!(
                    "{}: \"*\" takes every event type; list no other beside it",
                    at("events")
                ));
            }
            vec!["*".into()]
        } else {
            if self.events.is_empty() {
                p.push(format!(
                    "{}: empty; list event types or [\"*\"] (one of {})",
                    at("events"),
                    EVENT_TYPES.join(", ")
                ));
            }
            for e in &self.events {
                if !EVENT_TYPES.contains(&e.as_str()) {
                    p.push(format!(
                        "{}: '{e}' is not an event type (one of {})",
                        at("events"),
                        EVENT_TYPES.join(", ")
                    ));
                }
            }
            self.events
        };
        WebhookConfig {
            name: self.name,
            url: self.url,
            allow_http: self.allow_http,
            keys,
            events,
            timeout_ms: self.timeout_ms,
            give_up_after_minutes: self.give_up_after_minutes,
        }
    }
}

/// Checks the entries together: names, URLs, times.
pub fn validate(hooks: &[WebhookConfig], p: &mut Vec<String>) {
    let mut names: Vec<&str> = Vec::new();
    for (i, h) in hooks.iter().enumerate() {
        let at = |key: &str| format!("webhooks[{i}].{key}");
        let name_ok = !h.name.is_empty()
            && h.name.len() <= 64
            && h.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            p.push(format!(
                "{}: required, 1 to 64 letters, digits, '-' or '_'",
                at("name")
            ));
        } else if names.contains(&h.name.as_str()) {
            p.push(format!(
                "{}: '{}' names another entry too; names must differ",
                at("name"),
                h.name
            ));
        }
        names.push(&h.name);
        let url = h.url.trim();
        if url.is_empty() {
            p.push(format!("{}: required", at("url")));
        } else if url.starts_with("http://") {
            if !h.allow_http {
                p.push(format!(
                    "{}: must be https:// (set {} = true for a receiver on the same host)",
                    at("url"),
                    at("allow_http")
                ));
            }
        } else if !url.starts_with("https://") {
            p.push(format!("{}: must be an https:// URL", at("url")));
        } else if reqwest::Url::parse(url).is_err() {
            p.push(format!("{}: is not a valid URL", at("url")));
        }
        if !(100..=60_000).contains(&h.timeout_ms) {
            p.push(format!(
                "{}: must be 100 to 60000 (ms), got {}",
                at("timeout_ms"),
                h.timeout_ms
            ));
        }
        if !(1..=43_200).contains(&h.give_up_after_minutes) {
            p.push(format!(
                "{}: must be 1 to 43200 (minutes, 30 days), got {}",
                at("give_up_after_minutes"),
                h.give_up_after_minutes
            ));
        }
    }
}

/// Parses the `[[webhooks]]` entries.
pub(super) fn parse_all(files: Vec<WebhookFile>, p: &mut Vec<String>) -> Vec<WebhookConfig> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, f)| f.parse(i, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> (Vec<WebhookConfig>, Vec<String>) {
        #[derive(Deserialize)]
        struct F {
            webhooks: Vec<WebhookFile>,
        }
        let f: F = toml::from_str(toml_text).unwrap();
        let mut p = Vec::new();
        let hooks = parse_all(f.webhooks, &mut p);
        validate(&hooks, &mut p);
        (hooks, p)
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_good_entry_parses_with_its_defaults() {
        let (hooks, p) = parse(&format!(
            "[[webhooks]]\nname = \"core\"\nurl = \"https://core.bank.example/hooks\"\nsecret = \"{SECRET}\"\n"
        ));
        assert!(p.is_empty(), "{p:?}");
        let h = &hooks[0];
        assert!(h.takes("otp.sent") && h.takes("card.status_changed"));
        assert_eq!((h.timeout_ms, h.give_up_after_minutes), (5_000, 1440));
        assert_eq!(h.keys.len(), 1);
        assert_eq!(h.events_filter(), "*");
        assert_eq!(format!("{:?}", h.keys), "[[redacted]]");
        let printed = toml::to_string(h).unwrap();
        assert!(printed.contains("secrets = [\"[redacted]\"]"), "{printed}");
        assert!(printed.contains("events = [\"*\"]"), "{printed}");
        assert!(!printed.contains("MfKQ"), "{printed}");
    }

    #[test]
    fn each_problem_names_its_key() {
        let (_, p) = parse(
            "[[webhooks]]\nname = \"a b\"\nurl = \"http://x\"\nsecret = \"abc\"\nevents = [\"otp.sent\", \"otp.lost\"]\ntimeout_ms = 5\ngive_up_after_minutes = 0\n\
             [[webhooks]]\nname = \"b\"\nurl = \"ftp://x\"\nsecrets = [\"whsec_AAAA\"]\n\
             [[webhooks]]\nname = \"b\"\nurl = \"https://x\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nevents = []\n",
        );
        let text = p.join("\n");
        for needle in [
            "webhooks[0].name",
            "webhooks[0].url: must be https:// (set webhooks[0].allow_http",
            "webhooks[0].secret: must start with whsec_",
            "webhooks[0].events: 'otp.lost' is not an event type",
            "webhooks[0].timeout_ms",
            "webhooks[0].give_up_after_minutes",
            "webhooks[1].url: must be an https:// URL",
            "webhooks[1].secrets[0]: holds 3 bytes",
            "webhooks[2].name: 'b' names another entry",
            "webhooks[2].events: empty",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("AAAA"), "a secret is never quoted");
    }

    #[test]
    fn rotation_signs_with_every_secret_and_http_needs_allow_http() {
        let new = new_secret([7; 32]);
        let (hooks, p) = parse(&format!(
            "[[webhooks]]\nname = \"app\"\nurl = \"http://127.0.0.1:9/h\"\nallow_http = true\nsecrets = [\"{new}\", \"{SECRET}\"]\nevents = [\"otp.sent\"]\n"
        ));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(hooks[0].keys.len(), 2);
        assert_eq!(hooks[0].keys[0].bytes(), &[7u8; 32]);
        assert!(hooks[0].takes("otp.sent") && !hooks[0].takes("otp.failed"));
        assert_eq!(hooks[0].events_filter(), ",otp.sent,");
    }
}
