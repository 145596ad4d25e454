//! Typed settings, read once at start-up from a TOML file and `ISSUER_GATEWAY__SECTION__KEY`
//! environment overrides (`env`), parsed into types once (`Config::load`: providers, modes,
//! addresses, channel lists and templates are enums, `SocketAddr`s and parsed values from then
//! on), then validated with one clear line per problem. One file per section; each section
//! checks itself (`validate`), and `Config::validate_for_serve` collects them all.
//!
//! Sections whose values need parsing have a form "as written" (`*File`, private to this module,
//! the defaults live there) and a typed form; the others are read as they are.

mod admin;
mod app_api;
mod console;
mod controls;
mod database;
mod email;
mod env;
mod idv;
mod issuer;
mod keys;
mod limits;
mod log;
mod notices;
mod outbox;
mod policy;
mod providers;
mod response_codes;
mod retention;
mod server;
mod sim_swap;
mod sms;
mod templates;
mod tsh;
mod webhooks;

pub use admin::{AdminConfig, AdminTlsConfig};
pub use app_api::{AppApiConfig, AppTlsConfig};
pub use console::ConsoleConfig;
pub use controls::ControlsConfig;
pub use database::DatabaseConfig;
pub use email::{EmailConfig, EmailProvider, SmtpTls};
pub use idv::{BankAppConfig, BankAppWallet, CustomerServiceConfig, IdvConfig};
pub use issuer::IssuerConfig;
pub use keys::KeysConfig;
pub use limits::LimitsConfig;
pub use log::{LogConfig, LogFormat};
pub use notices::NoticesConfig;
pub use outbox::OutboxConfig;
pub use policy::PolicyConfig;
pub use response_codes::ResponseCodes;
pub use retention::RetentionConfig;
pub use server::{LevelOfTrustCase, ServerConfig, TlsConfig};
pub use sim_swap::{SimSwapConfig, SimSwapOnError};
pub use sms::{SmsConfig, SmsProvider};
pub use templates::TemplatesConfig;
pub use tsh::{FpanEncoding, TshConfig};
pub use webhooks::{EVENT_TYPES, SigningKey, WebhookConfig, decode_secret, new_secret};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

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

/// The gateway's settings, typed.
#[derive(Debug, Clone, Serialize)]
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
    pub policy: PolicyConfig,
    pub response_codes: ResponseCodes,
    pub retention: RetentionConfig,
    pub sim_swap: SimSwapConfig,
    pub tsh: TshConfig,
    /// `[app]`: the app API (Option C); `None` when the section is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<AppApiConfig>,
    pub notices: NoticesConfig,
    pub webhooks: Vec<WebhookConfig>,
    pub console: ConsoleConfig,
}

/// The configuration as written (file and environment), before its values are parsed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    issuer: IssuerConfig,
    server: server::ServerFile,
    admin: admin::AdminFile,
    database: DatabaseConfig,
    keys: KeysConfig,
    sms: sms::SmsFile,
    email: email::EmailFile,
    outbox: OutboxConfig,
    idv: idv::IdvFile,
    templates: templates::TemplatesFile,
    log: log::LogFile,
    limits: LimitsConfig,
    controls: ControlsConfig,
    policy: PolicyConfig,
    response_codes: ResponseCodes,
    retention: RetentionConfig,
    sim_swap: sim_swap::SimSwapFile,
    tsh: TshConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<app_api::AppFile>,
    notices: NoticesConfig,
    webhooks: Vec<webhooks::WebhookFile>,
    console: ConsoleConfig,
}

impl ConfigFile {
    /// Every value parsed into its type; each value that does not parse is a problem (and
    /// leaves a default in its place, so that every problem is found in one pass).
    fn parse(self) -> (Config, Vec<String>) {
        let mut p = Vec::new();
        let config = Config {
            issuer: self.issuer,
            server: self.server.parse(&mut p),
            admin: self.admin.parse(&mut p),
            database: self.database,
            keys: self.keys,
            sms: self.sms.parse(&mut p),
            email: self.email.parse(&mut p),
            outbox: self.outbox,
            idv: self.idv.parse(&mut p),
            templates: self.templates.parse(&mut p),
            log: self.log.parse(&mut p),
            limits: self.limits,
            controls: self.controls,
            policy: self.policy,
            response_codes: self.response_codes,
            retention: self.retention,
            sim_swap: self.sim_swap.parse(&mut p),
            tsh: self.tsh,
            app: self.app.map(|a| a.parse(&mut p)),
            notices: self.notices,
            webhooks: webhooks::parse_all(self.webhooks, &mut p),
            console: self.console,
        };
        (config, p)
    }
}

