//! The admin API (cards, tokens, enrolments, stuck enrolments, metrics), its bearer token, and
//! `simulate` run as an operator would against a gateway.

use crate::common::*;
use crate::on_both_backends;
use serde_json::{Value, json};

on_both_backends!(
    card_view_and_tokens_with_history,
    enrolment_view_tells_the_whole_story,
    token_is_required_when_configured,
    unknown_ids_are_404_json,
    card_update_records_a_destination_change,
    stuck_enrolments_are_listed_after_the_configured_time,
    metrics_show_pools_limits_and_requests,
    digitization_reuses_only_the_same_envelope_of_the_same_enrolment,
    pans_glued_or_spaced_in_identifiers_never_reach_the_database,
    writes_need_the_token_even_on_loopback,
    contacts_are_bound_to_their_card,
    refusals_from_nowhere_are_counted_not_stored,
);

const TOKEN: &str = "adm-Tok3n-for-tests";

/// One admin call: (status, JSON body, raw text).
async fn admin(
    gw: &Gateway,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, String) {
    issuer_gateway::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = format!("http://{}{path}", gw.admin);
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("admin body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

async fn get(gw: &Gateway, path: &str) -> (u16, Value, String) {
    admin(gw, "GET", path, None, None).await
}

/// No PAN, phone number, e-mail address (in full) or OTP in an admin answer.
fn assert_clean(text: &str, otps: &[&str]) {
    for v in sensitive_values().iter().chain(otps) {
        assert!(!text.contains(v), "admin answer holds '{v}': {text}");
    }
}

async fn activate(app: &TestApp, cid: &str, card_ref: &str, vcid: &str) {
    let a = app
        .tsh()
        .notify(
            cid,
            card_ref,
            vcid,
            "ACTIVATE",
            "APPLE_PAY",
            Some(("4895370012345678", "1229")),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
}

async fn green(app: &TestApp, cid: &str, card: TestCard) -> String {
    let a = app
        .tsh()
        .check_eligibility(cid, card.pan, card.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    let d = app
        .tsh()
        .request_digitization(
            cid,
            card.pan,
            card.exp,
            "APPLE_PAY",
            json!({"cvvValidated": true}),
        )
        .await
        .unwrap();
    assert_eq!(d.str("levelOfTrust"), Some("green"), "{:?}", d.body);
    card_ref
}

async fn card_view_and_tokens_with_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gw = &app.gw;
    let card_ref = green(&app, "adm-card-1", ALICE).await;
    activate(&app, "adm-card-1", &card_ref, "VC-ADM-1").await;
    let s = app
        .tsh()
        .notify(
            "adm-lcm-1",
            &card_ref,
            "VC-ADM-1",
            "SUSPEND",
            "APPLE_PAY",
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.status, 200);

    let (status, card, text) = get(gw, &format!("/cards/{card_ref}")).await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &[]);
    assert_eq!(card["issuerCardRefId"], card_ref.as_str());
    assert_eq!(card["bin"], "411111");
    assert_eq!(card["last4"], "1111");
    assert_eq!(card["exp"], "1229");
    assert_eq!(card["status"], "active");
    assert_eq!(card["productId"], "VISA_PLATINUM");
    assert_eq!(card["phone"]["masked"], "+********0123");
    assert_eq!(card["email"]["masked"], "al***@example.com");
    assert!(card["phone"]["changedAt"].is_null());
    let recent = card["recentEnrolments"].as_array().unwrap();
    assert!(
        recent.iter().any(|e| e["correlationId"] == "adm-card-1"),
        "{recent:?}"
    );

    let (status, tokens, text) = get(gw, &format!("/cards/{card_ref}/tokens")).await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &[]);
    assert!(!text.contains("4895370012345678"), "DPAN in {text}");
    let list = tokens["tokens"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let t = &list[0];
    assert_eq!(t["virtualCardId"], "VC-ADM-1");
    assert_eq!(t["state"], "suspended");
    assert_eq!(t["dpanLast4"], "5678");
    let history: Vec<(&str, &str)> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["action"].as_str().unwrap(),
                h["stateAfter"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![("ACTIVATE", "active"), ("SUSPEND", "suspended")]
    );
    app.gw.stop().await;
}

async fn enrolment_view_tells_the_whole_story(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gw = &app.gw;
    let (card_ref, methods) = app.enrol_to_yellow("adm-enr-1", BOB, "APPLE_PAY").await;
    let sms = methods.iter().find(|m| m.1 == "sms").unwrap();
    let otp = "730419";
    let a = app
        .tsh()
        .send_otp("adm-enr-1", &card_ref, otp, Some(&sms.0), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    activate(&app, "adm-enr-1", &card_ref, "VC-ADM-2").await;

    let (status, e, text) = get(gw, "/enrolments/adm-enr-1").await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &[otp]);
    assert_eq!(e["correlationId"], "adm-enr-1");
    assert_eq!(e["issuerCardRefId"], card_ref.as_str());
    assert_eq!(e["state"], "complete");
    assert_eq!(e["decision"]["outcome"], "yellow");
    assert_eq!(e["decision"]["rule"], "step-up");
    assert_eq!(e["decision"]["signals"]["capture_method"], "MANUAL");
    let ops: Vec<&str> = e["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        vec![
            "checkCardEligibility",
            "requestCardDigitization",
            "sendOTP",
            "notifyVirtualCardChange"
        ]
    );
    let offered = e["methodsOffered"].as_array().unwrap();
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert_eq!(offered[0]["value"], "+********0456");
    let sends = e["sends"].as_array().unwrap();
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["channel"], "sms");
    assert_eq!(sends[0]["destination"], "+********0456");
    assert_eq!(sends[0]["outcome"], "accepted");
    assert_eq!(sends[0]["methodId"], sms.0.as_str());
    let notices = e["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["action"], "ACTIVATE");
    assert_eq!(notices[0]["virtualCardId"], "VC-ADM-2");

    // A refused enrolment shows the refusal and its reason.
    let r = app
        .tsh()
        .check_eligibility("adm-enr-2", DAN.pan, DAN.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(r.code(), 159);
    let (status, e, text) = get(gw, "/enrolments/adm-enr-2").await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &[]);
    assert_eq!(e["calls"][0]["responseCode"], 159);
    assert!(e["decision"].is_null());
    app.gw.stop().await;
}

async fn token_is_required_when_configured(backend: Backend) {
    // Loopback without a token: open.
    let open = TestApp::spawn(backend.clone()).await;
    let card_ref = green(&open, "adm-auth-0", ALICE).await;
    let (status, _, _) = get(&open.gw, &format!("/cards/{card_ref}")).await;
    assert_eq!(status, 200);
    open.gw.stop().await;

    let app = TestApp::spawn_with(backend, |c| {
        c.admin.token = issuer_gateway::config::Secret::new(TOKEN);
    })
    .await;
    let gw = &app.gw;
    let card_ref = green(&app, "adm-auth-1", ALICE).await;
    // Health and metrics stay open.
    assert_eq!(get(gw, "/health").await.0, 200);
    assert_eq!(get(gw, "/metrics").await.0, 200);
    let paths = [
        format!("/cards/{card_ref}"),
        format!("/cards/{card_ref}/tokens"),
        "/enrolments/adm-auth-1".to_owned(),
        "/enrolments?stuck".to_owned(),
    ];
    for path in &paths {
        for token in [None, Some("wrong-token"), Some("adm-Tok3n-for-test")] {
            let (status, body, _) = admin(gw, "GET", path, token, None).await;
            assert_eq!(status, 401, "{path} with {token:?}");
            assert_eq!(body["error"], "unauthorized");
        }
        let (status, _, text) = admin(gw, "GET", path, Some(TOKEN), None).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    // The update too, and a refused update changes nothing.
    let (status, _, _) = admin(
        gw,
        "PATCH",
        &format!("/cards/{card_ref}"),
        Some("wrong-token"),
        Some(json!({"status": "blocked"})),
    )
    .await;
    assert_eq!(status, 401);
    let (_, card, _) = admin(gw, "GET", &format!("/cards/{card_ref}"), Some(TOKEN), None).await;
    assert_eq!(card["status"], "active");
    // The scheme is case-insensitive; the 401 says which scheme.
    let resp = reqwest::Client::new()
        .get(format!("http://{}/cards/{card_ref}", gw.admin))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = reqwest::Client::new()
        .get(format!("http://{}/cards/{card_ref}", gw.admin))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer")),
    );
    app.gw.stop().await;
}

async fn unknown_ids_are_404_json(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.admin.token = issuer_gateway::config::Secret::new(TOKEN)
    })
    .await;
    let gw = &app.gw;
    for (method, path) in [
        ("GET", "/cards/no-such-card"),
        ("GET", "/cards/no-such-card/tokens"),
        ("GET", "/enrolments/no-such-enrolment"),
        ("PATCH", "/cards/no-such-card"),
        ("GET", "/no/such/route"),
    ] {
        let body = (method == "PATCH").then(|| json!({"status": "blocked"}));
        let (status, b, text) = admin(gw, method, path, Some(TOKEN), body).await;
        assert_eq!(status, 404, "{method} {path}: {text}");
        assert_eq!(b["error"], "not_found", "{text}");
        assert!(b["message"].is_string());
    }
    app.gw.stop().await;
}

