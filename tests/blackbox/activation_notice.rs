//! The activation notice: after an ACTIVATE the cardholder is told, on the card's SMS (else its
//! e-mail), that the card was added to a wallet and whom to call when it was not them; once per
//! token even when the ACTIVATE arrives twice; through the durable notice queue, so TSH's answer
//! never waits for it; not counted against the OTP limits; not sent when the setting is off.

use crate::common::*;
use crate::delivery::{MESSAGES, accepted, twilio};
use crate::on_both_backends;
use issuer_gateway::store::CardholderNoticeRow;
use serde_json::json;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

on_both_backends!(
    the_cardholder_is_told_once_even_when_the_activate_arrives_twice,
    a_recent_change_of_phone_tells_the_previous_number_too,
);

/// The card's notices once `done` holds for them, waiting for the notice sender (up to 10 s).
async fn notices_when(
    app: &TestApp,
    card_ref: &str,
    done: impl Fn(&[CardholderNoticeRow]) -> bool,
) -> Vec<CardholderNoticeRow> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app
            .gw
            .state
            .store
            .cardholder_notices_of_card(card_ref)
            .await
            .unwrap();
        if done(&rows) || Instant::now() > until {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn notices_in_outbox(app: &TestApp) -> Vec<String> {
    app.fx
        .outbox()
        .into_iter()
        .filter(|m| m.contains("was added to"))
        .collect()
}

async fn activate(app: &TestApp, cid: &str, card_ref: &str, vcid: &str) {
    let a = app
        .tsh()
        .notify(cid, card_ref, vcid, "ACTIVATE", "GOOGLE_PAY", None)
        .await
        .unwrap();
    assert_eq!((a.status, a.body), (200, json!({})));
}

async fn the_cardholder_is_told_once_even_when_the_activate_arrives_twice(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.notices.support_phone = "+44 20 7946 0000".into();
    })
    .await;
    let (card_ref, _) = app.enrol_to_yellow("an-1", ALICE, "GOOGLE_PAY").await;
    // The same notice twice, then once more under another correlation id.
    activate(&app, "an-1", &card_ref, "VC-AN-1").await;
    activate(&app, "an-1", &card_ref, "VC-AN-1").await;
    activate(&app, "an-1-again", &card_ref, "VC-AN-1").await;
    let rows = notices_when(&app, &card_ref, |r| r.iter().all(|n| n.state != "waiting")).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let n = &rows[0];
    assert_eq!(
        (n.kind.as_str(), n.state.as_str(), n.channel.as_deref()),
        ("token_activated", "sent", Some("sms"))
    );
    assert_eq!(n.provider.as_deref(), Some("outbox"));
    assert_eq!(n.virtual_card_id, "VC-AN-1");
    let masked = n.destination_masked.clone().unwrap();
    assert!(!masked.contains("900123"), "{masked}");
    let sent = notices_in_outbox(&app);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("To: +447700900123"), "{}", sent[0]);
    assert!(
        sent[0].contains(
            "Your card ending 1111 was added to Google Pay on a new device. Not you? Call +44 20 7946 0000 now."
        ),
        "{}",
        sent[0]
    );
    // /health counts the notices by state.
    let health: serde_json::Value = reqwest::get(format!("http://{}/health", app.gw.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["cardholderNotices"], json!({"sent": 1}), "{health}");
    // The card's token view says what the cardholder was told, masked.
    let view: serde_json::Value =
        reqwest::get(format!("http://{}/cards/{card_ref}/tokens", app.gw.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let told = &view["tokens"][0]["cardholderNotices"];
    assert_eq!(told.as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(told[0]["state"], "sent");
    assert_eq!(told[0]["destination"], "+********0123");
    assert!(!view.to_string().contains("900123"), "{view}");
    // Not an OTP send: nothing counts against the OTP limits.
    assert!(app.gw.state.store.sends("an-1").await.unwrap().is_empty());

    // Another token of the same card gets its own notice.
    activate(&app, "an-2", &card_ref, "VC-AN-2").await;
    let rows = notices_when(&app, &card_ref, |r| {
        r.len() == 2 && r.iter().all(|n| n.state == "sent")
    })
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(notices_in_outbox(&app).len(), 2);
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notice_when_the_setting_is_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.notices.token_activated = false).await;
    let (card_ref, _) = app.enrol_to_yellow("an-off", ALICE, "GOOGLE_PAY").await;
    activate(&app, "an-off", &card_ref, "VC-AN-OFF").await;
    let token = app
        .gw
        .state
        .store
        .token("VC-AN-OFF")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.state, "active");
    // Nothing is queued, so nothing can be sent.
    let rows = app
        .gw
        .state
        .store
        .cardholder_notices_of_card(&card_ref)
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    assert!(notices_in_outbox(&app).is_empty());
    app.gw.stop().await;
}

/// An e-mail-only card is told by e-mail, in its language, naming the device the digitization
/// named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_only_card_is_told_by_email() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let a = app
        .tsh()
        .check_eligibility("an-mail", CLAIRE.pan, CLAIRE.exp, "APPLE_PAY")
        .await
        .unwrap();
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    let d = app
        .tsh()
        .request_digitization(
            "an-mail",
            CLAIRE.pan,
            CLAIRE.exp,
            "APPLE_PAY",
            json!({"deviceInformation": {"manufacturer": "Apple", "model": "iPhone 15"}}),
        )
        .await
        .unwrap();
    assert_eq!(d.status, 200, "{:?}", d.body);
    let a = app
        .tsh()
        .notify(
            "an-mail",
            &card_ref,
            "VC-AN-MAIL",
            "ACTIVATE",
            "APPLE_PAY",
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let rows = notices_when(&app, &card_ref, |r| r.iter().all(|n| n.state == "sent")).await;
    assert_eq!(rows[0].channel.as_deref(), Some("email"), "{rows:?}");
    let sent = app
        .fx
        .outbox()
        .into_iter()
        .filter(|m| m.contains("To: claire.dubois@example.fr"))
        .collect::<Vec<_>>();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("Subject: Votre carte a été ajoutée à Apple Pay"),
        "{}",
        sent[0]
    );
    let (_, body) = sent[0].split_once("\n\n").unwrap();
    assert!(
        body.contains("Votre carte se terminant par 5556 vient d'être ajoutée à Apple Pay sur l'appareil Apple iPhone 15."),
        "{body}"
    );
    app.gw.stop().await;
}

