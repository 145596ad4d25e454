//! The one place where an error becomes `{"responseCode", "errorMessage"}`.

use crate::config::ResponseCodes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::domain::Reason;

/// An error answered to TSH. `message` is shown to the caller and must never hold card data or
/// internals; `cause` goes to the log only (and must not hold card data either).
#[derive(Debug)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            cause: None,
        }
    }

    /// An internal fault: the caller sees a generic 500, the log sees the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            reason: Reason::Internal,
            message: "internal error".into(),
            cause: Some(cause.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        if self.reason == Reason::Internal {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl ApiError {
    /// The answer: the contract's body with the number `codes` gives this reason.
    pub fn response(&self, codes: &ResponseCodes) -> Response {
        response(self.status(), codes.number(self.reason), &self.message)
    }
}

/// The contract's error body with `status`: every error answer of the TSH-facing listener is
/// built here (refusals, internal faults, unknown paths and methods, and the overload and panic
/// answers of its layers).
pub fn response(status: StatusCode, number: u16, message: &str) -> Response {
    let body = json!({ "responseCode": number, "errorMessage": message });
    (status, axum::Json(body)).into_response()
}
