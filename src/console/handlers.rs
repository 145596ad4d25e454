//! The console's handlers: each reads through the store functions the admin API uses, acts
//! through the life-cycle operation log, and writes its audit entry.

use super::Shared;
use super::auth::{self, Role};
use super::pages::{self, CardPage, Chrome, EnrolmentPage, OverviewView};
use super::session::{self, COOKIE, LOGIN_COOKIE, Who, internal};
use super::views::{
    AuditLine, Bar, CardView, EnrolmentLine, Masked, OperationView, Safe, TimelineLine, TokenView,
};
use crate::domain::lifecycle::{OpKind, TokenAction, valid_reason};
use crate::domain::{CardStatus, Millis};
use crate::store::{AuditEntry, CardUpdate, EnrolmentFilter, NewOperation};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, body::Body};
use maud::Markup;
use std::collections::HashMap;
use std::net::SocketAddr;

type Fields = Result<Form<HashMap<String, String>>, FormRejection>;
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;
type Params = Query<HashMap<String, String>>;

const LIST_LIMIT: i64 = 200;
const DAY_MS: i64 = 86_400_000;

fn html(status: StatusCode, page: Markup) -> Response {
    let mut resp = Response::new(Body::from(page.into_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn ok(page: Markup) -> Response {
    html(StatusCode::OK, page)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn source_of(peer: &Peer) -> String {
    session::source(peer.as_ref().map(|Extension(ConnectInfo(a))| *a)).to_string()
}

/// A refusal page (403 for a role or CSRF refusal, 400 for bad input, 404 for nothing found).
fn refuse(who: Option<&Who>, status: StatusCode, title: &str, text: &str) -> Response {
    let chrome = who.map(Chrome::of);
    html(status, pages::message_page(chrome.as_ref(), title, text))
}

/// The session of a page: a must-change password sends to the password page first.
async fn page_session(c: &Shared, headers: &HeaderMap) -> Result<Who, Response> {
    let who = session::require(c, headers).await?;
    if who.must_change {
        return Err(see_other("/console/password"));
    }
    Ok(who)
}

/// The session of a form: its CSRF token checked (refused with 403 otherwise).
async fn form_session(
    c: &Shared,
    headers: &HeaderMap,
    form: &Fields,
) -> Result<(Who, HashMap<String, String>), Response> {
    let who = page_session(c, headers).await?;
    let fields = match form {
        Ok(Form(f)) => f.clone(),
        Err(_) => {
            return Err(refuse(
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Form not understood",
                "The form could not be read; reload the page and try again.",
            ));
        }
    };
    if !who.csrf_ok(fields.get("csrf")) {
        audit(
            c,
            AuditEntry {
                actor: &who.name,
                channel: "console",
                action: "form",
                outcome: "refused: no valid CSRF token",
                ..AuditEntry::default()
            },
        )
        .await?;
        return Err(refuse(
            Some(&who),
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form has no valid CSRF token: reload the page and submit it again from the console.",
        ));
    }
    Ok((who, fields))
}

async fn audit(c: &Shared, entry: AuditEntry<'_>) -> Result<(), Response> {
    c.app
        .store
        .append_audit(&c.app.data_keys, &entry, c.app.clock.now_ms())
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Refuses an action the operator's role lacks (and writes the refusal to the audit log).
async fn need_role(
    c: &Shared,
    who: &Who,
    need: Role,
    what: &str,
    card_ref: Option<&str>,
) -> Result<(), Response> {
    if who.role >= need {
        return Ok(());
    }
    audit(
        c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: what,
            outcome: "refused: role",
            card_ref,
            ..AuditEntry::default()
        },
    )
    .await?;
    Err(refuse(
        Some(who),
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!(
            "Your role ({}) cannot {what}: it needs the {} role.",
            who.role,
            need.as_str()
        ),
    ))
}

fn unconfirmed_before(c: &Shared) -> Millis {
    let now = c.app.clock.now_ms();
    Millis(now.0 - i64::from(c.app.config.tsh.confirm_within_minutes) * 60_000)
}

pub async fn home(State(c): State<Shared>, headers: HeaderMap) -> Response {
    match page_session(&c, &headers).await {
        Ok(_) => see_other("/console/overview"),
        Err(r) => r,
    }
}

pub async fn not_found(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let who = session::require(&c, &headers).await.ok();
    refuse(
        who.as_ref(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the console.",
    )
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

// ---- login, logout, password ----

pub async fn login_page(State(c): State<Shared>, Query(q): Params) -> Response {
    let notice = q
        .contains_key("expired")
        .then_some("Your session ended: log in again.");
    login_form(&c, StatusCode::OK, notice)
}

fn login_form(c: &Shared, status: StatusCode, notice: Option<&str>) -> Response {
    let token = auth::new_session_token();
    let mut resp = html(
        status,
        pages::login_page(notice, &token, c.app.config.console.require_totp),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(c, LOGIN_COOKIE, &token, Some(3600)),
    );
    resp
}

pub async fn login(
    State(c): State<Shared>,
    peer: Peer,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let source_ip = session::source(peer.as_ref().map(|Extension(ConnectInfo(a))| *a));
    let source = source_ip.to_string();
    let Ok(Form(f)) = form else {
        return login_form(
            &c,
            StatusCode::BAD_REQUEST,
            Some("The form could not be read."),
        );
    };
    let login_csrf = session::cookie(&headers, LOGIN_COOKIE);
    let csrf_ok = match (login_csrf, f.get("csrf")) {
        (Some(a), Some(b)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
        }
        _ => false,
    };
    if !csrf_ok {
        return login_form(
            &c,
            StatusCode::FORBIDDEN,
            Some("The login form expired: try again."),
        );
    }
    let now = c.app.clock.now_ms();
    let cfg = &c.app.config.console;
    // Throttled before any hash is computed.
    if c.throttled(source_ip, now.0) {
        let _ = audit(
            &c,
            AuditEntry {
                actor: "-",
                channel: "console",
                action: "login",
                outcome: "refused: throttled",
                source: Some(&source),
                ..AuditEntry::default()
            },
        )
        .await;
        return login_form(
            &c,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins from this address: wait a few minutes."),
        );
    }
    let name = f.get("name").map(|n| n.trim()).unwrap_or("");
    let password = zeroize::Zeroizing::new(f.get("password").cloned().unwrap_or_default());
    let code = f.get("code").map(|n| n.trim()).unwrap_or("");
    let actor = if auth::valid_name(name) {
        name
    } else {
        "(invalid name)"
    };
    let store = &c.app.store;
    let operator = if auth::valid_name(name) {
        match store.operator(name).await {
            Ok(o) => o,
            Err(e) => return internal(e),
        }
    } else {
        None
    };
    let refused = |why: &'static str| AuditEntry {
        actor,
        channel: "console",
        action: "login",
        outcome: why,
        source: Some(&source),
        ..AuditEntry::default()
    };
    const GENERIC: &str = "Wrong name, password or code.";
    let Some(op) = operator else {
        // As long as a wrong password: the name's existence does not show in the time taken.
        let _ = auth::verify_password(&password, &auth::DUMMY_HASH).await;
        c.count_failure(source_ip, now.0);
        let _ = audit(&c, refused("refused: unknown operator")).await;
        return login_form(&c, StatusCode::UNAUTHORIZED, Some(GENERIC));
    };
    if op.locked_until.is_some_and(|t| t.0 > now.0) {
        c.count_failure(source_ip, now.0);
        let _ = audit(&c, refused("refused: locked")).await;
        return login_form(
            &c,
            StatusCode::UNAUTHORIZED,
            Some(
                "This account is locked after too many failed logins: try again later, or ask for a password reset.",
            ),
        );
    }
    let password_ok = auth::verify_password(&password, &op.password_hash).await;
    let step = if cfg.require_totp {
        op.totp_sealed
            .as_deref()
            .and_then(|s| {
                c.app
                    .data_keys
                    .unseal_for_card("operator-totp", &op.name, s)
                    .ok()
            })
            .and_then(|secret| auth::unbase32(&secret))
            .and_then(|key| auth::totp_check(&key, code, now.0))
    } else {
        None
    };
    let factor_ok = !cfg.require_totp || step.is_some();
    if op.disabled || !password_ok || !factor_ok {
        c.count_failure(source_ip, now.0);
        let lock_until = Millis(now.0 + i64::from(cfg.lockout_minutes) * 60_000);
        let locked = match store
            .record_login_failure(&op.name, i64::from(cfg.max_failed_logins), lock_until, now)
            .await
        {
            Ok(l) => l,
            Err(e) => return internal(e),
        };
        let why = if op.disabled {
            "refused: disabled"
        } else if !password_ok {
            "refused: wrong password"
        } else {
            "refused: wrong code"
        };
        let _ = audit(&c, refused(why)).await;
        if locked {
            let _ = audit(&c, refused("account locked")).await;
        }
        return login_form(&c, StatusCode::UNAUTHORIZED, Some(GENERIC));
    }
    match store.record_login_success(&op.name, step, now).await {
        Ok(true) => {}
        Ok(false) => {
            c.count_failure(source_ip, now.0);
            let _ = audit(&c, refused("refused: code already used")).await;
            return login_form(
                &c,
                StatusCode::UNAUTHORIZED,
                Some("That code was already used: wait for the next one."),
            );
        }
        Err(e) => return internal(e),
    }
    // Sessions past their absolute timeout are removed as new ones are made.
    let stale = Millis(now.0 - i64::from(cfg.absolute_timeout_hours) * 3_600_000);
    if let Err(e) = store.end_sessions_before(stale).await {
        return internal(e);
    }
    let token = auth::new_session_token();
    if let Err(e) = store
        .create_session(&auth::token_digest(&token), &op.name, &source, now)
        .await
    {
        return internal(e);
    }
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &op.name,
            channel: "console",
            action: "login",
            outcome: "ok",
            source: Some(&source),
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    let mut resp = see_other(if op.must_change {
        "/console/password"
    } else {
        "/console/overview"
    });
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(&c, COOKIE, &token, None),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(&c, LOGIN_COOKIE, "", Some(0)),
    );
    resp
}

pub async fn logout(
    State(c): State<Shared>,
    peer: Peer,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let who = match session::require(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Ok(Form(f)) = &form else {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Form not understood",
            "Reload the page.",
        );
    };
    if !who.csrf_ok(f.get("csrf")) {
        return refuse(
            Some(&who),
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form has no valid CSRF token: reload the page and submit it again from the console.",
        );
    }
    if let Err(e) = c.app.store.end_session(&who.token_digest()).await {
        return internal(e);
    }
    let source = source_of(&peer);
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: "logout",
            outcome: "ok",
            source: Some(&source),
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    let mut resp = see_other("/console/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(&c, COOKIE, "", Some(0)),
    );
    resp
}

pub async fn password_page(State(c): State<Shared>, headers: HeaderMap) -> Response {
    match session::require(&c, &headers).await {
        Ok(who) => ok(pages::password_page(
            &Chrome::of(&who),
            None,
            who.must_change,
        )),
        Err(r) => r,
    }
}

pub async fn change_password(
    State(c): State<Shared>,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let who = match session::require(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Ok(Form(f)) = &form else {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Form not understood",
            "Reload the page.",
        );
    };
    if !who.csrf_ok(f.get("csrf")) {
        return refuse(
            Some(&who),
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form has no valid CSRF token: reload the page and submit it again from the console.",
        );
    }
    let chrome = Chrome::of(&who);
    let again = |text: &str| {
        html(
            StatusCode::BAD_REQUEST,
            pages::password_page(&chrome, Some(text), who.must_change),
        )
    };
    let get = |k: &str| zeroize::Zeroizing::new(f.get(k).cloned().unwrap_or_default());
    let (current, new, repeat) = (get("current"), get("new"), get("again"));
    let op = match c.app.store.operator(&who.name).await {
        Ok(Some(o)) => o,
        Ok(None) => return session::to_login(true),
        Err(e) => return internal(e),
    };
    if !auth::verify_password(&current, &op.password_hash).await {
        return again("The current password is wrong.");
    }
    if *new != *repeat {
        return again("The two new passwords differ.");
    }
    if *new == *current {
        return again("The new password must differ from the current one.");
    }
    if let Some(problem) = auth::password_problem(&who.name, &new) {
        return again(problem);
    }
    let hash = match auth::hash_password(&new).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "console: cannot hash a password");
            return again("The password could not be stored; try again.");
        }
    };
    let now = c.app.clock.now_ms();
    if let Err(e) = c
        .app
        .store
        .set_operator_password(&who.name, &hash, false, false, now)
        .await
    {
        return internal(e);
    }
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: "password change",
            outcome: "ok",
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    see_other("/console/overview")
}

// ---- pages ----

fn tone(label: &str) -> &'static str {
    match label {
        "green" | "accepted" => "green",
        "yellow" | "pending" => "yellow",
        "red" | "refused" | "timeout" => "red",
        _ => "grey",
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn overview(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let store = &c.app.store;
    let now = c.app.clock.now_ms();
    let since = Millis(now.0 - DAY_MS);
    let stuck_cutoff = now.minus(Millis(
        i64::from(c.app.config.admin.stuck_after_minutes) * 60_000,
    ));
    let (o, stats, stuck) = match tokio::try_join!(
        store.console_overview(since),
        store.operation_stats(now, unconfirmed_before(&c)),
        store.admin_stuck_enrolments(stuck_cutoff, 1000),
    ) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let enrolments = o
        .enrolments
        .iter()
        .map(|g| Bar {
            label: Safe::new(&g.key),
            count: g.count,
            href: format!("/console/enrolments?outcome={}", enc(&g.key)),
            tone: tone(&g.key),
        })
        .collect();
    let rules = o
        .rules
        .iter()
        .map(|g| Bar {
            label: Safe::new(&format!("{} ({})", g.key, g.sub)),
            count: g.count,
            href: format!("/console/enrolments?rule={}", enc(&g.key)),
            tone: tone(&g.sub),
        })
        .collect();
    let sends = o
        .sends
        .iter()
        .map(|g| Bar {
            label: Safe::new(&format!("{} {}", g.key, g.sub)),
            count: g.count,
            href: format!(
                "/console/enrolments?channel={}&send_outcome={}",
                enc(&g.key),
                enc(&g.sub)
            ),
            tone: tone(&g.sub),
        })
        .collect();
    let refusals = o
        .refusals
        .iter()
        .map(|g| Bar {
            label: Safe::new(&format!("sendOTP refused, code {}", g.key)),
            count: g.count,
            href: format!("/console/enrolments?refused_code={}", enc(&g.key)),
            tone: "red",
        })
        .collect();
    let view = OverviewView {
        charts: vec![
            ("Enrolments by outcome", enrolments),
            ("Decisions by rule", rules),
            ("OTP sends by channel and outcome", sends),
            ("Limit and fraud refusals", refusals),
        ],
        waiting: stats.waiting,
        failed: stats.failed,
        unconfirmed: stats.unconfirmed,
        stuck: i64::try_from(stuck.len()).unwrap_or(i64::MAX),
    };
    ok(pages::overview_page(&Chrome::of(&who), &view))
}

/// BIN (6 to 8 digits) and last 4, written with a space, `+` or `*` between them.
fn bin_last4(q: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = q
        .split([' ', '+', '*', '•'])
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [bin, last4]
            if (6..=8).contains(&bin.len())
                && last4.len() == 4
                && bin.bytes().chain(last4.bytes()).all(|b| b.is_ascii_digit()) =>
        {
            Some(((*bin).to_owned(), (*last4).to_owned()))
        }
        _ => None,
    }
}

pub async fn search(State(c): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let chrome = Chrome::of(&who);
    let query = q.get("q").map(|s| s.trim()).unwrap_or("");
    if query.is_empty() {
        return ok(pages::search_page(&chrome, "", None, &[]));
    }
    let digits = query.chars().filter(char::is_ascii_digit).count();
    if query.len() > 128 || (digits >= 12 && bin_last4(query).is_none()) {
        // Never echoed: it may be a card number.
        return html(
            StatusCode::BAD_REQUEST,
            pages::search_page(
                &chrome,
                "",
                Some("Search by BIN and last 4 (e.g. 411111 1111), never by the full card number."),
                &[],
            ),
        );
    }
    let store = &c.app.store;
    let keys = &c.app.data_keys;
    if let Some((bin, last4)) = bin_last4(query) {
        let cards = match store.cards_by_bin_last4(&bin, &last4, 50).await {
            Ok(c) => c,
            Err(e) => return internal(e),
        };
        let views: Vec<CardView> = cards.iter().map(CardView::of).collect();
        let notice = format!("{} card(s) with BIN {bin} and last 4 {last4}.", views.len());
        return ok(pages::search_page(&chrome, query, Some(&notice), &views));
    }
    match store.card_by_ref(query).await {
        Ok(Some(card)) => return see_other(&format!("/console/cards/{}", enc(&card.card_ref))),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let id = keys.safe_identifier(query);
    match store.enrolment(&id).await {
        Ok(Some(e)) => {
            return see_other(&format!("/console/enrolments/{}", enc(&e.correlation_id)));
        }
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    match store.token(&id).await {
        Ok(Some(t)) => return see_other(&format!("/console/cards/{}", enc(&t.card_ref))),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    ok(pages::search_page(
        &chrome,
        Safe::new(query).as_str(),
        Some("Nothing found: no card, enrolment or token with this reference."),
        &[],
    ))
}

pub async fn card(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(card_ref): Path<String>,
    Query(q): Params,
) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let store = &c.app.store;
    let card = match store.card_by_ref(&card_ref).await {
        Ok(Some(card)) => card,
        Ok(None) => {
            return refuse(
                Some(&who),
                StatusCode::NOT_FOUND,
                "Not found",
                "No card with this issuerCardRefId.",
            );
        }
        Err(e) => return internal(e),
    };
    let since = Millis(c.app.clock.now_ms().0 - APPROVAL_MS);
    let loaded = tokio::try_join!(
        store.tokens_of_card(&card_ref),
        store.operations_of_card(&card_ref),
        store.admin_enrolments_of_card(&card_ref, 20),
        store.pending_approvals(&card_ref, since),
    );
    let (tokens, ops, enrolments, approvals) = match loaded {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    // Thales's own states, when asked (`?refresh=1`): the INACTIVE tokens Option D activates.
    let (thales, thales_problem) = if q.get("refresh").is_some_and(|r| r == "1") {
        match thales_states(&c, &card_ref).await {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let mut token_views = Vec::with_capacity(tokens.len());
    for t in &tokens {
        match store.token_events(&t.virtual_card_id).await {
            Ok(ev) => {
                let mut view = TokenView::of(t, &ev);
                view.thales = thales.as_ref().map(|m| {
                    Safe::new(
                        m.get(&t.virtual_card_id)
                            .map_or("not known to TSH", String::as_str),
                    )
                });
                token_views.push(view);
            }
            Err(e) => return internal(e),
        }
    }
    let before = unconfirmed_before(&c);
    let pending: Vec<OperationView> = ops
        .iter()
        .filter(|o| o.state == "waiting" || o.state == "sent")
        .map(|o| OperationView::of(o, before))
        .collect();
    let enrolment_lines: Vec<EnrolmentLine> = enrolments
        .iter()
        .map(|e| EnrolmentLine::of_summary(e, &card_ref))
        .collect();
    let notice = thales_problem.map(|p| format!("TSH could not be asked: {p}.")).or_else(|| q.get("done").map(|d| {
        format!(
            "Done: {} (operation{} sent to TSH by the life-cycle sender, shown below until confirmed).",
            Safe::new(d.chars().take(80).collect::<String>().as_str()).as_str(),
            if d.contains(',') { "s" } else { "" }
        )
    }));
    let view = CardView::of(&card);
    ok(pages::card_page(
        &Chrome::of(&who),
        &CardPage {
            card: &view,
            tokens: &token_views,
            pending: &pending,
            enrolments: &enrolment_lines,
            approvals: &approvals
                .iter()
                .map(|a| super::views::ApprovalView {
                    id: a.id,
                    action: Safe::new(&a.action),
                    reason: Safe::new(&a.reason),
                    requested_by: Safe::new(&a.requested_by),
                    at: super::views::At(a.requested_at),
                })
                .collect::<Vec<_>>(),
            notice: notice.as_deref(),
        },
    ))
}

/// Thales's own state of each token of the card, asked now (`getCardInfo`), by stored token id.
async fn thales_states(
    c: &Shared,
    card_ref: &str,
) -> Result<std::collections::BTreeMap<String, String>, &'static str> {
    let config = &c.app.config;
    let tokens = crate::tsh::card_tokens(&config.tsh, &config.issuer.id, card_ref)
        .await
        .map_err(|e| match e {
            crate::tsh::CardInfoError::NotConfigured => "tsh.base_url is not set",
            crate::tsh::CardInfoError::Client(_) => {
                "the TSH client cannot be made (see the gateway's log)"
            }
            crate::tsh::CardInfoError::Refused { .. } => "getCardInfo was refused by TSH",
            crate::tsh::CardInfoError::TimedOut => "getCardInfo: no answer within tsh.timeout_ms",
            crate::tsh::CardInfoError::NoConnection => "getCardInfo: TSH cannot be reached",
        })?;
    Ok(tokens
        .into_iter()
        .map(|t| {
            (
                c.app.data_keys.safe_identifier(&t.virtual_card_id),
                t.status,
            )
        })
        .collect())
}

fn operator_op(
    card_ref: &str,
    vcid: Option<String>,
    action: TokenAction,
    reason: &str,
    who: &Who,
    verification: Option<&str>,
) -> NewOperation {
    NewOperation {
        card_ref: card_ref.to_owned(),
        kind: OpKind::UpdateCardState,
        action: Some(action),
        virtual_card_id: vcid,
        reason: Some(reason.to_owned()),
        operator: Some(who.name.clone()),
        verification: verification.map(str::to_owned),
        cause: "operator",
        fpan_details: None,
        new_product_id: None,
    }
}

fn reason_of(f: &HashMap<String, String>) -> Option<String> {
    f.get("reason")
        .map(|r| r.trim().to_owned())
        .filter(|r| valid_reason(r))
}

pub async fn card_action(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(card_ref): Path<String>,
    form: Fields,
) -> Response {
    let (who, f) = match form_session(&c, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let store = &c.app.store;
    match store.card_by_ref(&card_ref).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refuse(
                Some(&who),
                StatusCode::NOT_FOUND,
                "Not found",
                "No card with this issuerCardRefId.",
            );
        }
        Err(e) => return internal(e),
    }
    let verb = f
        .get("action")
        .map(|a| a.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let (action, need, what) = match verb.as_str() {
        "SUSPEND" => (TokenAction::Suspend, Role::Agent, "suspend tokens"),
        "RESUME" => (TokenAction::Resume, Role::Agent, "resume tokens"),
        "ACTIVATE" => (TokenAction::Resume, Role::Agent, "activate tokens"),
        "DELETE" => (TokenAction::Delete, Role::Supervisor, "delete tokens"),
        _ => {
            return refuse(
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The action must be SUSPEND, RESUME, ACTIVATE or DELETE.",
            );
        }
    };
    if let Err(r) = need_role(&c, &who, need, what, Some(&card_ref)).await {
        return r;
    }
    let token = f.get("token").map(|t| t.trim()).filter(|t| !t.is_empty());
    let activate = verb == "ACTIVATE";
    let reason = if activate {
        Some("CARDHOLDER_VERIFIED".to_owned())
    } else {
        reason_of(&f)
    };
    let Some(reason) = reason else {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Reason needed",
            "Give a reason: 1 to 64 characters, no card number.",
        );
    };
    let verification = f
        .get("verification")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    if activate && !verification.is_some_and(valid_reason) {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Verification needed",
            "Say how the caller was verified: 1 to 64 characters, no card number.",
        );
    }
    let vcid = match token {
        Some(t) => {
            let t = c.app.data_keys.safe_identifier(t);
            match store.token(&t).await {
                Ok(Some(row)) if row.card_ref == card_ref => Some(t),
                Ok(_) => {
                    return refuse(
                        Some(&who),
                        StatusCode::NOT_FOUND,
                        "Not found",
                        "No token with this virtualCardId on this card.",
                    );
                }
                Err(e) => return internal(e),
            }
        }
        None if action == TokenAction::Resume => {
            return refuse(
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Token needed",
                "A resume names its token.",
            );
        }
        None if action == TokenAction::Delete => {
            // Every token of the card: a second supervisor approves it first.
            let now = c.app.clock.now_ms();
            let id = match store
                .request_approval(&card_ref, "DELETE", &reason, &who.name, now)
                .await
            {
                Ok(id) => id,
                Err(e) => return internal(e),
            };
            let detail = format!("approval request {id}");
            if let Err(r) = audit(
                &c,
                AuditEntry {
                    actor: &who.name,
                    channel: "console",
                    action: "token DELETE (every token) requested",
                    outcome: "waiting for a second supervisor",
                    card_ref: Some(&card_ref),
                    reason: Some(&reason),
                    detail: Some(&detail),
                    ..AuditEntry::default()
                },
            )
            .await
            {
                return r;
            }
            return see_other(&format!(
                "/console/cards/{}?done={}",
                enc(&card_ref),
                enc(
                    "deletion of every token requested: another supervisor must approve it within the hour"
                )
            ));
        }
        None => None,
    };
    let op = operator_op(&card_ref, vcid.clone(), action, &reason, &who, verification);
    let now = c.app.clock.now_ms();
    let ids = match store
        .create_operations(std::slice::from_ref(&op), now)
        .await
    {
        Ok(ids) => ids,
        Err(e) => return internal(e),
    };
    let id = ids.first().copied();
    let label = format!(
        "token {}",
        if activate {
            "ACTIVATE (RESUME)"
        } else {
            action.as_str()
        }
    );
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: &label,
            outcome: "ok",
            card_ref: Some(&card_ref),
            virtual_card_id: vcid.as_deref(),
            operation_id: id,
            reason: Some(&reason),
            detail: verification,
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    tracing::info!(operation_id = ?id, card_ref = %card_ref, action = %action, operator = %who.name, "console: token action");
    see_other(&format!(
        "/console/cards/{}?done={}",
        enc(&card_ref),
        enc(&format!("{label}, operation {}", id.unwrap_or_default()))
    ))
}

/// How long a request for a second supervisor's approval stays open.
const APPROVAL_MS: i64 = 3_600_000;

/// `POST /console/cards/{ref}/approvals/{id}`: a second supervisor approves a request; the
/// operation is made then.
pub async fn approve(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((card_ref, id)): Path<(String, String)>,
    form: Fields,
) -> Response {
    let (who, _) = match form_session(&c, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = need_role(
        &c,
        &who,
        Role::Supervisor,
        "approve deletions",
        Some(&card_ref),
    )
    .await
    {
        return r;
    }
    let Some(id) = id.parse::<i64>().ok().filter(|i| *i > 0) else {
        return refuse(
            Some(&who),
            StatusCode::NOT_FOUND,
            "Not found",
            "No such request.",
        );
    };
    let now = c.app.clock.now_ms();
    let store = &c.app.store;
    let request = match store
        .approve(id, &who.name, Millis(now.0 - APPROVAL_MS), now)
        .await
    {
        Ok(Some(r)) if r.card_ref == card_ref => r,
        Ok(_) => {
            return refuse(
                Some(&who),
                StatusCode::CONFLICT,
                "Not possible",
                "There is no open request with this id on this card that you may approve: a request is approved by another supervisor than the one who made it, within the hour, once.",
            );
        }
        Err(e) => return internal(e),
    };
    let mut op = operator_op(
        &card_ref,
        None,
        TokenAction::Delete,
        &request.reason,
        &who,
        None,
    );
    op.operator = Some(format!(
        "{}, approved by {}",
        request.requested_by, who.name
    ));
    let ids = match store
        .create_operations(std::slice::from_ref(&op), now)
        .await
    {
        Ok(ids) => ids,
        Err(e) => return internal(e),
    };
    let op_id = ids.first().copied();
    if let Some(o) = op_id {
        if let Err(e) = store.set_approval_operation(id, o).await {
            return internal(e);
        }
    }
    let detail = format!(
        "approval request {id}, requested by {}",
        request.requested_by
    );
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: "token DELETE (every token) approved",
            outcome: "ok",
            card_ref: Some(&card_ref),
            operation_id: op_id,
            reason: Some(&request.reason),
            detail: Some(&detail),
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    see_other(&format!(
        "/console/cards/{}?done={}",
        enc(&card_ref),
        enc(&format!(
            "token DELETE of every token, operation {}",
            op_id.unwrap_or_default()
        ))
    ))
}

pub async fn block_card(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(card_ref): Path<String>,
    form: Fields,
) -> Response {
    let (who, f) = match form_session(&c, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = need_role(&c, &who, Role::Agent, "block cards", Some(&card_ref)).await {
        return r;
    }
    let Some(reason) = reason_of(&f) else {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Reason needed",
            "Give a reason: 1 to 64 characters, no card number.",
        );
    };
    let update = CardUpdate {
        status: Some(CardStatus::Blocked),
        ..CardUpdate::default()
    };
    let now = c.app.clock.now_ms();
    let ops = match c.app.store.admin_update_card(&card_ref, &update, now).await {
        Ok(Some((_, _, ops))) => ops,
        Ok(None) => {
            return refuse(
                Some(&who),
                StatusCode::NOT_FOUND,
                "Not found",
                "No card with this issuerCardRefId.",
            );
        }
        Err(e) => return internal(e),
    };
    let detail = ops.join(", ");
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: "card block",
            outcome: "ok",
            card_ref: Some(&card_ref),
            reason: Some(&reason),
            detail: Some(&detail),
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    see_other(&format!(
        "/console/cards/{}?done={}",
        enc(&card_ref),
        enc("card blocked")
    ))
}

pub async fn device_action(State(c): State<Shared>, headers: HeaderMap, form: Fields) -> Response {
    let (who, f) = match form_session(&c, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = f.get("card").cloned().unwrap_or_default();
    let verb = f
        .get("action")
        .map(|a| a.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let action = match verb.as_str() {
        "SUSPEND" => TokenAction::Suspend,
        "RESUME" => TokenAction::Resume,
        _ => {
            return refuse(
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The action must be SUSPEND or RESUME.",
            );
        }
    };
    if let Err(r) = need_role(&c, &who, Role::Agent, "act on a device's tokens", None).await {
        return r;
    }
    let Some(reason) = reason_of(&f) else {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Reason needed",
            "Give a reason: 1 to 64 characters, no card number.",
        );
    };
    let device = c
        .app
        .data_keys
        .safe_identifier(f.get("device").map(|d| d.trim()).unwrap_or(""));
    let tokens = match c.app.store.tokens_on_device(&device).await {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let ops: Vec<NewOperation> = tokens
        .iter()
        .filter(|t| t.state != "deleted")
        .filter(|t| action != TokenAction::Resume || t.state == "suspended")
        .map(|t| {
            operator_op(
                &t.card_ref,
                Some(t.virtual_card_id.clone()),
                action,
                &reason,
                &who,
                None,
            )
        })
        .collect();
    if ops.is_empty() {
        return refuse(
            Some(&who),
            StatusCode::NOT_FOUND,
            "Nothing to do",
            "No token on this device that the action applies to.",
        );
    }
    let ids = match c
        .app
        .store
        .create_operations(&ops, c.app.clock.now_ms())
        .await
    {
        Ok(ids) => ids,
        Err(e) => return internal(e),
    };
    for (op, id) in ops.iter().zip(&ids) {
        if let Err(r) = audit(
            &c,
            AuditEntry {
                actor: &who.name,
                channel: "console",
                action: &format!("device token {}", action.as_str()),
                outcome: "ok",
                card_ref: Some(&op.card_ref),
                virtual_card_id: op.virtual_card_id.as_deref(),
                operation_id: Some(*id),
                reason: Some(&reason),
                ..AuditEntry::default()
            },
        )
        .await
        {
            return r;
        }
    }
    let done = format!(
        "device {}, operations {}",
        action.as_str(),
        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    );
    if back.is_empty() {
        see_other("/console/operations?state=waiting")
    } else {
        see_other(&format!(
            "/console/cards/{}?done={}",
            enc(&back),
            enc(&done)
        ))
    }
}

pub async fn enrolments(State(c): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let store = &c.app.store;
    let now = c.app.clock.now_ms();
    let since = Millis(now.0 - DAY_MS);
    let (title, lines) = if q.contains_key("stuck") {
        let cutoff = now.minus(Millis(
            i64::from(c.app.config.admin.stuck_after_minutes) * 60_000,
        ));
        match store.admin_stuck_enrolments(cutoff, LIST_LIMIT).await {
            Ok(rows) => (
                "Enrolments stuck in yellow".to_owned(),
                rows.iter()
                    .map(|r| EnrolmentLine {
                        correlation_id: Safe::new(&r.correlation_id),
                        card_ref: super::views::CardRef::opt(r.card_ref.as_deref()),
                        wallet: Safe::opt(r.wallet_provider_id.as_deref()),
                        state: Safe::new(&r.state),
                        decision: Some(Safe::new("yellow")),
                        rule: Safe::opt(r.decision_rule.as_deref()),
                        at: super::views::At(r.created_at),
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => return internal(e),
        }
    } else {
        let filter = if let Some(o) = q.get("outcome") {
            EnrolmentFilter::Outcome(o.clone())
        } else if let Some(r) = q.get("rule") {
            EnrolmentFilter::Rule(r.clone())
        } else if let Some(code) = q.get("refused_code").and_then(|c| c.parse::<i64>().ok()) {
            EnrolmentFilter::RefusedSend(code)
        } else if let (Some(ch), Some(out)) = (q.get("channel"), q.get("send_outcome")) {
            EnrolmentFilter::Send {
                channel: ch.clone(),
                outcome: out.clone(),
            }
        } else {
            EnrolmentFilter::Outcome("yellow".into())
        };
        let title = match &filter {
            EnrolmentFilter::Outcome(o) => format!("Enrolments of the last 24 hours: {o}"),
            EnrolmentFilter::Rule(r) => format!("Enrolments of the last 24 hours decided by {r}"),
            EnrolmentFilter::Send { channel, outcome } => {
                format!("Enrolments of the last 24 hours with a {channel} send {outcome}")
            }
            EnrolmentFilter::RefusedSend(code) => {
                format!("Enrolments of the last 24 hours with a sendOTP refused ({code})")
            }
        };
        match store.console_enrolments(&filter, since, LIST_LIMIT).await {
            Ok(rows) => (
                Safe::new(&title).as_str().to_owned(),
                rows.iter().map(EnrolmentLine::of_list).collect(),
            ),
            Err(e) => return internal(e),
        }
    };
    ok(pages::enrolments_page(&Chrome::of(&who), &title, &lines))
}

pub async fn enrolment(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(correlation_id): Path<String>,
) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let id = c.app.data_keys.safe_identifier(&correlation_id);
    let store = &c.app.store;
    let loaded = tokio::try_join!(
        store.enrolment(&id),
        store.enrolment_methods(&id),
        store.calls(&id),
        store.sends(&id),
        store.admin_notices(&id),
    );
    let (e, methods, calls, sends, notices) = match loaded {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let Some(e) = e else {
        return refuse(
            Some(&who),
            StatusCode::NOT_FOUND,
            "Not found",
            "No enrolment with this correlation id.",
        );
    };
    let mut timeline: Vec<TimelineLine> = Vec::new();
    for call in &calls {
        let mut detail = vec![
            ("answered", Safe::new(&call.response_code.to_string())),
            ("outcome", Safe::new(&call.outcome)),
            ("in", Safe::new(&format!("{} ms", call.duration_ms.0))),
        ];
        if let Some(d) = &call.detail {
            detail.push(("detail", Safe::new(d)));
        }
        timeline.push(TimelineLine {
            at: super::views::At(call.at),
            what: Safe::new(&call.operation),
            detail,
            destination: None,
        });
    }
    for s in &sends {
        let mut detail = vec![
            ("provider", Safe::new(&s.provider)),
            ("outcome", Safe::new(s.outcome.as_str())),
            ("in", Safe::new(&format!("{} ms", s.latency_ms.0))),
        ];
        if let Some(code) = &s.provider_code {
            detail.push(("provider code", Safe::new(code)));
        }
        timeline.push(TimelineLine {
            at: super::views::At(s.at),
            what: Safe::new(&format!("OTP send by {}", s.channel)),
            detail,
            destination: Some(Masked::new(&s.destination_masked)),
        });
    }
    for n in &notices {
        let mut detail = vec![("token", Safe::new(&n.virtual_card_id))];
        if let Some(b) = &n.state_before {
            detail.push(("from", Safe::new(b)));
        }
        detail.push(("to", Safe::new(&n.state_after)));
        timeline.push(TimelineLine {
            at: super::views::At(n.at),
            what: Safe::new(&format!("notice {}", n.action)),
            detail,
            destination: None,
        });
    }
    timeline.sort_by_key(|l| l.at.0.0);
    let methods: Vec<TimelineLine> = methods
        .iter()
        .map(|m| TimelineLine {
            at: super::views::At(e.created_at),
            what: Safe::new(&format!("{} ({})", m.method_type, m.channel)),
            detail: vec![("id", Safe::new(&m.method_id))],
            destination: Some(Masked::new(&m.masked_value)),
        })
        .collect();
    let cid = Safe::new(&e.correlation_id);
    let card_ref = super::views::CardRef::opt(e.card_ref.as_deref());
    let wallet = Safe::opt(e.wallet_provider_id.as_deref());
    let state = Safe::new(&e.state);
    let decision = e.decision.map(|d| Safe::new(&d.to_string()));
    let rule = Safe::opt(e.decision_rule.as_deref());
    ok(pages::enrolment_page(
        &Chrome::of(&who),
        &EnrolmentPage {
            correlation_id: &cid,
            card_ref: card_ref.as_ref(),
            wallet: wallet.as_ref(),
            state: &state,
            decision: decision.as_ref(),
            rule: rule.as_ref(),
            methods: &methods,
            timeline: &timeline,
        },
    ))
}

pub async fn operations(State(c): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let known = [
        "waiting",
        "sent",
        "confirmed",
        "failed",
        "refused",
        "cancelled",
        "unconfirmed",
    ];
    let wanted = q.get("state").map(String::as_str).unwrap_or("waiting");
    let Some(state) = known.iter().find(|k| **k == wanted) else {
        return refuse(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Unknown state",
            &format!("The state must be one of {}.", known.join(", ")),
        );
    };
    let before = unconfirmed_before(&c);
    let rows = match c
        .app
        .store
        .operations_in_state(state, before, LIST_LIMIT)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let views: Vec<OperationView> = rows.iter().map(|o| OperationView::of(o, before)).collect();
    ok(pages::operations_page(&Chrome::of(&who), state, &views))
}

pub async fn operation_verb(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    form: Fields,
) -> Response {
    let (who, _) = match form_session(&c, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = id.parse::<i64>().ok().filter(|i| *i > 0) else {
        return refuse(
            Some(&who),
            StatusCode::NOT_FOUND,
            "Not found",
            "No operation with this id.",
        );
    };
    let what = match verb.as_str() {
        "retry" => "retry operations",
        "cancel" => "cancel operations",
        _ => {
            return refuse(
                Some(&who),
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page in the console.",
            );
        }
    };
    if let Err(r) = need_role(&c, &who, Role::Supervisor, what, None).await {
        return r;
    }
    let now = c.app.clock.now_ms();
    let store = &c.app.store;
    let done = if verb == "retry" {
        store.retry_operation(id, now).await
    } else {
        store.cancel_operation(id, &who.name, now).await
    };
    let (op, changed) = match done {
        Ok(Some(v)) => v,
        Ok(None) => {
            return refuse(
                Some(&who),
                StatusCode::NOT_FOUND,
                "Not found",
                "No operation with this id.",
            );
        }
        Err(e) => return internal(e),
    };
    let action = format!("operation {verb}");
    if let Err(r) = audit(
        &c,
        AuditEntry {
            actor: &who.name,
            channel: "console",
            action: &action,
            outcome: if changed { "ok" } else { "refused: state" },
            card_ref: Some(&op.card_ref),
            virtual_card_id: op.virtual_card_id.as_deref(),
            operation_id: Some(id),
            ..AuditEntry::default()
        },
    )
    .await
    {
        return r;
    }
    if !changed {
        return refuse(
            Some(&who),
            StatusCode::CONFLICT,
            "Not possible",
            &format!(
                "The operation is {}: only a failed one can be retried, a waiting one cancelled.",
                Safe::new(&op.state).as_str()
            ),
        );
    }
    see_other(&format!(
        "/console/operations?state={}",
        if verb == "retry" {
            "waiting"
        } else {
            "cancelled"
        }
    ))
}

pub async fn audit_log(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let who = match page_session(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = need_role(&c, &who, Role::Supervisor, "read the audit log", None).await {
        return r;
    }
    let store = &c.app.store;
    let (rows, chain) = match tokio::try_join!(
        store.audit_latest(LIST_LIMIT),
        store.verify_audit(&c.app.data_keys)
    ) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let chain = match chain {
        (None, n) => {
            format!("The chain of {n} entries holds: no entry was changed, removed or inserted.")
        }
        (Some(seq), _) => {
            format!("The chain is broken at entry {seq}: the log was changed after it was written.")
        }
    };
    let lines: Vec<AuditLine> = rows.iter().map(AuditLine::of).collect();
    ok(pages::audit_page(&Chrome::of(&who), &lines, &chain))
}
