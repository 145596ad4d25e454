//! The operator console over HTTP (console.md): logins with password and TOTP, sessions and
//! their cookie, the security headers, CSRF and roles on every form, the lockout and the
//! per-source throttle, the audit log's chain (console, admin API and CLI entries), and
//! `operators add|list|disable|reset-password|audit-export` as an operator runs them. The
//! browser's view of the same pages is `console_browser.rs`.

use crate::common::*;
use crate::on_both_backends;
use issuer_gateway::config::Secret;
use serde_json::json;
use std::io::Write;

const ADMIN_TOKEN: &str = "console-admin-token";

fn now(fx: &Fixture) -> i64 {
    fx.clock_ms.load(std::sync::atomic::Ordering::SeqCst)
}

/// A gateway with an admin token, and a card with one active token.
async fn start(backend: Backend) -> (TestApp, String) {
    let app = TestApp::spawn_with(backend, |c| c.admin.token = Secret::new(ADMIN_TOKEN)).await;
    let a = app
        .tsh()
        .check_eligibility("console-ref", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    let body = json!({
        "issuerCardRefId": card_ref, "virtualCardId": "VC-CONSOLE-1", "walletProviderId": "APPLE_PAY",
        "tokenStorageId": "DEV-CONSOLE-1", "isPrimary": true, "action": "ACTIVATE",
    });
    let n = app
        .tsh()
        .call("notifyVirtualCardChange", "console-enrol", &body)
        .await
        .unwrap();
    assert_eq!(n.status, 200, "{:?}", n.body);
    (app, card_ref)
}

async fn login_pages_and_logout(backend: Backend) {
    let (app, card_ref) = start(backend).await;
    let op = add_operator(&app.gw, "olivia", "viewer").await;
    let mut web = ConsoleClient::new(&app.gw);

    // Without a session every page leads to the login page; the admin bearer token opens nothing.
    let p = web.get("/console/overview").await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/console/login"))
    );
    let p = web
        .get_with(
            "/console/overview",
            "authorization",
            &format!("Bearer {ADMIN_TOKEN}"),
        )
        .await;
    assert_eq!(p.status, 303, "the bearer token must not open the console");

    let login = web.get("/console/login").await;
    let h = &login.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!login.body.contains("<script"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");

    // A wrong code is refused like a wrong password.
    let mut wrong = op.clone();
    wrong.secret = vec![1; 20];
    let p = web.login(&wrong, now(&app.fx)).await;
    assert_eq!(p.status, 401, "{}", p.body);
    assert!(p.body.contains("Wrong name, password or code."));

    let p = web.login(&op, now(&app.fx)).await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/console/overview")),
        "{}",
        p.body
    );
    let cookie = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("ig_console="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure flag ({cookie})"
    );
    // The session's token is stored as its digest only.
    let token = web.cookies["ig_console"].clone();
    assert!(!app.fx.database_text().await.contains(&token));

    // The same code again (a replay) is refused, even with the right password.
    let mut again = ConsoleClient::new(&app.gw);
    let p = again.login(&op, now(&app.fx)).await;
    assert_eq!(p.status, 401, "a TOTP code works once");

    let p = web.get("/console/overview").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("<svg") && p.body.contains("Enrolments by outcome"));
    let p = web.get(&format!("/console/cards/{card_ref}")).await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("411111") && p.body.contains("1111") && p.body.contains("VC-CONSOLE-1")
    );
    assert!(!p.body.contains(ALICE.pan) && !p.body.contains("7700900123"));
    let p = web
        .get(&format!("/console/cards/{card_ref}?refresh=1"))
        .await;
    assert!(
        p.body
            .contains("TSH could not be asked: tsh.base_url is not set."),
        "{}",
        p.body
    );
    // A viewer sees no action.
    assert!(!p.body.contains("Suspend"), "a viewer is offered no action");
    let p = web.get("/console/search?q=411111+1111").await;
    assert!(p.body.contains(&card_ref), "{}", p.body);
    let p = web.get(&format!("/console/search?q={}", ALICE.pan)).await;
    assert_eq!(p.status, 400);
    assert!(
        !p.body.contains(ALICE.pan),
        "a PAN typed into the search is never echoed"
    );
    let p = web.get("/console/audit").await;
    assert_eq!(p.status, 403, "the audit log is for supervisors");
    // Every list the overview links to answers, on both backends.
    for list in [
        "/console/enrolments?outcome=yellow",
        "/console/enrolments?rule=step-up",
        "/console/enrolments?channel=sms&send_outcome=accepted",
        "/console/enrolments?refused_code=102",
        "/console/enrolments?stuck=1",
        "/console/operations?state=unconfirmed",
        "/console/enrolments/console-enrol",
    ] {
        let p = web.get(list).await;
        assert_eq!(p.status, 200, "{list}: {}", p.body);
    }
    assert_eq!(web.get("/console/operations?state=nope").await.status, 400);
    assert_eq!(web.get("/console/no-such-page").await.status, 404);

    let csrf = web.get("/console/overview").await.csrf();
    let p = web.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(p.location.as_deref(), Some("/console/login"));
    let p = web.get("/console/overview").await;
    assert_eq!(p.status, 303);
    // The old cookie is dead too, not only forgotten by the browser.
    web.cookies.insert("ig_console".into(), token);
    assert_eq!(web.get("/console/overview").await.status, 303);
    app.gw.stop().await;
}

