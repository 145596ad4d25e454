//! Typed settings, read once at start-up from a TOML file and `ISSUER_GATEWAY__SECTION__KEY`
//! environment overrides, then validated with one clear line per problem.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The environment variable prefix of overrides.
pub const ENV_PREFIX: &str = "ISSUER_GATEWAY__";
/// The configuration file used when `--config` is not given and this file exists.
pub const DEFAULT_CONFIG_FILE: &str = "issuer-gateway.toml";

/// A secret setting (token, password). Prints and serialises as `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub issuer: IssuerConfig,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub database: DatabaseConfig,
    pub keys: KeysConfig,
    pub sms: SmsConfig,
    pub email: EmailConfig,
    pub outbox: OutboxConfig,
    pub idv: IdvConfig,
    pub templates: TemplatesConfig,
    pub log: LogConfig,
    pub limits: LimitsConfig,
    pub controls: ControlsConfig,
    pub policy: crate::decision::PolicyConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// The 10-character issuer id expected in `x-issuer-id`.
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub base_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Each call is answered within this time (500 otherwise); keep it below TSH's own timeout.
    pub request_timeout_ms: u64,
    /// Calls served at once; beyond it calls are refused with 503 rather than queued.
    pub max_concurrency: usize,
    /// `lower` (green/yellow/red) or `upper` (GREEN/YELLOW/RED) for `levelOfTrust`.
    pub level_of_trust_case: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8443".into(),
            base_path: "/issuer/igwapi/v2.0".into(),
            tls: None,
            request_timeout_ms: 10_000,
            max_concurrency: 512,
            level_of_trust_case: "lower".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: String,
    pub token: Secret,
    /// `GET /enrolments?stuck` lists enrolments answered yellow with no activation after this
    /// many minutes.
    pub stuck_after_minutes: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".into(),
            token: Secret::default(),
            stuck_after_minutes: 30,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (one instance) or `postgres://USER@HOST:PORT/DB?sslmode=...` (several
    /// instances on one database; `sslmode=require` or `verify-full` for TLS).
    pub url: String,
    /// Connections in this instance's pool (PostgreSQL: the server sees instances x this).
    pub max_connections: u32,
    /// How long a call waits for a connection, a statement, a lock, or stays idle inside a
    /// transaction, before it fails with 500. Below server.request_timeout_ms.
    pub timeout_ms: u64,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://./data/issuer-gateway.db".into(),
            max_connections: 8,
            timeout_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// PEM private keys (PKCS#8 or PKCS#1) able to open the envelopes.
    pub pkcs7_private_keys: Vec<PathBuf>,
    /// Optional: the certificates of those keys, so recipients named by issuer and serial number
    /// are matched directly instead of by trial.
    pub pkcs7_certificates: Vec<PathBuf>,
    /// The secret key file used to index PANs (and, derived from it, to seal contact details).
    pub pan_index_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `twilio`, `outbox` or `disabled`.
    pub provider: String,
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Secret,
    pub from: String,
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: "outbox".into(),
            base_url: String::new(),
            account_sid: String::new(),
            auth_token: Secret::default(),
            from: String::new(),
            timeout_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp`, `outbox` or `disabled`.
    pub provider: String,
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    pub username: String,
    pub password: Secret,
    pub from: String,
    pub timeout_ms: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            provider: "outbox".into(),
            host: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password: Secret::default(),
            from: "Card Services <no-reply@issuer.example>".into(),
            timeout_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    pub dir: PathBuf,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            dir: PathBuf::from("./data/outbox"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdvConfig {
    /// `type` of the SMS-OTP method in `idvMethodList`.
    pub sms_type: String,
    /// `type` of the e-mail-OTP method in `idvMethodList`.
    pub email_type: String,
    /// Channel order in `idvMethodList`, and the channel used when `sendOTP` names no method.
    pub channel_preference: Vec<String>,
}

impl Default for IdvConfig {
    fn default() -> Self {
        IdvConfig {
            sms_type: "sms".into(),
            email_type: "email".into(),
            channel_preference: vec!["sms".into(), "email".into()],
        }
    }
}

/// Message templates per language. Placeholders: `{otp}`, `{last4}`, `{wallet}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesConfig {
    pub default_language: String,
    pub sms: BTreeMap<String, String>,
    pub email_subject: BTreeMap<String, String>,
    pub email_body: BTreeMap<String, String>,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        TemplatesConfig {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `auto` (JSON unless standard error is a terminal), `json` or `text`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `issuer_gateway=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "auto".into(),
            level: "info".into(),
        }
    }
}

/// Rate limits on `sendOTP`, counted in the database so that every instance shares them. They
/// count sends that went out (or may have: a provider that did not answer), never refusals, so
/// nobody can lock a cardholder out by provoking failures; every window reopens by itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sends per enrolment (correlation id), over its whole life.
    pub sends_per_enrolment: u32,
    /// Sends per card within `card_window_minutes`.
    pub sends_per_card: u32,
    pub card_window_minutes: u32,
    /// Sends per destination (phone number or e-mail address) within `destination_window_minutes`.
    pub sends_per_destination: u32,
    pub destination_window_minutes: u32,
    /// Global budget of SMS sends per second, all cards together.
    pub sms_per_second: u32,
    /// Global budget of e-mail sends per second, all cards together.
    pub email_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            sends_per_enrolment: 3,
            sends_per_card: 5,
            card_window_minutes: 60,
            sends_per_destination: 5,
            destination_window_minutes: 60,
            sms_per_second: 50,
            email_per_second: 50,
        }
    }
}

/// Fraud controls applied before any send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlsConfig {
    /// A channel whose destination changed less than this many hours ago is not used (0: off).
    pub destination_change_hold_hours: u32,
    /// Calling codes (E.164 country codes, e.g. "44", "33", "1") SMS may be sent to; empty: all.
    pub sms_allowed_calling_codes: Vec<String>,
}

impl Default for ControlsConfig {
    fn default() -> Self {
        ControlsConfig {
            destination_change_hold_hours: 72,
            sms_allowed_calling_codes: Vec::new(),
        }
    }
}

/// Everything wrong with a configuration, one line per problem.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for line in &self.0 {
            writeln!(f, "  - {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Loads the file (explicit path, else `issuer-gateway.toml` if present, else defaults)
    /// and applies the environment overrides from `vars`.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let text = match path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![format!("--config {}: cannot read: {e}", p.display())])
            })?),
            None => {
                let default = Path::new(DEFAULT_CONFIG_FILE);
                if default.exists() {
                    Some(std::fs::read_to_string(default).map_err(|e| {
                        ConfigErrors(vec![format!("{DEFAULT_CONFIG_FILE}: cannot read: {e}")])
                    })?)
                } else {
                    None
                }
            }
        };
        let source = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| DEFAULT_CONFIG_FILE.to_owned());
        let mut table: toml::Table = match text {
            Some(t) => toml::from_str(&t).map_err(|e| {
                ConfigErrors(vec![format!("{source}: {}", one_line(&e.to_string()))])
            })?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, vars)?;
        toml::Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| ConfigErrors(vec![one_line(&e.to_string())]))
    }

    /// Problems that make the gateway unable to serve, one line each naming the setting.
    pub fn validate_for_serve(&self) -> Result<(), ConfigErrors> {
        let mut p = Vec::new();
        if self.issuer.id.chars().count() != 10 {
            p.push(format!(
                "issuer.id: must be exactly 10 characters (the x-issuer-id TSH sends), got {}",
                self.issuer.id.chars().count()
            ));
        }
        if self.server.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "server.listen: '{}' is not an address such as 127.0.0.1:8443",
                self.server.listen
            ));
        }
        if !self.server.base_path.starts_with('/') || self.server.base_path.ends_with('/') {
            p.push("server.base_path: must start with '/' and not end with '/'".into());
        }
        if !matches!(self.server.level_of_trust_case.as_str(), "lower" | "upper") {
            p.push("server.level_of_trust_case: must be 'lower' or 'upper'".into());
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [
                ("server.tls.cert_chain", &tls.cert_chain),
                ("server.tls.private_key", &tls.private_key),
                ("server.tls.client_ca", &tls.client_ca),
            ] {
                if path.as_os_str().is_empty() {
                    p.push(format!("{key}: required when any server.tls setting is given (mutual TLS needs all three)"));
                }
            }
        }
        if self.server.request_timeout_ms == 0 {
            p.push("server.request_timeout_ms: must be above 0".into());
        }
        if self.server.max_concurrency == 0 {
            p.push("server.max_concurrency: must be above 0".into());
        }
        match self.admin.listen.parse::<SocketAddr>() {
            Err(_) => p.push(format!(
                "admin.listen: '{}' is not an address such as 127.0.0.1:9090",
                self.admin.listen
            )),
            Ok(addr) if !addr.ip().is_loopback() && self.admin.token.is_empty() => p.push(
                "admin.token: required because admin.listen is not a loopback address".into(),
            ),
            Ok(_) => {}
        }
        if !(1..=10_080).contains(&self.admin.stuck_after_minutes) {
            p.push("admin.stuck_after_minutes: must be 1 to 10080 (one week)".into());
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            p.push("database.url: must start with sqlite:// or postgres://".into());
        }
        if self.database.timeout_ms == 0
            || self.database.timeout_ms >= self.server.request_timeout_ms
        {
            p.push(format!(
                "database.timeout_ms: must be above 0 and below server.request_timeout_ms ({})",
                self.server.request_timeout_ms
            ));
        }
        if self.database.max_connections == 0 {
            p.push("database.max_connections: must be above 0".into());
        }
        if self.keys.pkcs7_private_keys.is_empty() {
            p.push("keys.pkcs7_private_keys: at least one PEM private key is required (see 'issuer-gateway keys generate')".into());
        }
        if self.keys.pan_index_key_file.is_none() {
            p.push("keys.pan_index_key_file: required (see 'issuer-gateway keys generate')".into());
        }
        p.extend(self.validate_channels());
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(p))
        }
    }

    /// Problems with the delivery channels, the ID&V settings and the templates.
    pub fn validate_channels(&self) -> Vec<String> {
        let mut p = Vec::new();
        match self.sms.provider.as_str() {
            "outbox" | "disabled" => {}
            "twilio" => {
                for (key, value) in [
                    ("sms.base_url", &self.sms.base_url),
                    ("sms.account_sid", &self.sms.account_sid),
                    ("sms.from", &self.sms.from),
                ] {
                    if value.is_empty() {
                        p.push(format!("{key}: required when sms.provider = \"twilio\""));
                    }
                }
                if self.sms.auth_token.is_empty() {
                    p.push("sms.auth_token: required when sms.provider = \"twilio\"".into());
                }
            }
            other => p.push(format!(
                "sms.provider: '{other}' is not one of twilio, outbox, disabled"
            )),
        }
        match self.email.provider.as_str() {
            "outbox" | "disabled" => {}
            "smtp" => {
                if self.email.host.is_empty() {
                    p.push("email.host: required when email.provider = \"smtp\"".into());
                }
                if !matches!(self.email.tls.as_str(), "none" | "starttls" | "tls") {
                    p.push(format!(
                        "email.tls: '{}' is not one of none, starttls, tls",
                        self.email.tls
                    ));
                }
            }
            other => p.push(format!(
                "email.provider: '{other}' is not one of smtp, outbox, disabled"
            )),
        }
        if self.email.provider != "disabled" && self.email.from.trim().is_empty() {
            p.push("email.from: required unless email.provider = \"disabled\"".into());
        }
        for (key, ms) in [
            ("sms.timeout_ms", self.sms.timeout_ms),
            ("email.timeout_ms", self.email.timeout_ms),
        ] {
            if ms == 0 || ms >= self.server.request_timeout_ms {
                p.push(format!(
                    "{key}: must be above 0 and below server.request_timeout_ms ({})",
                    self.server.request_timeout_ms
                ));
            }
        }
        if self.idv.channel_preference.is_empty() {
            p.push("idv.channel_preference: list at least one of sms, email".into());
        }
        let mut seen = Vec::new();
        for c in &self.idv.channel_preference {
            if let Some(ch) = crate::domain::Channel::parse(c) {
                if seen.contains(&ch) {
                    p.push(format!("idv.channel_preference: '{c}' is listed twice"));
                }
                seen.push(ch);
            }
            if crate::domain::Channel::parse(c).is_none() {
                p.push(format!(
                    "idv.channel_preference: '{c}' is not a channel (sms, email)"
                ));
            }
        }
        for (key, v) in [
            ("idv.sms_type", &self.idv.sms_type),
            ("idv.email_type", &self.idv.email_type),
        ] {
            if v.trim().is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        if self.idv.sms_type.eq_ignore_ascii_case(&self.idv.email_type) {
            p.push("idv.email_type: must differ from idv.sms_type".into());
        }
        let lang = &self.templates.default_language;
        for (key, map) in [
            ("templates.sms", &self.templates.sms),
            ("templates.email_subject", &self.templates.email_subject),
            ("templates.email_body", &self.templates.email_body),
        ] {
            if !map.contains_key(lang) {
                p.push(format!(
                    "{key}: has no template for templates.default_language '{lang}'"
                ));
            }
            for (l, t) in map {
                if let Err(e) = crate::delivery::template::check(t) {
                    p.push(format!("{key}.{l}: {e}"));
                }
            }
        }
        for (l, t) in &self.templates.sms {
            if !t.contains("{otp}") {
                p.push(format!("templates.sms.{l}: must contain {{otp}}"));
            }
        }
        for (l, t) in &self.templates.email_body {
            if !t.contains("{otp}") {
                p.push(format!("templates.email_body.{l}: must contain {{otp}}"));
            }
        }
        for (key, v) in [
            (
                "limits.sends_per_enrolment",
                self.limits.sends_per_enrolment,
            ),
            ("limits.sends_per_card", self.limits.sends_per_card),
            (
                "limits.card_window_minutes",
                self.limits.card_window_minutes,
            ),
            (
                "limits.sends_per_destination",
                self.limits.sends_per_destination,
            ),
            (
                "limits.destination_window_minutes",
                self.limits.destination_window_minutes,
            ),
            ("limits.sms_per_second", self.limits.sms_per_second),
            ("limits.email_per_second", self.limits.email_per_second),
        ] {
            if v == 0 {
                p.push(format!("{key}: must be at least 1"));
            }
        }
        for code in &self.controls.sms_allowed_calling_codes {
            let ok = (1..=3).contains(&code.len())
                && code.bytes().all(|b| b.is_ascii_digit())
                && !code.starts_with('0');
            if !ok {
                p.push(format!("controls.sms_allowed_calling_codes: '{code}' is not a calling code such as 44 or 1"));
            }
        }
        if let Err(errors) = crate::decision::Policy::compile(&self.policy) {
            p.extend(errors);
        }
        if !matches!(self.log.format.as_str(), "auto" | "json" | "text") {
            p.push(format!(
                "log.format: '{}' is not one of auto, json, text",
                self.log.format
            ));
        }
        p
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url_password(&self.database.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:[redacted]@host/db`; also a
/// `password=` query parameter.
pub fn redact_url_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:[redacted]@{host}");
            }
        }
    }
    if let Some((base, query)) = out.clone().split_once('?') {
        let q: Vec<String> = query
            .split('&')
            .map(|kv| {
                if kv.to_ascii_lowercase().starts_with("password=") {
                    "password=[redacted]".to_owned()
                } else {
                    kv.to_owned()
                }
            })
            .collect();
        out = format!("{base}?{}", q.join("&"));
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Applies `ISSUER_GATEWAY__SECTION__KEY=value` overrides. The value's type follows the
/// setting's type in the defaults: numbers and booleans are parsed, lists accept a TOML array
/// (`["a","b"]`) or a comma-separated list, everything else is taken as a string.
fn apply_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigErrors> {
    let defaults =
        toml::Value::try_from(Config::default()).unwrap_or(toml::Value::Table(toml::Table::new()));
    let mut problems = Vec::new();
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name
            .trim_start_matches(ENV_PREFIX)
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) || path.len() < 2 {
            problems.push(format!("{name}: expected {ENV_PREFIX}<SECTION>__<KEY>"));
            continue;
        }
        let mut expected = Some(&defaults);
        for seg in &path {
            expected = expected.and_then(|v| v.get(seg.as_str()));
        }
        let value = match expected {
            Some(toml::Value::Integer(_)) => match raw.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => {
                    problems.push(format!("{name}: expected a whole number"));
                    continue;
                }
            },
            Some(toml::Value::Boolean(_)) => match raw.trim() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => {
                    problems.push(format!("{name}: expected true or false"));
                    continue;
                }
            },
            Some(toml::Value::Array(_)) => {
                let t = raw.trim();
                if t.starts_with('[') {
                    match toml::from_str::<toml::Table>(&format!("v = {t}")) {
                        Ok(mut tab) => tab.remove("v").unwrap_or(toml::Value::Array(vec![])),
                        Err(_) => {
                            problems.push(format!(
                                "{name}: expected a TOML array such as [\"a\", \"b\"]"
                            ));
                            continue;
                        }
                    }
                } else {
                    toml::Value::Array(
                        t.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| toml::Value::String(s.to_owned()))
                            .collect(),
                    )
                }
            }
            _ => toml::Value::String(raw),
        };
        if let Err(e) = set_path(table, &path, value) {
            problems.push(format!("{name}: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(problems))
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty setting name".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("'{head}' is a value, not a section")),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn env_overrides_follow_the_setting_type() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[issuer]\nid = \"ABCDEFGHIJ\"\n[sms]\ntimeout_ms = 2000\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            vars(&[
                ("ISSUER_GATEWAY__ISSUER__ID", "1234567890"),
                ("ISSUER_GATEWAY__SMS__TIMEOUT_MS", "1500"),
                ("ISSUER_GATEWAY__KEYS__PKCS7_PRIVATE_KEYS", "a.pem, b.pem"),
                ("ISSUER_GATEWAY__SERVER__TLS__CLIENT_CA", "ca.pem"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.issuer.id, "1234567890");
        assert_eq!(c.sms.timeout_ms, 1500);
        assert_eq!(
            c.keys.pkcs7_private_keys,
            vec![PathBuf::from("a.pem"), PathBuf::from("b.pem")]
        );
        assert_eq!(c.server.tls.unwrap().client_ca, PathBuf::from("ca.pem"));
    }

    #[test]
    fn every_problem_gets_a_line_naming_its_setting() {
        let c = Config::load(
            None,
            vars(&[
                ("ISSUER_GATEWAY__ISSUER__ID", "short"),
                ("ISSUER_GATEWAY__ADMIN__LISTEN", "0.0.0.0:9090"),
                ("ISSUER_GATEWAY__SMS__PROVIDER", "pigeon"),
            ]),
        )
        .unwrap();
        let err = c.validate_for_serve().unwrap_err();
        let text = err.to_string();
        for key in [
            "issuer.id",
            "admin.token",
            "sms.provider",
            "keys.pkcs7_private_keys",
            "keys.pan_index_key_file",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_numbers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[sms]\ntimeout = 5\n").unwrap();
        let e = Config::load(Some(&file), vec![]).unwrap_err().to_string();
        assert!(e.contains("timeout"), "{e}");
        let e = Config::load(None, vars(&[("ISSUER_GATEWAY__SMS__TIMEOUT_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ISSUER_GATEWAY__SMS__TIMEOUT_MS"), "{e}");
    }

    #[test]
    fn printed_config_redacts_secrets() {
        let mut c = Config::default();
        c.admin.token = Secret::new("s3cr3t-admin");
        c.sms.auth_token = Secret::new("tw-s3cr3t");
        c.email.password = Secret::new("smtp-s3cr3t");
        c.database.url =
            "postgres://gw:db-s3cr3t@db.internal:5432/gw?sslmode=require&password=s3cr3t2".into();
        let out = c.to_redacted_toml();
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(
            out.contains(
                "postgres://gw:[redacted]@db.internal:5432/gw?sslmode=require&password=[redacted]"
            ),
            "{out}"
        );
        assert!(out.contains("[redacted]"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
