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

use crate::domain::Millis;
use crate::state::{AppState, SharedState};
use crate::store::{CallRecord, Write, Written};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use error::{ApiError, Reason};
use fields::Fields;
use opened_cards::OpenedCards;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refused calls recorded per enrolment at most; beyond, they are only counted.
pub const MAX_REFUSALS_RECORDED: i64 = 100;

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

/// What an operation decided: its answer, what its call record says, and what it writes with
/// that record. Only the dispatcher writes call records: the operation's rows and its call record in
/// one transaction ([`crate::store::Store::record`]), before the answer leaves.
pub struct Handled {
    /// The 200 body, or the refusal.
    pub answer: Result<Value, ApiError>,
    pub audit: Audit,
    pub write: Write,
}

/// What the call record of a call says, besides its operation, response code and timing.
#[derive(Debug, Default)]
pub struct Audit {
    /// The card concerned, when known. On a refusal, the reference the caller named, stored in
    /// safe form.
    pub card_ref: Option<String>,
    pub wallet: Option<String>,
    /// The enrolment's new state, when this call changes it.
    pub state: Option<&'static str>,
    /// The record's outcome (`eligible`, `green`, `accepted`, ...); empty: `refused`.
    pub outcome: String,
    /// The record's detail; on a refusal without one, the refusal's message.
    pub detail: Option<String>,
    /// What the log line says of the outcome (more than the record, never card data); empty:
    /// the record's outcome.
    pub log: String,
}

impl Audit {
    /// An audit of the card `card_ref`.
    pub fn card(card_ref: &str) -> Audit {
        Audit {
            card_ref: Some(card_ref.to_owned()),
            ..Audit::default()
        }
    }
}

impl Handled {
    /// A 200 answer.
    pub fn ok(body: Value, audit: Audit) -> Handled {
        Handled {
            answer: Ok(body),
            audit,
            write: Write::Nothing,
        }
    }

    /// A refusal, recorded with what `audit` says.
    pub fn refused(error: ApiError, audit: Audit) -> Handled {
        Handled {
            answer: Err(error),
            audit,
            write: Write::Nothing,
        }
    }

    /// The same, writing `write` with the call record.
    pub fn writing(mut self, write: Write) -> Handled {
        self.write = write;
        self
    }
}

/// The context of one call.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub opened_cards: &'a OpenedCards,
    pub correlation_id: &'a str,
    pub started: Instant,
    pub at: Millis,
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A path the API does not have: 404 with the contract's body.
async fn not_found(State(api): State<Arc<ApiState>>) -> Response {
    let number = api
        .app
        .config
        .response_codes
        .number(Reason::UnknownOperation);
    error::response(
        axum::http::StatusCode::NOT_FOUND,
        number,
        "no such operation",
    )
}

/// A method other than POST on an operation's path: 405 with the contract's body.
async fn method_not_allowed(State(api): State<Arc<ApiState>>) -> Response {
    let number = api
        .app
        .config
        .response_codes
        .number(Reason::UnknownOperation);
    let mut response = error::response(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        number,
        "operations are called with POST",
    );
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    response
}

