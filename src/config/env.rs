//! `ISSUER_GATEWAY__SECTION__KEY=value` environment overrides, applied to the configuration as
//! written before its values are parsed.
//!
//! Not `figment`: its environment provider would take `a.pem, b.pem` as one string (the
//! documented comma-separated list form would break) and its errors name neither the variable
//! nor what was expected; the same layer would be needed on top of it.

use super::{ConfigErrors, ConfigFile, ENV_PREFIX};

/// Applies `ISSUER_GATEWAY__SECTION__KEY=value` overrides. The value's type follows the
/// setting's type in the defaults: numbers and booleans are parsed, lists accept a TOML array
/// (`["a","b"]`) or a comma-separated list, everything else is taken as a string.
pub(super) fn apply(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigErrors> {
    let mut defaults = toml::Value::try_from(ConfigFile::default())
        .unwrap_or(toml::Value::Table(toml::Table::new()));
    // `[app]` is absent by default: its keys' types come from its own defaults.
    if let (toml::Value::Table(t), Ok(app)) = (
        &mut defaults,
        toml::Value::try_from(super::app_api::AppFile::default()),
    ) {
        t.entry("app").or_insert(app);
    }
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
