//! Console sessions: the cookie, the idle and absolute timeouts, the CSRF check of each form, and
//! the role an action needs.

use super::Shared;
use super::auth::{self, Role};
use crate::store::AuditEntry;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use zeroize::Zeroizing;

pub const COOKIE: &str = "ig_console";
/// The login form's own CSRF cookie (double submit: before a session exists).
pub const LOGIN_COOKIE: &str = "ig_console_login";

/// The operator of a live session.
pub struct Who {
    pub name: String,
    pub role: Role,
    /// The session token as the browser sent it (for the CSRF token and the logout).
    token: Zeroizing<String>,
    pub must_change: bool,
}

impl Who {
    pub fn csrf(&self) -> String {
        auth::csrf_token(&self.token)
    }
    pub fn token_digest(&self) -> String {
        auth::token_digest(&self.token)
    }
    /// Whether a form's token is this session's.
    pub fn csrf_ok(&self, given: Option<&String>) -> bool {
        given.is_some_and(|g| auth::csrf_matches(&self.token, g))
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| (1..=256).contains(&v.len()))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path /console, Secure under TLS.
pub fn set_cookie(c: &Shared, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if c.secure_cookie { "; Secure" } else { "" };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The source address of the request (the TCP peer).
pub fn source(peer: Option<SocketAddr>) -> IpAddr {
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip())
}

/// Why there is no session: the answer is the login page.
pub fn to_login(expired: bool) -> Response {
    Redirect::to(if expired {
        "/console/login?expired=1"
    } else {
        "/console/login"
    })
    .into_response()
}

/// The live session of the request, its last use moved to now; otherwise the redirect to the
/// login page (ending a session past its timeouts, or one whose operator is disabled).
pub async fn require(c: &Shared, headers: &HeaderMap) -> Result<Who, Response> {
    let Some(token) = cookie(headers, COOKIE).map(Zeroizing::new) else {
        return Err(to_login(false));
    };
    let digest = auth::token_digest(&token);
    let store = &c.app.store;
    let now = c.app.clock.now_ms();
    let cfg = &c.app.config.console;
    let Some(s) = store.session(&digest).await.map_err(internal)? else {
        return Err(to_login(true));
    };
    let idle = i64::from(cfg.idle_timeout_minutes) * 60_000;
    let absolute = i64::from(cfg.absolute_timeout_hours) * 3_600_000;
    let operator = store.operator(&s.operator).await.map_err(internal)?;
    let role = operator.as_ref().and_then(|o| Role::parse(&o.role));
    let usable = operator.as_ref().is_some_and(|o| !o.disabled);
    let (Some(op), Some(role), true) = (operator, role, usable) else {
        store.end_session(&digest).await.map_err(internal)?;
        return Err(to_login(true));
    };
    if now.0 - s.last_seen_at.0 > idle || now.0 - s.created_at.0 > absolute {
        store.end_session(&digest).await.map_err(internal)?;
        let entry = AuditEntry {
            actor: &op.name,
            channel: "console",
            action: "session timeout",
            outcome: "ended",
            source: Some(&s.source),
            ..AuditEntry::default()
        };
        store
            .append_audit(&c.app.data_keys, &entry, now)
            .await
            .map_err(internal)?;
        return Err(to_login(true));
    }
    store.touch_session(&digest, now).await.map_err(internal)?;
    Ok(Who {
        name: op.name,
        role,
        token,
        must_change: op.must_change,
    })
}

/// A database failure, as the console shows it (the cause goes to the log only).
pub fn internal(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "console: database error");
    let page = super::pages::message_page(
        None,
        "Something went wrong",
        "The database could not be read; see the gateway's log.",
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}