async fn dispatch(op: Operation, State(api): State<Arc<ApiState>>, req: Request) -> Response {
    let state = &api.app;
    let started = Instant::now();
    let deadline = Duration::from_millis(state.config.server.request_timeout_ms);
    let mut correlation: Option<String> = None;
    let result = match tokio::time::timeout(
        deadline,
        answer(op, &api, req, started, &mut correlation),
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
        Ok((body, outcome)) => (
            (axum::http::StatusCode::OK, axum::Json(body)).into_response(),
            200u16,
            outcome,
        ),
        Err(e) => {
            if let Some(cause) = &e.cause {
                tracing::error!(operation = op.name(), cause = %cause, "internal error");
            }
            let outcome = if e.reason == Reason::Internal {
                "internal-error"
            } else {
                "refused"
            };
            let codes = &state.config.response_codes;
            (
                e.response(codes),
                codes.number(e.reason),
                outcome.to_owned(),
            )
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

/// Runs the operation, then writes its call record with what it writes (refusals best effort:
/// a database fault must not hide the original answer; internal faults are logged only).
/// `Ok`: the 200 body and the log's outcome.
async fn answer(
    op: Operation,
    api: &ApiState,
    req: Request,
    started: Instant,
    correlation: &mut Option<String>,
) -> Result<(Value, String), ApiError> {
    let state = &*api.app;
    let at = state.clock.now_ms();
    let handled = handle(op, api, req, started, at, correlation).await;
    // Without a correlation id (bad headers) there is no enrolment to record the call with.
    let Some(cid) = correlation.as_deref() else {
        return handled.and_then(|h| h.answer.map(|body| (body, h.audit.log)));
    };
    let Handled {
        answer,
        audit,
        write,
    } = match handled {
        Ok(h) => h,
        Err(e) => Handled::refused(e, Audit::default()),
    };
    let answer = match answer {
        Err(e) if e.reason == Reason::Internal => return Err(e),
        other => other,
    };
    // A refusal that belongs to no enrolment on file and names no card of ours, or one beyond
    // the cap of an enrolment, is counted, not stored: refusals cost a caller nothing.
    if answer.is_err() && matches!(write, Write::Nothing) {
        let recordable = state
            .store
            .may_record_refusal(cid, audit.card_ref.as_deref(), MAX_REFUSALS_RECORDED)
            .await
            .unwrap_or(false);
        if !recordable {
            crate::metrics::record_unrecorded_refusal(op.name());
            return answer.map(|body| (body, String::new()));
        }
    }
    let refusal = answer.as_ref().err();
    let card_ref = match refusal {
        // The reference a refused call named is caller input: stored in safe form.
        Some(_) => audit
            .card_ref
            .as_deref()
            .map(|r| state.data_keys.safe_identifier(r)),
        None => audit.card_ref.clone(),
    };
    // The wallet id is caller input too (a free string of up to 128 characters).
    let wallet = audit
        .wallet
        .as_deref()
        .map(|w| state.data_keys.safe_identifier(w));
    let outcome = if audit.outcome.is_empty() {
        "refused"
    } else {
        audit.outcome.as_str()
    };
    let rec = CallRecord {
        correlation_id: cid,
        operation: op.name(),
        card_ref: card_ref.as_deref(),
        wallet: wallet.as_deref(),
        state: audit.state,
        response_code: i64::from(
            refusal.map_or(200, |e| state.config.response_codes.number(e.reason)),
        ),
        outcome,
        detail: audit
            .detail
            .as_deref()
            .or(refusal.map(|e| e.message.as_str())),
        duration_ms: Millis::of(started.elapsed()),
        at,
    };
    let written = match state.store.record(&rec, &write).await {
        Ok(w) => Some(w),
        Err(db) if refusal.is_some() && matches!(write, Write::Nothing) => {
            tracing::warn!(operation = op.name(), error = %db, "could not record a refused call");
            None
        }
        Err(db) => return Err(ApiError::internal(db)),
    };
    let log = match (&write, &written) {
        (Write::Notice(n), Some(Written::Notice(o))) => notify::describe(n, o),
        _ if audit.log.is_empty() => outcome.to_owned(),
        _ => audit.log,
    };
    answer.map(|body| (body, log))
}

async fn handle(
    op: Operation,
    api: &ApiState,
    req: Request,
    started: Instant,
    at: Millis,
    correlation: &mut Option<String>,
) -> Result<Handled, ApiError> {
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
            Reason::BadBody,
            "content type must be application/json",
        ));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::new(Reason::BadBody, "body is larger than 64 KiB"));
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                Reason::BadBody,
                "body is larger than 64 KiB or could not be read",
            )
        })?;
    // The body may hold an OTP: its bytes and its parsed strings are wiped once the call is
    // done (hyper's own read buffer is beyond reach; see docs/security.md).
    let bytes = zeroize::Zeroizing::new(Vec::from(bytes));
    let value = crate::domain::wipe::WipedJson(
        serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::new(Reason::BadBody, "body is not valid JSON"))?,
    );
    let Some(map) = value.0.as_object() else {
        return Err(ApiError::new(Reason::BadBody, "body must be a JSON object"));
    };
    let call = Call {
        state,
        opened_cards: &api.opened_cards,
        correlation_id: &h.correlation_id,
        started,
        at,
    };
    let body = Fields(map);
    match op {
        Operation::CheckCardEligibility => eligibility::handle(&call, &body).await,
        Operation::RequestCardDigitization => digitization::handle(&call, &body).await,
        Operation::SendOtp => send_otp::handle(&call, &body).await,
        Operation::NotifyVirtualCardChange => notify::handle(&call, &body).await,
    }
}
