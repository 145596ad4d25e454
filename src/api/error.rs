//! The one place where an error becomes `{"responseCode", "errorMessage"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A response code of the contract (see docs/response-codes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    BadBody = 100,
    Missing = 101,
    BadField = 102,
    BadHeader = 103,
    WrongIssuer = 104,
    Undecryptable = 110,
    BadCardData = 111,
    UnknownCard = 120,
    Expired = 121,
    NotActive = 122,
    ProductNotEnabled = 123,
    NoStepUp = 130,
    UnknownMethod = 131,
    NoDestination = 132,
    RateLimited = 133,
    FraudRefused = 134,
    OtpExpired = 135,
    ProviderFailed = 136,
    ProviderTimeout = 137,
    Internal = 500,
}

impl Code {
    pub fn number(self) -> u16 {
        self as u16
    }
}

/// An error answered to TSH. `message` is shown to the caller and must never hold card data or
/// internals; `cause` goes to the log only (and must not hold card data either).
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// An internal fault: the caller sees a generic 500, the log sees the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            code: Code::Internal,
            message: "internal error".into(),
            cause: Some(cause.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        if self.code == Code::Internal {
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        response(self.status(), self.code, &self.message)
    }
}

/// The contract's error body with `status`: every error answer of the TSH-facing listener is
/// built here (refusals, internal faults, and the overload and panic answers of its layers).
pub fn response(status: StatusCode, code: Code, message: &str) -> Response {
    let body = json!({ "responseCode": code.number(), "errorMessage": message });
    (status, axum::Json(body)).into_response()
}
