//! `x-correlation-id` and `x-issuer-id`.

use super::error::{ApiError, Code};
use axum::http::HeaderMap;

/// At most this many headers, of at most this many bytes together (TSH sends a handful).
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The headers of a call, checked.
#[derive(Debug, Clone)]
pub struct CallHeaders {
    pub correlation_id: String,
}

/// Checks the two mandatory headers: a correlation id of 1..64 printable ASCII characters and
/// an issuer id of exactly 10 characters equal to ours.
pub fn check(headers: &HeaderMap, issuer_id: &str) -> Result<CallHeaders, ApiError> {
    let total: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || total > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            Code::BadHeader,
            "too many or too large headers",
        ));
    }
    let read = |name: &str| -> Result<&str, ApiError> {
        let mut values = headers.get_all(name).iter();
        let v = values
            .next()
            .ok_or_else(|| ApiError::new(Code::BadHeader, format!("{name} header is missing")))?;
        if values.next().is_some() {
            return Err(ApiError::new(
                Code::BadHeader,
                format!("{name} header is repeated"),
            ));
        }
        v.to_str().map_err(|_| {
            ApiError::new(
                Code::BadHeader,
                format!("{name} header must be printable ASCII"),
            )
        })
    };
    let correlation_id = read("x-correlation-id")?;
    if correlation_id.is_empty()
        || correlation_id.len() > 64
        || !correlation_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::new(
            Code::BadHeader,
            "x-correlation-id header must be 1 to 64 printable characters",
        ));
    }
    let issuer = read("x-issuer-id")?;
    if issuer.chars().count() != 10 {
        return Err(ApiError::new(
            Code::BadHeader,
            "x-issuer-id header must be exactly 10 characters",
        ));
    }
    if issuer != issuer_id {
        return Err(ApiError::new(
            Code::WrongIssuer,
            "x-issuer-id is not this issuer",
        ));
    }
    Ok(CallHeaders {
        correlation_id: correlation_id.to_owned(),
    })
}