async fn idle_timeout_ends_the_session(backend: Backend) {
    let (app, _) = start(backend).await;
    let op = add_operator(&app.gw, "ida", "viewer").await;
    let mut web = ConsoleClient::new(&app.gw);
    assert_eq!(web.login(&op, now(&app.fx)).await.status, 303);
    app.fx.advance_ms(14 * 60_000);
    assert_eq!(
        web.get("/console/overview").await.status,
        200,
        "14 minutes: still open"
    );
    app.fx.advance_ms(14 * 60_000);
    assert_eq!(
        web.get("/console/overview").await.status,
        200,
        "used 14 minutes ago: still open"
    );
    app.fx.advance_ms(15 * 60_000 + 1000);
    let p = web.get("/console/overview").await;
    assert_eq!(p.location.as_deref(), Some("/console/login?expired=1"));
    app.gw.stop().await;
}

async fn forms_need_their_csrf_token_and_the_role(backend: Backend) {
    let (app, card_ref) = start(backend).await;
    let viewer = add_operator(&app.gw, "vera", "viewer").await;
    let agent = add_operator(&app.gw, "arno", "agent").await;
    let path = format!("/console/cards/{card_ref}/actions");
    let ops = || async {
        app.gw
            .state
            .store
            .operations_of_card(&card_ref)
            .await
            .unwrap()
    };

    let mut v = ConsoleClient::new(&app.gw);
    assert_eq!(v.login(&viewer, now(&app.fx)).await.status, 303);
    let csrf = v.get(&format!("/console/cards/{card_ref}")).await.csrf();
    let p = v
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "SUSPEND"),
                ("token", "VC-CONSOLE-1"),
                ("reason", "CUSTOMER_REQUEST"),
            ],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(
        p.body.contains("Your role (viewer) cannot suspend tokens"),
        "{}",
        p.body
    );
    assert!(ops().await.is_empty());

    let mut a = ConsoleClient::new(&app.gw);
    assert_eq!(a.login(&agent, now(&app.fx)).await.status, 303);
    let csrf = a.get(&format!("/console/cards/{card_ref}")).await.csrf();
    // No token, a wrong token, another session's token: refused, nothing done.
    for bad in ["", "0000", &v.get("/console/overview").await.csrf()] {
        let p = a
            .post(
                &path,
                &[
                    ("csrf", bad),
                    ("action", "SUSPEND"),
                    ("token", "VC-CONSOLE-1"),
                    ("reason", "CUSTOMER_REQUEST"),
                ],
            )
            .await;
        assert_eq!(p.status, 403, "csrf {bad:?}: {}", p.body);
    }
    let p = a
        .post(
            &path,
            &[("action", "SUSPEND"), ("reason", "CUSTOMER_REQUEST")],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(ops().await.is_empty());
    // An agent cannot delete.
    let p = a
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "DELETE"),
                ("token", "VC-CONSOLE-1"),
                ("reason", "FRAUD_SUSPECTED"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(ops().await.is_empty());

    let p = a
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "SUSPEND"),
                ("token", "VC-CONSOLE-1"),
                ("reason", "FRAUD_SUSPECTED"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let list = ops().await;
    assert_eq!(list.len(), 1);
    let op = &list[0];
    assert_eq!(
        (
            op.action.as_deref(),
            op.virtual_card_id.as_deref(),
            op.reason.as_deref(),
            op.operator.as_deref(),
            op.cause.as_str()
        ),
        (
            Some("SUSPEND"),
            Some("VC-CONSOLE-1"),
            Some("FRAUD_SUSPECTED"),
            Some("arno"),
            "operator"
        )
    );
    // The admin API sees the very same operation.
    let client = reqwest::Client::new();
    let got: serde_json::Value = client
        .get(format!("http://{}/operations/{}", app.gw.admin, op.id))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["operator"], "arno");

    // The refusals and the action are in the audit log, with their reasons.
    let audit = app.gw.state.store.audit_latest(100).await.unwrap();
    let seen: Vec<(String, String, String)> = audit
        .iter()
        .map(|r| (r.actor.clone(), r.action.clone(), r.outcome.clone()))
        .collect();
    assert!(
        seen.contains(&(
            "vera".into(),
            "suspend tokens".into(),
            "refused: role".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "arno".into(),
            "delete tokens".into(),
            "refused: role".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("arno".into(), "token SUSPEND".into(), "ok".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "arno".into(),
            "form".into(),
            "refused: no valid CSRF token".into()
        )),
        "{seen:?}"
    );
    app.gw.stop().await;
}

