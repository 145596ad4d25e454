//! A language, as the message templates are keyed: the primary subtag of a language tag.

use std::fmt;

/// A language code such as `en` or `fr`: the primary subtag of `en-GB`, `EN_gb` or `en`,
/// lower-cased, letters only, 2 to 8 of them. A value of this type is always such a code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Language(String);

impl Language {
    /// `en-GB`, `EN_gb`, `en` -> `en`. `None` when the tag's primary subtag has fewer than two
    /// letters (it names no language a template could be written in).
    pub fn parse(tag: &str) -> Option<Language> {
        let code: String = tag
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(8)
            .collect();
        (code.len() >= 2).then_some(Language(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_subtag_lower_cased() {
        for (tag, code) in [
            ("en-GB", "en"),
            ("EN_gb", "en"),
            ("fr", "fr"),
            (" de ", "de"),
        ] {
            assert_eq!(
                Language::parse(tag).map(|l| l.to_string()).as_deref(),
                Some(code)
            );
        }
        for tag in ["", "e", "-GB", "1234"] {
            assert_eq!(Language::parse(tag), None, "{tag}");
        }
    }
}
