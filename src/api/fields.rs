//! Reading request fields from a JSON object, tolerantly (unknown fields are ignored) but with
//! the lengths of the contract enforced, each failure naming the field (never its value).

use super::error::{ApiError, Reason};
use serde_json::{Map, Value};

pub struct Fields<'a>(pub &'a Map<String, Value>);

fn missing(name: &str) -> ApiError {
    ApiError::new(Reason::MissingField, format!("{name} is missing"))
}

fn bad(name: &str, what: &str) -> ApiError {
    ApiError::new(Reason::BadField, format!("{name} {what}"))
}

impl<'a> Fields<'a> {
    fn present(&self, name: &str) -> Option<&'a Value> {
        match self.0.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A string of `min..=max` characters, or `None` when absent or null. A NUL character is
    /// refused: no caller has a use for it, and PostgreSQL cannot store it in text.
    pub fn opt_str(&self, name: &str, min: usize, max: usize) -> Result<Option<&'a str>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min || n > max {
                    Err(bad(name, &format!("must be {min} to {max} characters")))
                } else if s.contains('\0') {
                    Err(bad(name, "must not contain a NUL character"))
                } else {
                    Ok(Some(s.as_str()))
                }
            }
            Some(_) => Err(bad(name, "must be a string")),
        }
    }

    pub fn req_str(&self, name: &str, min: usize, max: usize) -> Result<&'a str, ApiError> {
        self.opt_str(name, min, max)?.ok_or_else(|| missing(name))
    }

    /// An identifier (`walletProviderId`, `virtualCardId`, `issuerCardRefId`, ...): a free
    /// string within its lengths, as Thales's compatibility rules require (real wallets' ids hold
    /// spaces and lower case). Only the length and the type are enforced, like `opt_str`.
    pub fn opt_id(&self, name: &str, min: usize, max: usize) -> Result<Option<&'a str>, ApiError> {
        self.opt_str(name, min, max)
    }

    pub fn req_id(&self, name: &str, min: usize, max: usize) -> Result<&'a str, ApiError> {
        self.opt_id(name, min, max)?.ok_or_else(|| missing(name))
    }

    /// A boolean; the strings "true"/"false" are accepted too (Thales sends scores as strings).
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(bad(name, "must be a boolean")),
        }
    }

    /// An integer; a string of digits is accepted too.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad(name, "must be an integer")),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| bad(name, "must be an integer")),
            Some(_) => Err(bad(name, "must be an integer")),
        }
    }

    pub fn opt_obj(&self, name: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields(m))),
            Some(_) => Err(bad(name, "must be an object")),
        }
    }

    pub fn opt_array(&self, name: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(bad(name, "must be an array")),
        }
    }

    /// A loosely typed signal (a score sent as a string or a number), as text; never an error:
    /// signals that cannot be read are treated as absent.
    pub fn signal(&self, name: &str) -> Option<String> {
        match self.present(name) {
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A signal read as a number.
    /// A signal read as a number; "NaN", "inf" and the like count as absent.
    pub fn signal_num(&self, name: &str) -> Option<f64> {
        self.signal(name)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_character_is_a_bad_field() {
        let body = json!({"tokenStorageId": "a\u{0}b", "walletCardRefId": "ab"});
        let fields = Fields(body.as_object().unwrap());
        let e = fields.opt_str("tokenStorageId", 1, 128).unwrap_err();
        assert_eq!(e.reason, Reason::BadField);
        assert_eq!(e.message, "tokenStorageId must not contain a NUL character");
        assert_eq!(
            fields.opt_str("walletCardRefId", 1, 128).unwrap(),
            Some("ab")
        );
    }
}