async fn ten_failures_lock_the_account_and_sources_are_throttled(backend: Backend) {
    let (app, _) = start(backend).await;
    let op = add_operator(&app.gw, "lena", "agent").await;
    let mut web = ConsoleClient::new(&app.gw);
    let mut bad = op.clone();
    bad.password = "not the password at all".into();
    for _ in 0..10 {
        assert_eq!(web.login(&bad, now(&app.fx)).await.status, 401);
    }
    let p = web.login(&op, now(&app.fx)).await;
    assert_eq!(p.status, 401, "locked: the right password is refused too");
    assert!(p.body.contains("locked"), "{}", p.body);
    app.fx.advance_ms(31 * 60_000);
    let p = web.login(&op, now(&app.fx)).await;
    assert_eq!(
        p.status, 303,
        "30 minutes later the lock is gone: {}",
        p.body
    );
    // 20 failures from one address (the default) and it is refused before any password check.
    let ghost = TestOperator {
        name: "nobody".into(),
        password: "whatever it is 123".into(),
        secret: vec![0; 20],
    };
    for _ in 0..20 {
        web.login(&ghost, now(&app.fx)).await;
    }
    let p = web.login(&op, now(&app.fx) + 30_000).await;
    assert_eq!(p.status, 429, "{}", p.body);
    app.gw.stop().await;
}

