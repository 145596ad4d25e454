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
    /// The card concerned, when known, for the enrolment record.
    pub card_ref: Option<String>,
    /// The enrolment's new state, when this refusal changes it.
    pub state: Option<&'static str>,
    /// True when the operation already recorded this refusal with the enrolment.
    pub recorded: bool,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            cause: None,
            card_ref: None,
            state: None,
            recorded: false,
        }
    }

    /// An internal fault: the caller sees a generic 500, the log sees the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            code: Code::Internal,
            message: "internal error".into(),
            cause: Some(cause.to_string()),
            card_ref: None,
            state: None,
            recorded: false,
        }
    }

    pub fn with_card(mut self, card_ref: &str) -> Self {
        self.card_ref = Some(card_ref.to_owned());
        self
    }

    pub fn with_state(mut self, state: &'static str) -> Self {
        self.state = Some(state);
        self
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
        let body = json!({ "responseCode": self.code.number(), "errorMessage": self.message });
        (self.status(), axum::Json(body)).into_response()
    }
}