/// TSH's answer never waits for the notice: with an SMS gateway that takes 1.5 s (and refuses
/// once), the ACTIVATE is answered at once; the refused notice is sent again after its back-off
/// (the test's clock moves), and reaches the cardholder once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_never_waits_and_a_refused_notice_is_sent_again() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(1_500)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted("SM00000000000000000000000000000099"))
        .with_priority(2)
        .mount(&gateway)
        .await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| twilio(c, &gateway.uri(), 2_500)).await;
    let a = app
        .tsh()
        .check_eligibility("an-slow", ALICE.pan, ALICE.exp, "GOOGLE_PAY")
        .await
        .unwrap();
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    let started = Instant::now();
    activate(&app, "an-slow", &card_ref, "VC-AN-SLOW").await;
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "the answer waited {:?}",
        started.elapsed()
    );
    // The first attempt is refused (after 1.5 s): waiting again, with its back-off.
    let rows = notices_when(&app, &card_ref, |r| {
        r.first()
            .is_some_and(|n| n.attempts == 1 && n.last_error.is_some())
    })
    .await;
    assert_eq!(rows[0].state, "waiting", "{rows:?}");
    let requests = || async { gateway.received_requests().await.unwrap().len() };
    assert_eq!(requests().await, 1);
    app.fx.advance_ms(2_000);
    let rows = notices_when(&app, &card_ref, |r| {
        r.first().is_some_and(|n| n.state == "sent")
    })
    .await;
    assert_eq!(rows[0].state, "sent", "{rows:?}");
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(rows[0].provider.as_deref(), Some("twilio"));
    assert_eq!(requests().await, 2);
    app.gw.stop().await;
}

/// After an account takeover the new number may be the fraudster's: when the card's phone
/// changed within the destination-change control's window, the previous number is told too;
/// once the window is over, only the current one.
async fn a_recent_change_of_phone_tells_the_previous_number_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let report = app
        .fx
        .import(
            "pan,exp,status,product_id,phone,email,language,wallets\n\
             4111111111111111,1229,active,VISA_PLATINUM,+447700900999,alice.martin@example.com,en,\n",
        )
        .await;
    assert_eq!(report.updated, 1, "{report:?}");
    let a = app
        .tsh()
        .check_eligibility("an-prev", ALICE.pan, ALICE.exp, "GOOGLE_PAY")
        .await
        .unwrap();
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    activate(&app, "an-prev", &card_ref, "VC-AN-PREV").await;
    let rows = notices_when(&app, &card_ref, |r| {
        r.len() == 2 && r.iter().all(|n| n.state == "sent")
    })
    .await;
    let targets: Vec<(&str, &str)> = rows
        .iter()
        .map(|n| (n.target.as_str(), n.state.as_str()))
        .collect();
    assert_eq!(
        targets,
        [("current", "sent"), ("previous", "sent")],
        "{rows:?}"
    );
    let sent = notices_in_outbox(&app);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().any(|m| m.contains("To: +447700900999")),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|m| m.contains("To: +447700900123")),
        "{sent:?}"
    );

    // 73 hours later the change is no longer recent: another token tells the current number only.
    app.fx.advance_ms(73 * 3_600_000);
    activate(&app, "an-prev-2", &card_ref, "VC-AN-PREV-2").await;
    let rows = notices_when(&app, &card_ref, |r| {
        r.len() >= 3 && r.iter().all(|n| n.state == "sent")
    })
    .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2].target, "current");
    let sent = notices_in_outbox(&app);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(
        sent.iter()
            .filter(|m| m.contains("To: +447700900123"))
            .count(),
        1,
        "{sent:?}"
    );
    app.gw.stop().await;
}