async fn the_audit_log_is_chained_and_covers_the_admin_api(backend: Backend) {
    let (app, card_ref) = start(backend).await;
    let op = add_operator(&app.gw, "sam", "supervisor").await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{}/cards/{card_ref}/token-actions", app.gw.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "SUSPEND", "virtualCardId": "VC-CONSOLE-1", "reason": "CARD_LOST", "operator": "api-desk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .patch(format!("http://{}/cards/{card_ref}", app.gw.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"phone": "+447700900999"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut web = ConsoleClient::new(&app.gw);
    assert_eq!(web.login(&op, now(&app.fx)).await.status, 303);
    let p = web.get("/console/audit").await;
    assert!(
        p.body.contains("card update") && p.body.contains("phone"),
        "{}",
        p.body
    );
    assert!(
        !p.body.contains("7700900999"),
        "a destination never reaches the audit log"
    );
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("api-desk") && p.body.contains("admin-api") && p.body.contains("CARD_LOST"),
        "{}",
        p.body
    );
    assert!(p.body.contains("The chain of"), "{}", p.body);
    let keys = &app.gw.state.data_keys;
    let (broken, n) = app.gw.state.store.verify_audit(keys).await.unwrap();
    assert_eq!(broken, None);
    assert!(n >= 2, "{n}");
    // A database writer rewrites history: the chain shows where.
    app.fx
        .sql(
            "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1",
            &[],
        )
        .await;
    let (broken, _) = app.gw.state.store.verify_audit(keys).await.unwrap();
    assert_eq!(broken, Some(1));
    let p = web.get("/console/audit").await;
    assert!(
        p.body.contains("The chain is broken at entry 1"),
        "{}",
        p.body
    );
    app.gw.stop().await;
}

async fn option_d_activation_records_how_the_caller_was_verified(backend: Backend) {
    let (app, card_ref) = start(backend).await;
    // A token TSH told of without activating it: waiting (ours: pending).
    let body = json!({
        "issuerCardRefId": card_ref, "virtualCardId": "VC-WAITING-1", "walletProviderId": "APPLE_PAY",
        "tokenStorageId": "DEV-CONSOLE-2", "action": "RENEW",
    });
    let n = app
        .tsh()
        .call("notifyVirtualCardChange", "console-enrol-2", &body)
        .await
        .unwrap();
    assert_eq!(n.status, 200, "{:?}", n.body);
    let agent = add_operator(&app.gw, "cara", "agent").await;
    let mut web = ConsoleClient::new(&app.gw);
    assert_eq!(web.login(&agent, now(&app.fx)).await.status, 303);
    let page = web.get(&format!("/console/cards/{card_ref}")).await;
    assert!(
        page.body.contains("Activate (caller verified)"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let path = format!("/console/cards/{card_ref}/actions");
    let p = web
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "ACTIVATE"),
                ("token", "VC-WAITING-1"),
            ],
        )
        .await;
    assert_eq!(p.status, 400, "the verification is required");
    let p = web
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "ACTIVATE"),
                ("token", "VC-WAITING-1"),
                ("verification", "security questions, 3 of 3"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let ops = app
        .gw
        .state
        .store
        .operations_of_card(&card_ref)
        .await
        .unwrap();
    assert_eq!(ops.len(), 1);
    let op = &ops[0];
    assert_eq!(
        (
            op.action.as_deref(),
            op.reason.as_deref(),
            op.verification.as_deref(),
            op.operator.as_deref()
        ),
        (
            Some("RESUME"),
            Some("CARDHOLDER_VERIFIED"),
            Some("security questions, 3 of 3"),
            Some("cara")
        )
    );
    app.gw.stop().await;
}