impl Default for Config {
    /// The built-in defaults (which parse: see the test `defaults_parse`).
    fn default() -> Self {
        ConfigFile::default().parse().0
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
        let (config, problems) = Config::read(path, vars)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// [`Config::load`] that also returns the configuration when some values do not parse: the
    /// problems, and a default in place of each such value, so that `serve` can name every
    /// problem of the configuration at once. Fails only when the file cannot be read at all.
    pub fn read(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigErrors> {
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
        // Errors name the key, the line and the column, never the value nor the line itself
        // (toml's own messages quote both: a secret would be printed).
        let mut table: toml::Table = match &text {
            Some(t) => toml::from_str(t).map_err(|e| {
                let at = e
                    .span()
                    .map(|s| {
                        format!(
                            "line {}, column {}: ",
                            position(t, s.start).0,
                            position(t, s.start).1
                        )
                    })
                    .unwrap_or_default();
                ConfigErrors(vec![format!(
                    "{source}: {at}not valid TOML ({})",
                    without_values(e.message())
                )])
            })?,
            None => toml::Table::new(),
        };
        env::apply(&mut table, vars)?;
        let file: ConfigFile = toml::Value::Table(table).try_into().map_err(|e| {
            let key = key_of(&e.to_string());
            let at = match (&text, &key) {
                (Some(t), Some(k)) => locate(t, k)
                    .map(|(line, col)| format!(" ({source}, line {line}, column {col})"))
                    .unwrap_or_else(|| " (from the environment)".into()),
                _ => String::new(),
            };
            ConfigErrors(vec![format!(
                "{}{at}: {}",
                key.as_deref().unwrap_or("configuration"),
                without_values(e.message())
            )])
        })?;
        Ok(file.parse())
    }

    /// Problems that make the gateway unable to serve, one line each naming the setting. (The
    /// decision policy is checked where it is compiled: `app::check_config`.)
    pub fn validate_for_serve(&self) -> Result<(), ConfigErrors> {
        let mut p = Vec::new();
        let request_timeout_ms = self.server.request_timeout_ms;
        self.issuer.validate(&mut p);
        self.server.validate(&mut p);
        self.admin.validate(&mut p);
        self.database.validate(request_timeout_ms, &mut p);
        self.keys.validate(&mut p);
        self.sms.validate(request_timeout_ms, &mut p);
        self.email.validate(request_timeout_ms, &mut p);
        self.idv.validate(&mut p);
        self.idv.validate_with_policy(&self.policy, &mut p);
        self.limits.validate(&mut p);
        self.controls.validate(&mut p);
        self.response_codes.validate(&mut p);
        self.retention.validate(&mut p);
        self.sim_swap.validate(request_timeout_ms, &mut p);
        self.tsh.validate(&mut p);
        if let Some(app) = &self.app {
            app.validate(&mut p);
        }
        self.notices.validate(&mut p);
        webhooks::validate(&self.webhooks, &mut p);
        self.console.validate(&mut p);
        if self.server.require_real_channels {
            let outbox = [
                ("sms.provider", self.sms.provider == SmsProvider::Outbox),
                (
                    "email.provider",
                    self.email.provider == EmailProvider::Outbox,
                ),
            ];
            for (key, on_outbox) in outbox {
                if on_outbox {
                    p.push(format!("{key}: is outbox (messages are written to files, not delivered), and server.require_real_channels is set"));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(p))
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url_password(&self.database.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// A listen address: `key` is the setting, `example` what a good one looks like.
fn parse_addr(key: &str, value: &str, example: &str, p: &mut Vec<String>) -> SocketAddr {
    value.parse().unwrap_or_else(|_| {
        p.push(format!("{key}: must be an address such as {example}"));
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

/// A provider's deadline must leave the call time to answer.
fn validate_timeout(key: &str, ms: u64, request_timeout_ms: u64, p: &mut Vec<String>) {
    if ms == 0 || ms >= request_timeout_ms {
        p.push(format!(
            "{key}: must be above 0 and below server.request_timeout_ms ({request_timeout_ms})"
        ));
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:[redacted]@host/db`; also a
/// `password=` query parameter. The user information ends at the last `@` before the query
/// (a password holding `@` unencoded is still hidden whole).
pub fn redact_url_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        if let Some((userinfo, host)) = before_query.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:[redacted]@{host}");
                if let Some(q) = query {
                    out = format!("{out}?{q}");
                }
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

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The setting a typed error is about: toml ends its message with "in `section.key`".
fn key_of(message: &str) -> Option<String> {
    let (_, tail) = message.rsplit_once("in `")?;
    let key = tail.split('`').next()?;
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    ok.then(|| key.to_owned())
}

/// Where `key` (`section.key`, or `section.sub.key`) is set in the TOML `text`: 1-based line and
/// column of the key. Plain `key = value` lines under `[section]` headers, as configurations
/// are written; `None` when not found there.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            section = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            continue;
        }
        let Some((name, _)) = trimmed.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        let full = if section.is_empty() {
            name.to_owned()
        } else {
            format!("{section}.{name}")
        };
        if full == key || key.starts_with(&format!("{full}.")) {
            let col = line.chars().count() - trimmed.chars().count() + 1;
            return Some((i + 1, col));
        }
    }
    None
}

/// A TOML or serde message with every value it quotes left out, on one line: "invalid type:
/// string \"...\", expected u64" becomes "invalid type, expected u64"; names in backticks
/// (keys, expected tokens) are kept.
fn without_values(message: &str) -> String {
    let first = message.split_whitespace().collect::<Vec<_>>().join(" ");
    for kind in [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
    ] {
        if let Some(rest) = first.strip_prefix(kind) {
            let expected = rest
                .split_once(", expected ")
                .map(|(_, e)| format!(", expected {}", without_quotes(e)))
                .unwrap_or_default();
            let kind = if kind == "unknown variant" {
                "unknown value"
            } else {
                kind
            };
            return format!("{kind}{expected}");
        }
    }
    without_quotes(&first)
}

/// Drops `"..."` and `'...'` runs, and backtick runs that are not a plain name.
fn without_quotes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if d == c && !escaped {
                        break;
                    }
                    escaped = d == '\\' && !escaped;
                }
                out.push_str("[value]");
            }
            '`' => {
                let inner: String = chars.by_ref().take_while(|&d| d != '`').collect();
                let plain = inner.chars().count() <= 1
                    || inner.chars().all(|d| {
                        d.is_ascii_lowercase() || d.is_ascii_digit() || matches!(d, '_' | '.')
                    });
                if plain {
                    out.push('`');
                    out.push_str(&inner);
                    out.push('`');
                } else {
                    out.push_str("[value]");
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
        // Values that do not parse are found when the configuration is loaded, all at once.
        let err = Config::load(
            None,
            vars(&[
                ("ISSUER_GATEWAY__SMS__PROVIDER", "pigeon"),
                ("ISSUER_GATEWAY__SERVER__LISTEN", "localhost"),
                ("ISSUER_GATEWAY__LOG__FORMAT", "xml"),
                ("ISSUER_GATEWAY__IDV__CHANNEL_PREFERENCE", "sms, fax, sms"),
                ("ISSUER_GATEWAY__TEMPLATES__SMS__EN", "{pin}"),
            ]),
        )
        .unwrap_err();
        let text = err.to_string();
        for line in [
            "sms.provider: must be one of twilio, vonage, outbox, disabled",
            "server.listen: must be an address such as 127.0.0.1:8443",
            "log.format: must be one of auto, json, text",
            "idv.channel_preference: item 2 is not a channel (sms, email, bank_app, customer_service)",
            "idv.channel_preference: sms is listed twice",
            "templates.sms.en: unknown placeholder {pin}",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        for value in ["pigeon", "localhost", "xml", "fax"] {
            assert!(!text.contains(value), "{value} echoed in:\n{text}");
        }
        // What a server needs besides, when it starts.
        let c = Config::load(
            None,
            vars(&[
                ("ISSUER_GATEWAY__ISSUER__ID", "short"),
                ("ISSUER_GATEWAY__ADMIN__LISTEN", "0.0.0.0:9090"),
                ("ISSUER_GATEWAY__SMS__PROVIDER", "twilio"),
            ]),
        )
        .unwrap();
        let err = c.validate_for_serve().unwrap_err();
        let text = err.to_string();
        for key in [
            "issuer.id",
            "admin.token",
            "sms.base_url",
            "sms.auth_token",
            "keys.pkcs7_private_keys",
            "keys.pan_index_key_file",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
    }

    #[test]
    fn the_printed_configuration_loads_back_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let mut c = Config::default();
        c.sms.provider = SmsProvider::Disabled;
        c.server.level_of_trust_case = LevelOfTrustCase::Upper;
        c.idv.channel_preference = vec![crate::domain::IdvKind::Email];
        let printed = c.to_redacted_toml();
        std::fs::write(&file, &printed).unwrap();
        let again = Config::load(Some(&file), vec![]).unwrap();
        assert_eq!(again.to_redacted_toml(), printed);
    }

    #[test]
    fn defaults_parse() {
        let (config, problems) = ConfigFile::default().parse();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.sms.provider, SmsProvider::Outbox);
        assert_eq!(
            config.idv.channel_preference,
            vec![crate::domain::IdvKind::Sms, crate::domain::IdvKind::Email]
        );
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

    /// A mistake next to a secret names the key, the line and the column, never the value nor
    /// the line itself.
    #[test]
    fn errors_never_echo_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let cases = [
            // Syntax: an unterminated string, a bare word.
            (
                "[sms]\nauth_token = \"tw-S3CRET-1\nfrom = \"x\"\n",
                "line 2, column 26",
            ),
            ("[sms]\nauth_token = tw-S3CRET-2\n", "line 2, column 14"),
            // Types: a string where a number belongs, a number where a string belongs, a
            // string where a list belongs, an unknown provider.
            (
                "[sms]\ntimeout_ms = \"tw-S3CRET-3\"\n",
                "sms.timeout_ms (FILE, line 2, column 1): invalid type, expected u64",
            ),
            (
                "[admin]\n\ntoken = 77123456\n",
                "admin.token (FILE, line 3, column 1): invalid type, expected a string",
            ),
            (
                "[keys]\npkcs7_private_keys = \"tw-S3CRET-5\"\n",
                "keys.pkcs7_private_keys (FILE, line 2, column 1)",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&file, text).unwrap();
            let e = Config::load(Some(&file), vec![]).unwrap_err().to_string();
            let expected = expected.replace("FILE", &file.display().to_string());
            assert!(e.contains(&expected), "{expected} missing from:\n{e}");
            for secret in ["S3CRET", "77123456"] {
                assert!(!e.contains(secret), "a value is echoed:\n{e}");
            }
            assert_eq!(e.lines().count(), 2, "one line per problem:\n{e}");
        }
        // From the environment: named by its variable, or by its key.
        let e = Config::load(
            None,
            vars(&[("ISSUER_GATEWAY__SMS__PROVIDER", "tw-S3CRET-6")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sms.provider") && !e.contains("S3CRET"), "{e}");
    }

    #[test]
    fn a_password_with_an_at_sign_is_redacted_whole() {
        let shown =
            redact_url_password("postgres://gw:p@ss@w0rd@db.internal:5432/gw?sslmode=require");
        assert_eq!(
            shown,
            "postgres://gw:[redacted]@db.internal:5432/gw?sslmode=require"
        );
        assert_eq!(
            redact_url_password("postgres://db.internal/gw?user=a&password=x@y"),
            "postgres://db.internal/gw?user=a&password=[redacted]"
        );
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
