//! What the provider blocks of `[sms]` and `[email]` share: the primary block and its
//! `[[sms.fallback]]` / `[[email.fallback]]` blocks are read alike, each named, each with its own
//! circuit breaker, each problem named by the block's own key (`sms.fallback[0].base_url`).

/// The name of the provider at `position` (1 for the section itself) of a channel's chain:
/// `given` when set (checked: 1..=32 of `[A-Za-z0-9_-]`, unique in the channel), else its kind
/// (`twilio`), or `twilio-2` when that name is taken.
pub(super) fn name(
    key: &str,
    given: &str,
    kind: &str,
    position: usize,
    taken: &mut Vec<String>,
    p: &mut Vec<String>,
) -> String {
    let given = given.trim();
    let name = if given.is_empty() {
        if taken.iter().any(|t| t == kind) {
            format!("{kind}-{position}")
        } else {
            kind.to_owned()
        }
    } else {
        let ok = given.len() <= 32
            && given
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !ok {
            p.push(format!(
                "{key}.name: must be 1 to 32 letters, digits, '_' or '-'"
            ));
        }
        given.to_owned()
    };
    if taken.contains(&name) {
        p.push(format!(
            "{key}.name: {name} already names another provider of the channel"
        ));
    }
    taken.push(name.clone());
    name
}

/// The names of a chain's providers, in order, from each one's `(kind, given name)`: as
/// [`name`] gives them (the problems were reported when the configuration was read).
pub fn names<'a>(blocks: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut taken = Vec::new();
    let mut ignored = Vec::new();
    for (i, (kind, given)) in blocks.enumerate() {
        name("", given, kind, i + 1, &mut taken, &mut ignored);
    }
    taken
}

/// A problem line of a block checked as `[sms]` (`from`: `sms.`), named for the block it is
/// really about (`to`: `sms.fallback[0].`).
pub(super) fn rekey(line: &str, from: &str, to: &str) -> String {
    line.replace(from, to)
}

/// `{section}.breaker_failures` and `{section}.breaker_open_seconds`.
pub(super) fn validate_breaker(
    section: &str,
    failures: u32,
    open_seconds: u64,
    p: &mut Vec<String>,
) {
    if failures > 1000 {
        p.push(format!(
            "{section}.breaker_failures: must be 0 (never skip the provider) to 1000"
        ));
    }
    if failures > 0 && !(1..=86_400).contains(&open_seconds) {
        p.push(format!(
            "{section}.breaker_open_seconds: must be 1 to 86400"
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(Some(&file), vec![]).map_err(|e| e.to_string())
    }

    #[test]
    fn fallbacks_are_read_named_and_checked_by_their_own_key() {
        let c = load(
            "[sms]\nprovider = \"twilio\"\nbase_url = \"http://127.0.0.1:1\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+1\"\n\
             [[sms.fallback]]\nprovider = \"vonage\"\nbase_url = \"http://127.0.0.1:2\"\napi_key = \"k\"\napi_secret = \"s\"\nfrom = \"Bank\"\ntimeout_ms = 900\n\
             [[sms.fallback]]\nprovider = \"twilio\"\n\
             [[email.fallback]]\nprovider = \"smtp\"\nhost = \"relay2.example\"\nname = \"backup\"\n",
        )
        .unwrap();
        assert_eq!(c.sms.provider_names(), ["twilio", "vonage", "twilio-3"]);
        assert_eq!(c.sms.fallback[0].timeout_ms, 900);
        assert_eq!(c.sms.breaker_failures, 5);
        assert_eq!(c.email.provider_names(), ["outbox", "backup"]);
        let mut p = Vec::new();
        c.sms.validate(5_000, &mut p);
        assert_eq!(
            p,
            [
                "sms.fallback[1].base_url: required when sms.fallback[1].provider = \"twilio\"",
                "sms.fallback[1].account_sid: required when sms.fallback[1].provider = \"twilio\"",
                "sms.fallback[1].from: required when sms.fallback[1].provider = \"twilio\"",
                "sms.fallback[1].auth_token: required when sms.fallback[1].provider = \"twilio\"",
            ]
        );
        // The printed configuration, fallbacks included, loads back as itself.
        let printed = c.to_redacted_toml();
        assert!(printed.contains("[[sms.fallback]]"), "{printed}");
        let again = load(&printed).unwrap();
        assert_eq!(again.to_redacted_toml(), printed);
    }

    #[test]
    fn bad_fallbacks_are_named() {
        let e = load(
            "[[sms.fallback]]\nprovider = \"outbox\"\nname = \"a b\"\n[[sms.fallback]]\nprovider = \"pigeon\"\n\
             [[email.fallback]]\nprovider = \"smtp\"\nname = \"outbox\"\n",
        )
        .unwrap_err();
        for line in [
            "sms.fallback[0].provider: must be twilio or vonage",
            "sms.fallback[0].name: must be 1 to 32 letters",
            "sms.fallback[1].provider: must be one of twilio, vonage, outbox, disabled",
            "email.fallback[0].name: outbox already names another provider of the channel",
        ] {
            assert!(e.contains(line), "{line} missing from:\n{e}");
        }
    }
}