async fn deleting_every_token_needs_a_second_supervisor(backend: Backend) {
    let (app, card_ref) = start(backend).await;
    let first = add_operator(&app.gw, "sam", "supervisor").await;
    let second = add_operator(&app.gw, "sue", "supervisor").await;
    let ops = || async {
        app.gw
            .state
            .store
            .operations_of_card(&card_ref)
            .await
            .unwrap()
    };
    let mut a = ConsoleClient::new(&app.gw);
    assert_eq!(a.login(&first, now(&app.fx)).await.status, 303);
    let csrf = a.get(&format!("/console/cards/{card_ref}")).await.csrf();
    let p = a
        .post(
            &format!("/console/cards/{card_ref}/actions"),
            &[
                ("csrf", &csrf),
                ("action", "DELETE"),
                ("reason", "FRAUD_SUSPECTED"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(
        ops().await.is_empty(),
        "nothing is deleted on one supervisor's word"
    );
    let page = a.get(&format!("/console/cards/{card_ref}")).await;
    assert!(
        page.body.contains("Waiting for a second supervisor"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("/approvals/"),
        "the requester is offered no approval"
    );
    // Not by the one who asked, even by hand.
    let p = a
        .post(
            &format!("/console/cards/{card_ref}/approvals/1"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 409, "{}", p.body);
    assert!(ops().await.is_empty());

    let mut b = ConsoleClient::new(&app.gw);
    assert_eq!(b.login(&second, now(&app.fx)).await.status, 303);
    let page = b.get(&format!("/console/cards/{card_ref}")).await;
    assert!(
        page.body
            .contains(&format!("/console/cards/{card_ref}/approvals/1")),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let p = b
        .post(
            &format!("/console/cards/{card_ref}/approvals/1"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let list = ops().await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].action.as_deref(),
            list[0].virtual_card_id.as_deref(),
            list[0].operator.as_deref()
        ),
        (Some("DELETE"), None, Some("sam, approved by sue"))
    );
    // Once only.
    let p = b
        .post(
            &format!("/console/cards/{card_ref}/approvals/1"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 409);
    assert_eq!(ops().await.len(), 1);
    app.gw.stop().await;
}

on_both_backends!(
    deleting_every_token_needs_a_second_supervisor,
    option_d_activation_records_how_the_caller_was_verified,
    login_pages_and_logout,
    idle_timeout_ends_the_session,
    forms_need_their_csrf_token_and_the_role,
    ten_failures_lock_the_account_and_sources_are_throttled,
    the_audit_log_is_chained_and_covers_the_admin_api,
);

/// `operators add` as an operator runs it: the one-time password and the otpauth URI printed
/// once, a first login that must change the password, `list`, `disable`, `audit-export`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_commands_make_working_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = bin();
        cmd.arg("operators").args(args).arg("--config").arg(&config);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["add", "carl", "--role", "agent"], Some("short\n"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("at least 12 characters") && !err.contains("short"),
        "{err}"
    );
    let (code, _, err) = run(&["add", "carl", "--role", "admin"], Some(""));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("role: must be viewer, agent or supervisor"),
        "{err}"
    );
    let (code, out, err) = run(&["add", "carl", "--role", "agent"], Some(""));
    assert_eq!(code, Some(0), "{err}");
    let password = out
        .lines()
        .find_map(|l| {
            l.split_once("first login): ")
                .map(|(_, p)| p.trim().to_owned())
        })
        .expect("a one-time password");
    let uri = out
        .lines()
        .find_map(|l| l.split_once("app: ").map(|(_, u)| u.trim().to_owned()))
        .unwrap();
    assert!(
        uri.starts_with("otpauth://totp/issuer-gateway:carl?secret="),
        "{uri}"
    );
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let (code, _, _) = run(&["add", "carl", "--role", "agent"], Some(""));
    assert_eq!(code, Some(1), "the name is taken");
    let (code, out, _) = run(
        &["add", "dora", "--role", "viewer"],
        Some("a passphrase she remembers\n"),
    );
    assert_eq!(code, Some(0));
    assert!(!out.contains("one-time password"), "{out}");
    // Neither the password nor the TOTP secret is in the database in clear.
    let db = std::fs::read(dir.path().join("gw.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(&password) && !db.contains(secret));
    let (_, out, _) = run(&["list"], None);
    assert!(
        out.contains("carl") && out.contains("one-time") && out.contains("dora"),
        "{out}"
    );

    // The first login with the one-time password must change it.
    let served = Served::start(&config);
    let carl = TestOperator {
        name: "carl".into(),
        password: password.clone(),
        secret: issuer_gateway::console::auth::unbase32(secret).unwrap(),
    };
    let mut web = console_client_at(&served.admin);
    let clock = issuer_gateway::clock::to_ms(time::OffsetDateTime::now_utc());
    let p = web.login(&carl, clock).await;
    assert_eq!(
        p.location.as_deref(),
        Some("/console/password"),
        "{}",
        p.body
    );
    assert_eq!(
        web.get("/console/overview").await.location.as_deref(),
        Some("/console/password")
    );
    let csrf = web.get("/console/password").await.csrf();
    let p = web
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", &password),
                ("new", "Password1234!"),
                ("again", "Password1234!"),
            ],
        )
        .await;
    assert!(p.body.contains("common passwords"), "{}", p.body);
    let p = web
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", &password),
                ("new", "carl's own long phrase"),
                ("again", "carl's own long phrase"),
            ],
        )
        .await;
    assert!(p.body.contains("operator's name"), "{}", p.body);
    let p = web
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", &password),
                ("new", "a phrase of my own, long"),
                ("again", "a phrase of my own, long"),
            ],
        )
        .await;
    assert_eq!(
        p.location.as_deref(),
        Some("/console/overview"),
        "{}",
        p.body
    );
    assert_eq!(web.get("/console/overview").await.status, 200);

    // Disabled: the session ends at once.
    let (code, _, _) = run(&["disable", "carl"], None);
    assert_eq!(code, Some(0));
    assert_eq!(web.get("/console/overview").await.status, 303);
    let (code, _, err) = run(&["disable", "nobody"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("no operator named nobody"), "{err}");
    served.stop();

    let (code, out, err) = run(&["audit-export"], None);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    for a in [
        "operator add",
        "login",
        "password change",
        "operator disable",
    ] {
        assert!(actions.contains(&a), "{a}: {actions:?}");
    }
    assert!(
        err.contains("the chain of") && err.contains("holds"),
        "{err}"
    );
    assert!(!out.contains(&password));
    let (_, help, _) = {
        let o = bin().args(["operators", "add", "--help"]).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            (),
        )
    };
    assert!(help.contains("--role"), "{help}");
}

