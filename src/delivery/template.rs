//! Message templates with `{otp}`, `{last4}` and `{wallet}` placeholders (`{{` and `}}` for
//! literal braces). The OTP is inserted byte for byte: no spacing, reformatting or escaping.

use zeroize::Zeroizing;

/// What a template can refer to.
pub struct Values<'a> {
    pub otp: &'a str,
    pub last4: &'a str,
    pub wallet: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}} (use {{otp}}, {{last4}}, {{wallet}})")]
    Unknown(String),
    #[error("unclosed '{{' (write '{{{{' for a literal brace)")]
    Unclosed,
    #[error("lone '}}' (write '}}}}' for a literal brace)")]
    LoneClose,
}

enum Piece<'t> {
    Text(&'t str),
    Otp,
    Last4,
    Wallet,
}

fn pieces(t: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        let next = rest.find(['{', '}']);
        let Some(i) = next else {
            out.push(Piece::Text(rest));
            break;
        };
        let (text, tail) = rest.split_at(i);
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        if let Some(after) = tail.strip_prefix("{{") {
            out.push(Piece::Text("{"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push(Piece::Text("}"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after.find('}').ok_or(TemplateError::Unclosed)?;
            let (name, after_name) = after.split_at(end);
            out.push(match name {
                "otp" => Piece::Otp,
                "last4" => Piece::Last4,
                "wallet" => Piece::Wallet,
                other => return Err(TemplateError::Unknown(other.to_owned())),
            });
            rest = after_name.strip_prefix('}').unwrap_or(after_name);
        } else {
            return Err(TemplateError::LoneClose);
        }
    }
    Ok(out)
}

/// Checks a template at start-up.
pub fn check(t: &str) -> Result<(), TemplateError> {
    pieces(t).map(|_| ())
}

/// Renders a template that `check` accepted (an invalid one renders as its text).
pub fn render(t: &str, v: &Values<'_>) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(t.len() + v.otp.len() + 16));
    match pieces(t) {
        Ok(ps) => {
            for p in ps {
                match p {
                    Piece::Text(s) => out.push_str(s),
                    Piece::Otp => out.push_str(v.otp),
                    Piece::Last4 => out.push_str(v.last4),
                    Piece::Wallet => out.push_str(v.wallet),
                }
            }
        }
        Err(_) => out.push_str(t),
    }
    out
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_placeholders_and_literal_braces() {
        let v = Values {
            otp: "0042",
            last4: "1111",
            wallet: "Apple Pay",
        };
        assert_eq!(
            render("{otp} for {wallet} ({last4}) {{x}}", &v).as_str(),
            "0042 for Apple Pay (1111) {x}"
        );
        assert!(matches!(check("{pin}"), Err(TemplateError::Unknown(_))));
        assert_eq!(check("{otp"), Err(TemplateError::Unclosed));
        assert_eq!(check("a } b"), Err(TemplateError::LoneClose));
    }

    proptest! {
        #[test]
        fn the_otp_appears_exactly_as_received(otp in "\\PC{1,32}") {
            let v = Values { otp: &otp, last4: "1111", wallet: "W" };
            let out = render("Code: {otp}.", &v);
            prop_assert_eq!(out.as_str(), format!("Code: {otp}."));
        }
    }
}
