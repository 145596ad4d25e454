//! Message templates with `{otp}`, `{last4}`, `{wallet}` (and, in notices, `{support_phone}`)
//! placeholders (`{{` and `}}` for
//! literal braces), parsed once when the configuration is loaded. The OTP is inserted byte for
//! byte: no spacing, reformatting or escaping.

use zeroize::Zeroizing;

/// What a template can refer to.
#[derive(Default)]
pub struct Values<'a> {
    pub otp: &'a str,
    pub last4: &'a str,
    pub wallet: &'a str,
    /// The issuer's support number (`notices.support_phone`), in notices to the cardholder.
    pub support_phone: &'a str,
    /// "on Google Pixel 8" (or "on a new device"), in notices to the cardholder.
    pub device: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{0}}} (use {{otp}}, {{last4}}, {{wallet}}, {{support_phone}}, {{device}})"
    )]
    Unknown(String),
    #[error("unclosed '{{' (write '{{{{' for a literal brace)")]
    Unclosed,
    #[error("lone '}}' (write '}}}}' for a literal brace)")]
    LoneClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Otp,
    Last4,
    Wallet,
    SupportPhone,
    Device,
}

/// A template that parsed: rendering it cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(t: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = t;
        let text = |pieces: &mut Vec<Piece>, s: &str| match pieces.last_mut() {
            Some(Piece::Text(last)) => last.push_str(s),
            _ => pieces.push(Piece::Text(s.to_owned())),
        };
        while !rest.is_empty() {
            let Some(i) = rest.find(['{', '}']) else {
                text(&mut pieces, rest);
                break;
            };
            let (before, tail) = rest.split_at(i);
            if !before.is_empty() {
                text(&mut pieces, before);
            }
            if let Some(after) = tail.strip_prefix("{{") {
                text(&mut pieces, "{");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                text(&mut pieces, "}");
                rest = after;
            } else if let Some(after) = tail.strip_prefix('{') {
                let end = after.find('}').ok_or(TemplateError::Unclosed)?;
                let (name, after_name) = after.split_at(end);
                pieces.push(match name {
                    "otp" => Piece::Otp,
                    "last4" => Piece::Last4,
                    "wallet" => Piece::Wallet,
                    "support_phone" => Piece::SupportPhone,
                    "device" => Piece::Device,
                    other => return Err(TemplateError::Unknown(other.to_owned())),
                });
                rest = after_name.strip_prefix('}').unwrap_or(after_name);
            } else {
                return Err(TemplateError::LoneClose);
            }
        }
        Ok(Template {
            source: t.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template inserts the OTP.
    pub fn has_otp(&self) -> bool {
        self.pieces.contains(&Piece::Otp)
    }

    pub fn render(&self, v: &Values<'_>) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(self.source.len() + v.otp.len() + 16));
        for p in &self.pieces {
            match p {
                Piece::Text(s) => out.push_str(s),
                Piece::Otp => out.push_str(v.otp),
                Piece::Last4 => out.push_str(v.last4),
                Piece::Wallet => out.push_str(v.wallet),
                Piece::SupportPhone => out.push_str(v.support_phone),
                Piece::Device => out.push_str(v.device),
            }
        }
        out
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render(t: &str, v: &Values<'_>) -> String {
        Template::parse(t).unwrap().render(v).to_string()
    }

    #[test]
    fn renders_placeholders_and_literal_braces() {
        let v = Values {
            otp: "0042",
            last4: "1111",
            wallet: "Apple Pay",
            support_phone: "",
            device: "",
        };
        assert_eq!(
            render("{otp} for {wallet} ({last4}) {{x}}", &v),
            "0042 for Apple Pay (1111) {x}"
        );
        assert!(matches!(
            Template::parse("{pin}"),
            Err(TemplateError::Unknown(_))
        ));
        assert_eq!(Template::parse("{otp"), Err(TemplateError::Unclosed));
        assert_eq!(Template::parse("a } b"), Err(TemplateError::LoneClose));
        assert!(Template::parse("code {otp}").unwrap().has_otp());
        assert!(!Template::parse("code {{otp}}").unwrap().has_otp());
    }

    proptest! {
        #[test]
        fn the_otp_appears_exactly_as_received(otp in "\\PC{1,32}") {
            let v = Values { otp: &otp, last4: "1111", wallet: "W", support_phone: "", device: "" };
            prop_assert_eq!(render("Code: {otp}.", &v), format!("Code: {otp}."));
        }
    }
}