/// A console client for a gateway run as a process (its admin address as `host:port`).
fn console_client_at(admin: &str) -> ConsoleClient {
    ConsoleClient::at(&format!("http://{admin}"))
}

/// The admin listener speaking TLS (`admin.tls.*`): the console answers over HTTPS only, and
/// its cookies are `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_console_cookies_are_secure() {
    use rcgen::{CertificateParams, KeyPair};
    issuer_gateway::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let chain = dir.path().join("admin.pem");
    let private = dir.path().join("admin-key.pem");
    std::fs::write(&chain, cert.pem()).unwrap();
    issuer_gateway::data_keys::write_private_file(&private, key.serialize_pem().as_bytes())
        .unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.admin.tls = Some(issuer_gateway::config::AdminTlsConfig {
            cert_chain: chain.clone(),
            private_key: private.clone(),
            client_ca: None,
        });
    })
    .await;
    let op = add_operator(&app.gw, "tess", "viewer").await;
    let trust = reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap();
    let mut web = ConsoleClient::with(
        &format!("https://localhost:{}", app.gw.admin.port()),
        reqwest::Client::builder()
            .add_root_certificate(trust)
            .resolve("localhost", app.gw.admin),
    );
    let p = web.login(&op, now(&app.fx)).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let cookie = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("ig_console="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(web.get("/console/overview").await.status, 200);
    // Plain HTTP gets no answer.
    let plain = reqwest::get(format!("http://{}/console/login", app.gw.admin)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    app.gw.stop().await;
}

/// Unusable `admin.tls` files stop the start, each problem naming its setting; a reload (SIGHUP)
/// takes new files and refuses unusable ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_admin_tls_files_name_their_setting() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    let dir = fx.path().to_owned();
    let mut config = fx.config.clone();
    config.admin.tls = Some(issuer_gateway::config::AdminTlsConfig {
        cert_chain: dir.join("missing.pem"),
        private_key: dir.join("missing-key.pem"),
        client_ca: None,
    });
    let err = issuer_gateway::app::Application::build(config.clone())
        .await
        .err()
        .expect("the start is refused");
    assert!(err.to_string().contains("admin.tls.cert_chain"), "{err:#}");
    // Reloading (what SIGHUP does): new files are taken, unusable ones refused naming the setting.
    let files = |n: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![n.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("admin.pem"), cert.pem()).unwrap();
        let _ = std::fs::remove_file(dir.join("admin-key.pem"));
        issuer_gateway::data_keys::write_private_file(
            &dir.join("admin-key.pem"),
            key.serialize_pem().as_bytes(),
        )
        .unwrap();
    };
    files("one.test");
    let tls = issuer_gateway::config::AdminTlsConfig {
        cert_chain: dir.join("admin.pem"),
        private_key: dir.join("admin-key.pem"),
        client_ca: None,
    };
    let live =
        issuer_gateway::tls::Reloadable::of(issuer_gateway::tls::TlsFiles::admin(&tls)).unwrap();
    files("two.test");
    live.reload().unwrap();
    std::fs::write(dir.join("admin.pem"), "not a certificate").unwrap();
    let e = live.reload().unwrap_err();
    assert!(e.starts_with("admin.tls.cert_chain:"), "{e}");
    let mut p = Vec::new();
    config.admin.tls = Some(issuer_gateway::config::AdminTlsConfig::default());
    config.admin.validate(&mut p);
    assert!(
        p.iter()
            .any(|l| l.starts_with("admin.tls.cert_chain: required")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with("admin.tls.private_key: required")),
        "{p:?}"
    );
}
