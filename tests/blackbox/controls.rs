//! Fraud controls and rate limits before every send: each refuses with its code, each limit
//! allows exactly its quota, windows reopen exactly at their edge, and concurrency never lets
//! more through.

use crate::common::*;
use crate::on_both_backends;

on_both_backends!(
    fraud_controls_refuse_with_134,
    per_enrolment_limit_counts_sends_not_failures,
    per_card_window_reopens_exactly_at_its_edge,
    per_destination_limit_spans_cards,
    channel_budget_per_second,
    concurrent_sends_for_one_card_never_exceed_the_quota,
);

const HOUR: i64 = 3_600_000;

fn assert_refused(a: &issuer_gateway::sim::Answer, code: u64, words: &str) {
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.body["responseCode"], code, "{:?}", a.body);
    assert!(
        a.body["errorMessage"].as_str().unwrap().contains(words),
        "{:?}",
        a.body
    );
}

async fn fraud_controls_refuse_with_134(backend: Backend) {
    // The same enrolment is served for days here (the hold is counted in hours).
    let app = TestApp::spawn_with(backend, |c| {
        c.controls.sms_allowed_calling_codes = vec!["44".into(), "1".into()];
        c.controls.step_up_max_age_minutes = 10_080;
    })
    .await;
    let tsh = app.tsh();
    let (card_ref, methods) = app.enrol_to_yellow("fc-1", ALICE, "APPLE_PAY").await;
    let sms = methods[0].0.clone();
    // The phone changes after the methods were offered: the SMS channel is held for 72 hours.
    app.fx.import("pan,exp,status,product_id,phone,email\n4111111111111111,1229,active,VISA_PLATINUM,+447700900555,alice.martin@example.com\n").await;
    assert_refused(
        &tsh.send_otp("fc-1", &card_ref, "111111", Some(&sms), "APPLE_PAY")
            .await
            .unwrap(),
        170,
        "destination changed recently",
    );
    // ... and a new enrolment is offered e-mail only.
    let (_, offered) = app.enrol_to_yellow("fc-2", ALICE, "APPLE_PAY").await;
    assert_eq!(
        offered.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        vec!["email"]
    );
    // 72 hours later, to the millisecond, SMS is usable again.
    app.fx.advance_ms(72 * HOUR - 5_000);
    assert_refused(
        &tsh.send_otp("fc-1", &card_ref, "111112", Some(&sms), "APPLE_PAY")
            .await
            .unwrap(),
        170,
        "changed recently",
    );
    app.fx.advance_ms(5_000);
    let a = tsh
        .send_otp("fc-1", &card_ref, "111113", Some(&sms), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    // SMS to a country not allowed.
    app.fx
        .import(
            "pan,exp,status,product_id,phone\n5555555555554444,0630,active,MC_WORLD,+33612345678\n",
        )
        .await;
    app.fx.advance_ms(73 * HOUR);
    let (bob_ref, bob_methods) = app.enrol_to_yellow("fc-3", BOB, "APPLE_PAY").await;
    assert_refused(
        &tsh.send_otp(
            "fc-3",
            &bob_ref,
            "222222",
            Some(&bob_methods[0].0),
            "APPLE_PAY",
        )
        .await
        .unwrap(),
        170,
        "country",
    );
    let calls = app.gw.state.store.calls("fc-3").await.unwrap();
    assert_eq!(
        calls.last().map(|c| c.response_code),
        Some(170),
        "refusals are recorded with the enrolment"
    );
    assert_eq!(app.fx.outbox().len(), 1);
    app.gw.stop().await;
}

async fn per_enrolment_limit_counts_sends_not_failures(backend: Backend) {
    // The same enrolment is served for days here (the limit has no window).
    let app = TestApp::spawn_with(backend, |c| c.controls.step_up_max_age_minutes = 10_080).await;
    let tsh = app.tsh();
    let (card_ref, methods) = app.enrol_to_yellow("pe-1", ALICE, "APPLE_PAY").await;
    let sms = methods[0].0.clone();
    // Two deliveries that fail (the channel is broken) do not count.
    let outbox = app.fx.config.outbox.dir.clone();
    std::fs::rename(&outbox, outbox.with_extension("saved")).unwrap();
    std::fs::write(&outbox, b"broken").unwrap();
    for otp in ["900001", "900002"] {
        assert_eq!(
            tsh.send_otp("pe-1", &card_ref, otp, Some(&sms), "APPLE_PAY")
                .await
                .unwrap()
                .code(),
            911
        );
    }
    std::fs::remove_file(&outbox).unwrap();
    std::fs::rename(outbox.with_extension("saved"), &outbox).unwrap();
    for otp in ["100001", "100002", "100003"] {
        assert_eq!(
            tsh.send_otp("pe-1", &card_ref, otp, Some(&sms), "APPLE_PAY")
                .await
                .unwrap()
                .status,
            200,
            "{otp}"
        );
    }
    assert_refused(
        &tsh.send_otp(
            "pe-1",
            &card_ref,
            "100004",
            Some(&methods[1].0),
            "APPLE_PAY",
        )
        .await
        .unwrap(),
        164,
        "sends per enrolment",
    );
    // A retry of an accepted send is not a new send: still 200.
    assert_eq!(
        tsh.send_otp("pe-1", &card_ref, "100003", Some(&sms), "APPLE_PAY")
            .await
            .unwrap()
            .status,
        200
    );
    // The per-enrolment limit has no window.
    app.fx.advance_ms(48 * HOUR);
    assert_refused(
        &tsh.send_otp("pe-1", &card_ref, "100005", Some(&sms), "APPLE_PAY")
            .await
            .unwrap(),
        164,
        "per enrolment",
    );
    assert_eq!(app.fx.outbox().len(), 3);
    app.gw.stop().await;
}

async fn per_card_window_reopens_exactly_at_its_edge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let (card_ref, m1) = app.enrol_to_yellow("pc-1", ALICE, "APPLE_PAY").await;
    let (_, m2) = app.enrol_to_yellow("pc-2", ALICE, "APPLE_PAY").await;
    for otp in ["1", "2", "3"] {
        assert_eq!(
            tsh.send_otp("pc-1", &card_ref, otp, Some(&m1[1].0), "APPLE_PAY")
                .await
                .unwrap()
                .status,
            200
        );
    }
    app.fx.advance_ms(10 * 60_000);
    for otp in ["4", "5"] {
        assert_eq!(
            tsh.send_otp("pc-2", &card_ref, otp, Some(&m2[1].0), "APPLE_PAY")
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_refused(
        &tsh.send_otp("pc-2", &card_ref, "6", Some(&m2[1].0), "APPLE_PAY")
            .await
            .unwrap(),
        164,
        "sends per card",
    );
    // The first three sends leave the window exactly one hour after they were made.
    app.fx.advance_ms(50 * 60_000 - 1);
    let (_, m3) = app.enrol_to_yellow("pc-3", ALICE, "APPLE_PAY").await;
    assert_refused(
        &tsh.send_otp("pc-3", &card_ref, "7", Some(&m3[1].0), "APPLE_PAY")
            .await
            .unwrap(),
        164,
        "sends per card",
    );
    app.fx.advance_ms(1);
    for otp in ["8", "9", "10"] {
        assert_eq!(
            tsh.send_otp("pc-3", &card_ref, otp, Some(&m3[1].0), "APPLE_PAY")
                .await
                .unwrap()
                .status,
            200,
            "{otp}"
        );
    }
    let (_, m4) = app.enrol_to_yellow("pc-4", ALICE, "APPLE_PAY").await;
    assert_refused(
        &tsh.send_otp("pc-4", &card_ref, "11", Some(&m4[1].0), "APPLE_PAY")
            .await
            .unwrap(),
        164,
        "sends per card",
    );
    app.gw.stop().await;
}

async fn per_destination_limit_spans_cards(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.limits.sends_per_card = 100).await;
    // Two more cards share one phone number.
    app.fx
        .import(
            "pan,exp,status,product_id,phone\n\
             4917610000000000,1229,active,VISA_CLASSIC,+447700900999\n\
             4035501000000008,1229,active,VISA_CLASSIC,+447700900999\n",
        )
        .await;
    let a = TestCard {
        pan: "4917610000000000",
        exp: "1229",
        phone: None,
        email: None,
    };
    let b = TestCard {
        pan: "4035501000000008",
        exp: "1229",
        phone: None,
        email: None,
    };
    let tsh = app.tsh();
    let mut sent = 0;
    for (i, card) in [a, a, b].into_iter().enumerate() {
        let cid = format!("pd-{i}");
        let (card_ref, m) = app.enrol_to_yellow(&cid, card, "APPLE_PAY").await;
        for n in 0..3 {
            let ans = tsh
                .send_otp(
                    &cid,
                    &card_ref,
                    &format!("{i}{n}"),
                    Some(&m[0].0),
                    "APPLE_PAY",
                )
                .await
                .unwrap();
            if sent < 5 {
                assert_eq!(ans.status, 200, "{:?}", ans.body);
                sent += 1;
            } else {
                assert_refused(&ans, 164, "sends per destination");
            }
        }
    }
    assert_eq!(sent, 5);
    // ALICE's own phone is untouched by that limit.
    let (card_ref, m) = app.enrol_to_yellow("pd-alice", ALICE, "APPLE_PAY").await;
    assert_eq!(
        tsh.send_otp("pd-alice", &card_ref, "7", Some(&m[0].0), "APPLE_PAY")
            .await
            .unwrap()
            .status,
        200
    );
    app.gw.stop().await;
}

async fn channel_budget_per_second(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.limits.sms_per_second = 2).await;
    let tsh = app.tsh();
    let mut enrolments = Vec::new();
    for (i, card) in [ALICE, BOB, ALICE].into_iter().enumerate() {
        let cid = format!("cb-{i}");
        let (card_ref, m) = app.enrol_to_yellow(&cid, card, "GOOGLE_PAY").await;
        enrolments.push((cid, card_ref, m));
    }
    let send = |i: usize, otp: &'static str, channel: usize| {
        let (cid, card_ref, m) = &enrolments[i];
        tsh.send_otp(cid, card_ref, otp, Some(&m[channel].0), "GOOGLE_PAY")
    };
    assert_eq!(send(0, "1", 0).await.unwrap().status, 200);
    assert_eq!(send(1, "2", 0).await.unwrap().status, 200);
    assert_refused(&send(2, "3", 0).await.unwrap(), 164, "channel budget");
    // The e-mail channel has its own budget.
    assert_eq!(send(2, "4", 1).await.unwrap().status, 200);
    app.fx.advance_ms(999);
    assert_refused(&send(2, "5", 0).await.unwrap(), 164, "channel budget");
    app.fx.advance_ms(1);
    assert_eq!(send(2, "6", 0).await.unwrap().status, 200);
    app.gw.stop().await;
}

async fn concurrent_sends_for_one_card_never_exceed_the_quota(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.limits.sms_per_second = 1000;
        c.limits.email_per_second = 1000;
    })
    .await;
    let mut enrolments = Vec::new();
    for i in 0..17 {
        let cid = format!("cc-{i}");
        let (card_ref, m) = app.enrol_to_yellow(&cid, ALICE, "APPLE_PAY").await;
        enrolments.push((cid, card_ref, m));
    }
    let mut tasks = Vec::new();
    for n in 0..50usize {
        let (cid, card_ref, m) = enrolments[n % 17].clone();
        let tsh = app.tsh().clone();
        tasks.push(tokio::spawn(async move {
            tsh.send_otp(
                &cid,
                &card_ref,
                &format!("{n:06}"),
                Some(&m[n % 2].0),
                "APPLE_PAY",
            )
            .await
            .unwrap()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let a = t.await.unwrap();
        match a.code() {
            200 => ok += 1,
            164 => limited += 1,
            other => panic!("unexpected answer {other}: {:?}", a.body),
        }
    }
    assert_eq!(
        (ok, limited),
        (5, 45),
        "exactly the per-card quota goes out"
    );
    assert_eq!(app.fx.outbox().len(), 5);
    app.gw.stop().await;
}
