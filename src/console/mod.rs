//! The operator console: the gateway's own web pages for the people who run the wallet
//! programme (console.md), on the admin listener under `/console/`.
//!
//! - Server-rendered HTML (maud: templates checked at compile time), no script, every asset in
//!   the binary; charts are SVG drawn by the server.
//! - People log in as themselves (`operators add`): password (Argon2id) and a TOTP code; the
//!   admin API's bearer token does not open it. Sessions are a random token in an HttpOnly,
//!   SameSite=Strict cookie (`Secure` when the admin listener speaks TLS), stored as its digest,
//!   ended after `console.idle_timeout_minutes` unused or `console.absolute_timeout_hours`.
//!   Every form carries the session's CSRF token. Failed logins lock an account
//!   (`console.max_failed_logins`, `console.lockout_minutes`) and are throttled per source
//!   address before any password is hashed.
//! - It reads through the admin API's store functions and acts through the same life-cycle
//!   operation log; every login and action goes to the audit log.
//! - The pages receive view types (`views.rs`) that hold only masked values.
//!
//! | route | page |
//! |---|---|
//! | `GET/POST /console/login`, `POST /console/logout`, `GET/POST /console/password` | sessions |
//! | `GET /console/overview` | the last 24 hours, as charts and numbers linking to their lists |
//! | `GET /console/search?q=` | by issuerCardRefId, correlation id, virtualCardId, or BIN + last 4 |
//! | `GET /console/cards/{ref}`, `POST .../actions`, `POST .../block` | a card, its tokens and enrolments; token actions |
//! | `POST /console/cards/{ref}/approvals/{id}` | a second supervisor approves deleting every token of the card |
//! | `POST /console/devices/actions` | every token on one device |
//! | `GET /console/enrolments/{id}`, `GET /console/enrolments?...` | an enrolment's timeline; lists |
//! | `GET /console/operations?state=`, `POST /console/operations/{id}/retry\|cancel` | the operation log |
//! | `GET /console/audit` | the audit log (supervisor) |

pub mod auth;
mod handlers;
mod pages;
mod session;
mod views;

use crate::state::SharedState;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What the console's handlers share.
pub struct Console {
    pub app: SharedState,
    /// The cookie is `Secure`: the admin listener speaks TLS.
    pub secure_cookie: bool,
    /// Failed logins per source address (times, ms), for the throttle. Per instance: a cache
    /// that is safe to lose (the account lockout itself is in the database).
    failures: Mutex<HashMap<IpAddr, VecDeque<i64>>>,
}

pub type Shared = Arc<Console>;

impl Console {
    /// Whether `source` has failed too often lately (checked before any password is hashed).
    fn throttled(&self, source: IpAddr, now: i64) -> bool {
        let cfg = &self.app.config.console;
        let window = i64::from(cfg.source_window_minutes) * 60_000;
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        let Some(list) = map.get_mut(&source) else {
            return false;
        };
        while list.front().is_some_and(|t| *t < now - window) {
            list.pop_front();
        }
        list.len() >= cfg.source_max_failures as usize
    }

    fn count_failure(&self, source: IpAddr, now: i64) {
        if let Ok(mut map) = self.failures.lock() {
            // Bounded: past 10 000 sources, the oldest knowledge is dropped.
            if map.len() > 10_000 {
                map.clear();
            }
            let list = map.entry(source).or_default();
            list.push_back(now);
            while list.len() > 1000 {
                list.pop_front();
            }
        }
    }
}

/// The console's routes, to be nested under `/console`.
pub fn router(state: SharedState) -> Router {
    let console = Arc::new(Console {
        secure_cookie: state.config.admin.tls.is_some(),
        app: state,
        failures: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(handlers::home))
        .route("/login", get(handlers::login_page).post(handlers::login))
        .route("/logout", post(handlers::logout))
        .route(
            "/password",
            get(handlers::password_page).post(handlers::change_password),
        )
        .route("/overview", get(handlers::overview))
        .route("/search", get(handlers::search))
        .route("/cards/{card_ref}", get(handlers::card))
        .route("/cards/{card_ref}/actions", post(handlers::card_action))
        .route("/cards/{card_ref}/block", post(handlers::block_card))
        .route("/cards/{card_ref}/approvals/{id}", post(handlers::approve))
        .route("/devices/actions", post(handlers::device_action))
        .route("/enrolments", get(handlers::enrolments))
        .route("/enrolments/{correlation_id}", get(handlers::enrolment))
        .route("/operations", get(handlers::operations))
        .route("/operations/{id}/{verb}", post(handlers::operation_verb))
        .route("/audit", get(handlers::audit_log))
        .route("/assets/console.css", get(handlers::stylesheet))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// The headers of every console answer: a CSP with no script at all, no framing, no caching
/// (pages show card data), no MIME sniffing, no referrer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    resp
}
