//! `x-correlation-id` and `x-issuer-id`.

use super::error::{ApiError, Reason};
use axum::http::HeaderMap;

/// At most this many headers, of at most this many bytes together (TSH sends a handful).
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The headers of a call, checked.
#[derive(Debug, Clone)]
pub struct CallHeaders {
    pub correlation_id: String,
}

/// Checks the two mandatory headers: a correlation id of 1..64 printable characters (any:
/// spaces, digits and letters beyond ASCII included, as Thales's compatibility rules require)
/// and an issuer id of exactly 10 characters equal to ours. A missing header is `missing_field`;
/// a repeated or malformed one `bad_field`; another issuer's id `unknown_issuer`.
pub fn check(headers: &HeaderMap, issuer_id: &str) -> Result<CallHeaders, ApiError> {
    let total: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || total > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            Reason::BadField,
            "too many or too large headers",
        ));
    }
    let read = |name: &str| -> Result<&str, ApiError> {
        let mut values = headers.get_all(name).iter();
        let v = values.next().ok_or_else(|| {
            ApiError::new(Reason::MissingField, format!("{name} header is missing"))
        })?;
        if values.next().is_some() {
            return Err(ApiError::new(
                Reason::BadField,
                format!("{name} header is repeated"),
            ));
        }
        std::str::from_utf8(v.as_bytes())
            .ok()
            .filter(|s| !s.chars().any(char::is_control))
            .ok_or_else(|| {
                ApiError::new(
                    Reason::BadField,
                    format!("{name} header must be printable text"),
                )
            })
    };
    let correlation_id = read("x-correlation-id")?;
    let n = correlation_id.chars().count();
    if n == 0 || n > 64 || correlation_id.contains('\0') {
        return Err(ApiError::new(
            Reason::BadField,
            "x-correlation-id header must be 1 to 64 printable characters",
        ));
    }
    let issuer = read("x-issuer-id")?;
    if issuer.chars().count() != 10 {
        return Err(ApiError::new(
            Reason::BadField,
            "x-issuer-id header must be exactly 10 characters",
        ));
    }
    if issuer != issuer_id {
        return Err(ApiError::new(
            Reason::UnknownIssuer,
            "x-issuer-id is not this issuer",
        ));
    }
    Ok(CallHeaders {
        correlation_id: correlation_id.to_owned(),
    })
}