async fn card_update_records_a_destination_change(backend: Backend) {
    // Writes need the token, on loopback too.
    let app = TestApp::spawn_with(backend, |c| {
        c.admin.token = issuer_gateway::config::Secret::new(TOKEN)
    })
    .await;
    let gw = &app.gw;
    let card_ref = green(&app, "adm-upd-1", ALICE).await;
    let path = format!("/cards/{card_ref}");
    let now = || {
        issuer_gateway::clock::format_ms(issuer_gateway::domain::Millis(
            app.fx.clock_ms.load(std::sync::atomic::Ordering::SeqCst),
        ))
    };

    // Bad values are refused without being echoed, and change nothing.
    for (body, field) in [
        (json!({"phone": "07700 900999"}), "phone"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"status": "frozen"}), "status"),
        (json!({"pan": "4111111111111111"}), "pan"),
        (json!({}), "nothing"),
    ] {
        let (status, b, text) = admin(gw, "PATCH", &path, Some(TOKEN), Some(body)).await;
        assert_eq!(status, 400, "{text}");
        assert!(b["message"].as_str().unwrap().contains(field), "{text}");
        assert!(!text.contains("900999") && !text.contains("not-an-address"));
        assert_clean(&text, &[]);
    }

    app.fx.advance_ms(60_000);
    let changed_at = now();
    let (status, card, text) = admin(
        gw,
        "PATCH",
        &path,
        Some(TOKEN),
        Some(json!({"phone": "+447700900555", "language": "fr"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("447700900555"), "{text}");
    assert_eq!(card["destinationsChanged"], json!(["phone"]));
    assert_eq!(card["phone"]["masked"], "+********0555");
    assert_eq!(card["phone"]["changedAt"], changed_at.as_str());
    assert!(card["email"]["changedAt"].is_null());
    assert_eq!(card["language"], "fr");

    // The same number again is no change; the e-mail in another case is no change either.
    app.fx.advance_ms(60_000);
    let (status, card, _) = admin(
        gw,
        "PUT",
        &path,
        Some(TOKEN),
        Some(json!({"phone": "+447700900555", "email": "Alice.Martin@example.com"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(card["destinationsChanged"], json!([]));
    assert_eq!(card["phone"]["changedAt"], changed_at.as_str());
    assert!(card["email"]["changedAt"].is_null());

    // Removing the e-mail is a change; the stored form is what the card file would store.
    let (_, card, _) = admin(
        gw,
        "PATCH",
        &path,
        Some(TOKEN),
        Some(json!({"email": null})),
    )
    .await;
    assert_eq!(card["destinationsChanged"], json!(["email"]));
    assert!(card["email"]["masked"].is_null());
    assert_eq!(card["email"]["changedAt"], now().as_str());
    let row = gw
        .state
        .store
        .card_by_ref(&card_ref)
        .await
        .unwrap()
        .unwrap();
    let sealed = row.phone_sealed.unwrap();
    assert!(!sealed.contains("447700900555"));
    assert_eq!(
        gw.state
            .data_keys
            .unseal_for_card("phone", &row.pan_index, &sealed)
            .unwrap()
            .as_str(),
        "+447700900555"
    );
    let phone = issuer_gateway::domain::Phone::parse("+447700900555").unwrap();
    assert_eq!(
        row.phone_fp,
        Some(
            issuer_gateway::card_file::sealed_phone(&gw.state.data_keys, &row.pan_index, &phone).fp
        )
    );
    assert!(row.email_sealed.is_none() && row.email_fp.is_none());

    // A status change takes effect at once.
    let (status, card, _) = admin(
        gw,
        "PATCH",
        &path,
        Some(TOKEN),
        Some(json!({"status": "Blocked"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(card["status"], "blocked");
    let a = app
        .tsh()
        .check_eligibility("adm-upd-2", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.code(), 159, "{:?}", a.body);
    app.gw.stop().await;
}

async fn stuck_enrolments_are_listed_after_the_configured_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.admin.stuck_after_minutes = 30).await;
    let gw = &app.gw;
    let (stuck_ref, methods) = app.enrol_to_yellow("adm-stuck-1", ALICE, "APPLE_PAY").await;
    let otp = "804417";
    let a = app
        .tsh()
        .send_otp(
            "adm-stuck-1",
            &stuck_ref,
            otp,
            Some(&methods[0].0),
            "APPLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let (done_ref, _) = app.enrol_to_yellow("adm-stuck-2", BOB, "APPLE_PAY").await;
    activate(&app, "adm-stuck-2", &done_ref, "VC-ADM-3").await;
    green(&app, "adm-stuck-3", CLAIRE).await;

    // Not yet: the yellow answer is younger than 30 minutes.
    let (status, list, text) = get(gw, "/enrolments?stuck").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(list["count"], 0, "{text}");

    app.fx.advance_ms(31 * 60_000);
    app.enrol_to_yellow("adm-stuck-4", CLAIRE, "APPLE_PAY")
        .await;
    let (status, list, text) = get(gw, "/enrolments?stuck").await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &[otp]);
    assert_eq!(list["stuckAfterMinutes"], 30);
    let ids: Vec<&str> = list["enrolments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["correlationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["adm-stuck-1"], "{text}");
    let e = &list["enrolments"][0];
    assert_eq!(e["issuerCardRefId"], stuck_ref.as_str());
    assert_eq!(e["sends"], 1);
    assert_eq!(e["sendsAccepted"], 1);
    assert_eq!(e["minutesWaiting"], 31);

    // The threshold can be given per request.
    let (_, list, _) = get(gw, "/enrolments?stuck_after_minutes=45").await;
    assert_eq!(list["count"], 0);
    let (_, list, _) = get(gw, "/enrolments?stuck_after_minutes=5&limit=10").await;
    assert_eq!(list["count"], 1);
    for bad in [
        "/enrolments",
        "/enrolments?stuck_after_minutes=soon",
        "/enrolments?stuck&limit=0",
        "/enrolments?state=yellow",
    ] {
        let (status, b, text) = get(gw, bad).await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert_eq!(b["error"], "bad_request");
    }

    // Activated at last: no longer stuck.
    activate(&app, "adm-stuck-1", &stuck_ref, "VC-ADM-4").await;
    let (_, list, _) = get(gw, "/enrolments?stuck").await;
    assert_eq!(list["count"], 0);
    app.gw.stop().await;
}

async fn metrics_show_pools_limits_and_requests(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let gw = &app.gw;
    green(&app, "adm-met-1", ALICE).await;
    issuer_gateway::metrics::record_limit_refusal("per-card");
    let (status, _, text) = get(gw, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "issuer_gateway_requests_total{operation=\"checkCardEligibility\",code=\"200\"}",
        "issuer_gateway_request_duration_seconds_bucket{operation=\"requestCardDigitization\"",
        "issuer_gateway_decisions_total{",
        "issuer_gateway_limit_refusals_total{limit=\"per-card\"}",
        "issuer_gateway_db_pool_connections{",
        "issuer_gateway_db_pool_max_connections{",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let pool = match backend {
        Backend::Sqlite => "pool=\"writer\"",
        Backend::Postgres(_) => "pool=\"main\"",
    };
    assert!(text.contains(pool), "{pool} missing from:\n{text}");
    assert_clean(&text, &[]);
    app.gw.stop().await;
}

fn reuse_count(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("issuer_gateway_envelope_reuses_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn digitization_reuses_only_the_same_envelope_of_the_same_enrolment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gw = &app.gw;
    let tsh = app.tsh();
    let manual = || json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}});
    let sealed = tsh.card_info(ALICE.pan, Some(ALICE.exp)).unwrap();
    let a = tsh
        .check_eligibility_sealed("adm-reuse-1", &sealed, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let alice_ref = a.str("issuerCardRefId").unwrap().to_owned();

    let before = reuse_count(&get(gw, "/metrics").await.2);
    let d = tsh
        .request_digitization_sealed("adm-reuse-1", &sealed, "APPLE_PAY", manual())
        .await
        .unwrap();
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_eq!(d.str("issuerCardRefId"), Some(alice_ref.as_str()));
    assert_eq!(d.str("levelOfTrust"), Some("yellow"));
    assert!(reuse_count(&get(gw, "/metrics").await.2) >= before + 1.0);

    // Another card's envelope under the same correlation id is opened: it names that card.
    let d = tsh
        .request_digitization("adm-reuse-1", BOB.pan, BOB.exp, "APPLE_PAY", manual())
        .await
        .unwrap();
    assert_ne!(
        d.str("issuerCardRefId"),
        Some(alice_ref.as_str()),
        "{:?}",
        d.body
    );
    // The same envelope with a reference naming another card is refused, as when opened.
    let d = tsh
        .request_digitization_sealed(
            "adm-reuse-1",
            &sealed,
            "APPLE_PAY",
            json!({"issuerCardRefId": "someone-else"}),
        )
        .await
        .unwrap();
    assert_eq!(d.code(), 116, "{:?}", d.body);
    // A changed byte is opened (and fails) as before.
    let mut tampered = sealed.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let d = tsh
        .request_digitization_sealed("adm-reuse-1", &tampered, "APPLE_PAY", manual())
        .await
        .unwrap();
    assert_eq!(d.code(), 166, "{:?}", d.body);
    // The same envelope under another correlation id is opened too, and still names Alice.
    let d = tsh
        .request_digitization_sealed("adm-reuse-2", &sealed, "APPLE_PAY", manual())
        .await
        .unwrap();
    assert_eq!(d.str("issuerCardRefId"), Some(alice_ref.as_str()));
    app.gw.stop().await;
}

/// `simulate`, the real binary, against an in-process gateway: the walkthrough and a small load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_plays_enrolments_and_reports_percentiles() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let cards = app.fx.path().join("sim-cards.csv");
    std::fs::write(&cards, CARD_FILE).unwrap();
    let cert = app.fx.path().join("keys/issuer-pkcs7-cert.pem");
    let target = format!("http://{}", app.gw.api);
    let run = |extra: &'static [&'static str]| {
        let (cards, cert, target) = (cards.clone(), cert.clone(), target.clone());
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["simulate", "--target", &target, "--issuer-id", ISSUER_ID])
                .arg("--cert")
                .arg(&cert)
                .arg("--cards")
                .arg(&cards)
                .args(extra)
                .output()
                .unwrap()
        })
    };

    let out = run(&[]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "green",
        "yellow with SMS OTP",
        "yellow with e-mail OTP",
        "red",
        "sendOTP",
        "ACTIVATE",
        "refused, as expected",
        "every call was answered as expected",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    for pan in [ALICE.pan, BOB.pan, CLAIRE.pan, DAN.pan] {
        assert!(!stdout.contains(pan));
    }

    let out = run(&["--count", "12", "--concurrency", "3"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for needle in [
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "checkCardEligibility",
        "requestCardDigitization",
        "sendOTP",
        "notifyVirtualCardChange",
        "errors: none",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    assert!(stderr.contains("12 enrolments"), "{stderr}");

    // Paced: the same load at a set rate (latency at a given load, e.g. half the peak).
    let out = run(&["--count", "8", "--concurrency", "2", "--rate", "400"])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("paced at 400 enrolments/s"), "{stderr}");
    assert!(stdout.contains("errors: none"), "{stdout}");
    let out = run(&["--count", "3", "--rate", "0"]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a positive number"));

    // Request bodies for an external load client: distinct envelopes that the gateway opens,
    // no card number in clear, nothing sent meanwhile.
    let bodies = app.fx.path().join("eligibility.jsonl");
    let out = {
        let (cards, cert, target, bodies) =
            (cards.clone(), cert.clone(), target.clone(), bodies.clone());
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["simulate", "--target", &target, "--issuer-id", ISSUER_ID])
                .args(["--count", "6", "--write-requests"])
                .arg(&bodies)
                .arg("--cert")
                .arg(&cert)
                .arg("--cards")
                .arg(&cards)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&bodies).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let distinct: std::collections::HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(distinct.len(), 6, "every envelope sealed afresh");
    for pan in [ALICE.pan, BOB.pan, CLAIRE.pan, DAN.pan] {
        assert!(!text.contains(pan));
    }
    let tsh = app.tsh();
    for (i, line) in lines.iter().enumerate() {
        let body: serde_json::Value = serde_json::from_str(line).unwrap();
        let a = tsh
            .call("checkCardEligibility", &format!("sim-written-{i}"), &body)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert!(a.str("issuerCardRefId").is_some(), "{:?}", a.body);
    }

    // A gateway that is not there: non-zero exit, and the errors counted.
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args([
                "simulate",
                "--target",
                "http://127.0.0.1:9",
                "--issuer-id",
                ISSUER_ID,
                "--count",
                "3",
            ])
            .arg("--cert")
            .arg(&cert)
            .arg("--cards")
            .arg(&cards)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 x checkCardEligibility"));
    app.gw.stop().await;
}

/// A PAN glued to other digits, or written with spaces or dashes, in any identifier TSH sends:
/// neither the database nor the admin API holds it, and the admin API still finds the
/// enrolment by the identifier as sent.
async fn pans_glued_or_spaced_in_identifiers_never_reach_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pan = "4111111111111111";
    let cid = "c-14111111111111111";
    let card_ref = green(&app, cid, ALICE).await;
    let body = json!({
        "issuerCardRefId": card_ref,
        "virtualCardId": "vc-94111111111111111",
        "walletProviderId": "APPLE_PAY",
        "tokenStorageId": "ts 4111 1111 1111 1111",
        "action": "ACTIVATE",
        "source": "4111-1111-1111-1111",
    });
    let a = app
        .tsh()
        .call("notifyVirtualCardChange", cid, &body)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    // A refused call names a card reference holding a PAN behind other digits.
    let r = app
        .tsh()
        .call(
            "sendOTP",
            "c-2 4111 1111 1111 1111",
            &json!({"issuerCardRefId": "r-04111111111111111", "otpValue": "123456"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    let forms = [
        pan.to_owned(),
        "4111 1111 1111 1111".to_owned(),
        "4111-1111-1111-1111".to_owned(),
        "14111111111111111".to_owned(),
        "94111111111111111".to_owned(),
        "04111111111111111".to_owned(),
    ];
    let (status, view, text) = get(&app.gw, &format!("/enrolments/{cid}")).await;
    assert_eq!(status, 200, "found by the correlation id as sent: {text}");
    assert!(!view.is_null());
    let (_, _, tokens) = get(&app.gw, &format!("/cards/{card_ref}/tokens")).await;
    let stored = app.fx.database_text().await;
    for f in &forms {
        assert!(
            !text.contains(f.as_str()),
            "admin enrolment view holds {f}: {text}"
        );
        assert!(
            !tokens.contains(f.as_str()),
            "admin token view holds {f}: {tokens}"
        );
        assert!(!stored.contains(f.as_str()), "the database holds {f}");
    }
    assert!(text.contains("pan#"), "{text}");
    assert!(tokens.contains("pan#"), "{tokens}");
    app.gw.stop().await;
}

/// Without admin.token (loopback only), reads are open but every write is refused with 401 and
/// changes nothing.
async fn writes_need_the_token_even_on_loopback(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gw = &app.gw;
    let card_ref = green(&app, "adm-open-1", ALICE).await;
    let path = format!("/cards/{card_ref}");
    assert_eq!(get(gw, &path).await.0, 200, "reads stay open on loopback");
    for method in ["PATCH", "PUT", "POST", "DELETE"] {
        let (status, body, text) =
            admin(gw, method, &path, None, Some(json!({"status": "blocked"}))).await;
        assert_eq!(status, 401, "{method}: {text}");
        assert_eq!(body["error"], "unauthorized", "{text}");
    }
    let (_, card, _) = get(gw, &path).await;
    assert_eq!(card["status"], "active", "nothing changed");
    app.gw.stop().await;
}

/// A sealed phone number opens only as that card's: a database writer who copies one card's
/// sealed phone into another card's row gets no message to it. Details sealed by earlier
/// releases (unbound) are re-sealed, bound, when the gateway starts.
async fn contacts_are_bound_to_their_card(backend: Backend) {
    use issuer_gateway::data_keys::DataKeys;
    use issuer_gateway::domain::Pan;
    let fx = Fixture::new(&backend).await;
    let keys = DataKeys::from_file(fx.config.keys.pan_index_key_file.as_ref().unwrap()).unwrap();
    let index = |card: TestCard| keys.pan_index(&Pan::parse(card.pan).unwrap());
    // ALICE's phone as an earlier release stored it.
    let unbound = keys.seal_unbound("phone", ALICE.phone.unwrap());
    fx.sql(
        "UPDATE cards SET phone_sealed = $1 WHERE pan_index = $2",
        &[&unbound, &index(ALICE)],
    )
    .await;
    let gw = fx.start(|_| {}).await;
    let app = TestApp { fx, gw };
    let alice = app
        .gw
        .state
        .store
        .card_by_pan_index(&index(ALICE))
        .await
        .unwrap()
        .unwrap();
    let sealed = alice.phone_sealed.clone().unwrap();
    assert!(DataKeys::is_card_bound(&sealed), "re-sealed at start");
    let (card_ref, methods) = app.enrol_to_yellow("bound-1", ALICE, "APPLE_PAY").await;
    let a = app
        .tsh()
        .send_otp(
            "bound-1",
            &card_ref,
            "246801",
            Some(&methods[0].0),
            "APPLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(app.fx.outbox().len(), 1);
    // A database writer moves ALICE's sealed phone to BOB's card.
    app.fx
        .sql(
            "UPDATE cards SET phone_sealed = $1 WHERE pan_index = $2",
            &[&sealed, &index(BOB)],
        )
        .await;
    let (card_ref, methods) = app.enrol_to_yellow("bound-2", BOB, "APPLE_PAY").await;
    let sms = methods.iter().find(|m| m.1 == "sms").unwrap().0.clone();
    let a = app
        .tsh()
        .send_otp("bound-2", &card_ref, "135792", Some(&sms), "APPLE_PAY")
        .await
        .unwrap();
    assert_ne!(a.status, 200, "{:?}", a.body);
    let outbox = app.fx.outbox();
    assert_eq!(outbox.len(), 1, "nothing sent to the moved number");
    assert!(!outbox.iter().any(|m| m.contains("135792")));
    app.gw.stop().await;
}

/// Refused calls that belong to no enrolment on file and name no card of ours cost a caller
/// nothing: they are counted (metric), not stored; refusals of a real enrolment are stored up
/// to a cap.
async fn refusals_from_nowhere_are_counted_not_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let store = &app.gw.state.store;
    for i in 0..30 {
        let cid = format!("nowhere-{i}");
        let a = tsh
            .call(
                "sendOTP",
                &cid,
                &json!({"issuerCardRefId": format!("made-up-{i}"), "otpValue": "123456"}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 400, "{:?}", a.body);
        let b = tsh
            .call(
                "notifyVirtualCardChange",
                &cid,
                &json!({"issuerCardRefId": "x"}),
            )
            .await
            .unwrap();
        assert_eq!(b.status, 400, "{:?}", b.body);
        assert!(store.calls(&cid).await.unwrap().is_empty(), "{cid} stored");
        assert!(
            store.enrolment(&cid).await.unwrap().is_none(),
            "{cid} stored"
        );
    }
    let (_, _, metrics) = get(&app.gw, "/metrics").await;
    assert!(
        metrics.contains("issuer_gateway_refusals_not_recorded_total{operation=\"sendOTP\"}"),
        "{metrics}"
    );
    // A refusal about a card of ours is a real enrolment's: recorded.
    let a = tsh
        .check_eligibility("known-refused", DAN.pan, DAN.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 400);
    assert_eq!(store.calls("known-refused").await.unwrap().len(), 1);
    // An enrolment's refusals are recorded up to the cap.
    let cap = issuer_gateway::api::MAX_REFUSALS_RECORDED as usize;
    for _ in 0..cap + 5 {
        let a = tsh
            .call("sendOTP", "known-refused", &json!({"otpValue": "1"}))
            .await
            .unwrap();
        assert_eq!(a.status, 400);
    }
    let refused = store
        .calls("known-refused")
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.response_code != 200)
        .count();
    assert_eq!(refused, cap);
    app.gw.stop().await;
}
