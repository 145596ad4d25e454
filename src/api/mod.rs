//! The TSH-facing HTTP layer: every operation is `POST {base_path}/{operation}` with a JSON body.
//! One dispatcher checks the headers, the content type and the body size, parses the JSON,
//! runs the operation under the request deadline, then logs one line and counts the call.

pub mod digitization;
pub mod eligibility;
pub mod error;
pub mod fields;
pub mod headers;
pub mod notify;
pub mod opened_cards;
pub mod resolve_card;
pub mod send_otp;

use crate::state::{AppState, SharedState};
use crate::store::CallRecord;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use error::{ApiError, Code};
use fields::Fields;
use opened_cards::OpenedCards;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bodies above this size are refused (400, code 100) without being read whole.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The TSH-facing API's own state: the shared state, and the cards named by the envelopes
/// eligibility opened, so that digitization need not open the same envelope again (see
/// [`opened_cards`]).
pub struct ApiState {
    pub app: SharedState,
    pub opened_cards: OpenedCards,
}

/// The operations, dispatched in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CheckCardEligibility,
    RequestCardDigitization,
    SendOtp,
    NotifyVirtualCardChange,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::CheckCardEligibility => "checkCardEligibility",
            Operation::RequestCardDigitization => "requestCardDigitization",
            Operation::SendOtp => "sendOTP",
            Operation::NotifyVirtualCardChange => "notifyVirtualCardChange",
        }
    }
}

/// A successful operation: its response body, and what to log as its outcome.
pub struct Success {
    pub body: Value,
    pub outcome: String,
}

/// The context of one call.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub opened_cards: &'a OpenedCards,
    pub correlation_id: &'a str,
    pub started: Instant,
    pub at: i64,
}

impl Call<'_> {
    pub fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// A call record for this call with the given outcome.
    pub fn record<'r>(&'r self, op: Operation, code: i64, outcome: &'r str) -> CallRecord<'r> {
        CallRecord {
            correlation_id: self.correlation_id,
            operation: op.name(),
            card_ref: None,
            wallet: None,
            state: None,
            response_code: code,
            outcome,
            detail: None,
            duration_ms: self.elapsed_ms(),
            at: self.at,
        }
    }
}

/// The TSH-facing routes (the alias `requestCardEligibility` included).
pub fn router(state: SharedState) -> Router {
    let base = state.config.server.base_path.clone();
    let state = Arc::new(ApiState {
        app: state,
        opened_cards: OpenedCards::new(),
    });
    let route =
        |op: Operation| post(move |s: State<Arc<ApiState>>, req: Request| dispatch(op, s, req));
    Router::new()
        .route(
            &format!("{base}/checkCardEligibility"),
            route(Operation::CheckCardEligibility),
        )
        .route(
            &format!("{base}/requestCardEligibility"),
            route(Operation::CheckCardEligibility),
        )
        .route(
            &format!("{base}/requestCardDigitization"),
            route(Operation::RequestCardDigitization),
        )
        .route(&format!("{base}/sendOTP"), route(Operation::SendOtp))
        .route(
            &format!("{base}/notifyVirtualCardChange"),
            route(Operation::NotifyVirtualCardChange),
        )
        .with_state(state)
}

async fn dispatch(op: Operation, State(api): State<Arc<ApiState>>, req: Request) -> Response {
    let state = &api.app;
    let started = Instant::now();
    let deadline = Duration::from_millis(state.config.server.request_timeout_ms);
    let mut correlation: Option<String> = None;
    let result = match tokio::time::timeout(
        deadline,
        handle(op, &api, req, started, &mut correlation),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ApiError::internal(format!(
            "request deadline of {} ms passed",
            deadline.as_millis()
        ))),
    };
    let elapsed = started.elapsed();
    let (response, code, outcome) = match result {
        Ok(s) => (
            (axum::http::StatusCode::OK, axum::Json(s.body)).into_response(),
            200u16,
            s.outcome,
        ),
        Err(e) => {
            let code = e.code.number();
            let outcome = if e.code == Code::Internal {
                "internal-error".to_owned()
            } else {
                "refused".to_owned()
            };
            // Refusals are recorded with the enrolment (best effort: a database fault must not
            // hide the original answer). Internal faults are logged only.
            if let (Some(cid), false, false) = (&correlation, e.recorded, e.code == Code::Internal)
            {
                // The reference a refused call named is caller input: stored in safe form.
                let card_ref = e
                    .card_ref
                    .as_deref()
                    .map(|r| state.data_keys.safe_identifier(r));
                let rec = CallRecord {
                    correlation_id: cid,
                    operation: op.name(),
                    card_ref: card_ref.as_deref(),
                    wallet: None,
                    state: e.state,
                    response_code: i64::from(code),
                    outcome: &outcome,
                    detail: Some(&e.message),
                    duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
                    at: state.clock.now_ms(),
                };
                if let Err(db) = state.store.record_call(&rec).await {
                    tracing::warn!(operation = op.name(), error = %db, "could not record a refused call");
                }
            }
            if let Some(cause) = &e.cause {
                tracing::error!(operation = op.name(), cause = %cause, "internal error");
            }
            (e.into_response(), code, outcome)
        }
    };
    let cid = correlation
        .as_deref()
        .map(crate::domain::log_safe)
        .unwrap_or_default();
    tracing::info!(
        operation = op.name(),
        correlation_id = %cid,
        outcome = %outcome,
        response_code = code,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    crate::metrics::record_request(op.name(), code, elapsed);
    response
}

async fn handle(
    op: Operation,
    api: &ApiState,
    req: Request,
    started: Instant,
    correlation: &mut Option<String>,
) -> Result<Success, ApiError> {
    let state = &*api.app;
    let mut h = headers::check(req.headers(), &state.config.issuer.id)?;
    // From here on, the correlation id is in its storable form (never a PAN).
    h.correlation_id = state.data_keys.safe_identifier(&h.correlation_id);
    *correlation = Some(h.correlation_id.clone());
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !(content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json")))
    {
        return Err(ApiError::new(
            Code::BadBody,
            "content type must be application/json",
        ));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::new(Code::BadBody, "body is larger than 64 KiB"));
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                Code::BadBody,
                "body is larger than 64 KiB or could not be read",
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::new(Code::BadBody, "body is not valid JSON"))?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(Code::BadBody, "body must be a JSON object"));
    };
    let call = Call {
        state,
        opened_cards: &api.opened_cards,
        correlation_id: &h.correlation_id,
        started,
        at: state.clock.now_ms(),
    };
    let body = Fields(&map);
    match op {
        Operation::CheckCardEligibility => eligibility::handle(&call, &body).await,
        Operation::RequestCardDigitization => digitization::handle(&call, &body).await,
        Operation::SendOtp => send_otp::handle(&call, &body).await,
        Operation::NotifyVirtualCardChange => notify::handle(&call, &body).await,
    }
}
