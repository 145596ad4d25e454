//! Crash safety: the real server is killed with SIGKILL again and again under a stream of
//! notices and sends, restarted, and every call it answered 200 is found recorded, with nothing
//! half-written.
//!
//! What this cannot prove: power-cut safety. A killed process leaves the kernel's page cache
//! behind, so a commit that was written but never synced to the disk (a missing fsync, SQLite
//! `synchronous` below FULL, PostgreSQL `fsync` or `synchronous_commit` off) survives here and
//! would be lost in a power cut. That part is checked by `commits_are_synced_to_disk` below,
//! which reads the settings the writing connection actually runs with; the outbox's own fsync
//! before its rename is not tested.

use crate::common::*;
use issuer_gateway::sim::Tsh;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
enum Sent {
    Notice { virtual_card_id: String },
    Otp { correlation_id: String },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_answered() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let db = dir.path().join("gw.db");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[limits]\nsends_per_enrolment = 1000\nsends_per_card = 100000\nsends_per_destination = 100000\nsms_per_second = 100000\nemail_per_second = 100000\n");
    std::fs::write(&config, text).unwrap();
    std::fs::write(dir.path().join("cards.csv"), CARD_FILE).unwrap();
    let out = bin()
        .args(["cards", "import", "--config"])
        .arg(&config)
        .arg(dir.path().join("cards.csv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let cert = std::fs::read_to_string(dir.path().join("keys/issuer-pkcs7-cert.pem")).unwrap();

    // Enrolments in step-up to send OTPs on, made on a first instance.
    let served = Served::start(&config);
    let tsh = Tsh::new(
        &format!("http://{}/issuer/igwapi/v2.0", served.api),
        ISSUER_ID,
        &cert,
    )
    .unwrap();
    let mut enrolments = Vec::new();
    for (i, card) in [ALICE, BOB].into_iter().enumerate() {
        let cid = format!("crash-enrol-{i}");
        let a = tsh
            .check_eligibility(&cid, card.pan, card.exp, "APPLE_PAY")
            .await
            .unwrap();
        let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
        let d = tsh
            .request_digitization(
                &cid,
                card.pan,
                card.exp,
                "APPLE_PAY",
                serde_json::json!({"captureMethod": "MANUAL"}),
            )
            .await
            .unwrap();
        let method = methods(&d.body)[0].0.clone();
        enrolments.push((cid, card_ref, method));
    }
    served.stop();

    let answered: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::new()));
    let seq = Arc::new(AtomicUsize::new(0));
    for round in 0..5usize {
        let served = Served::start(&config);
        let tsh = Tsh::new(
            &format!("http://{}/issuer/igwapi/v2.0", served.api),
            ISSUER_ID,
            &cert,
        )
        .unwrap();
        let done_in_round = Arc::new(AtomicUsize::new(0));
        let kill_after = 25 + 10 * round;
        let reached = Arc::new(tokio::sync::Notify::new());
        let mut workers = Vec::new();
        for w in 0..6usize {
            let (tsh, answered, seq, done, reached) = (
                tsh.clone(),
                answered.clone(),
                seq.clone(),
                done_in_round.clone(),
                reached.clone(),
            );
            let enrolments = enrolments.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let n = seq.fetch_add(1, Ordering::SeqCst);
                    let result = if w % 2 == 0 {
                        let vcid = format!("VC-crash-{n}");
                        let (cid, card_ref, _) = &enrolments[n % enrolments.len()];
                        tsh.notify(
                            &format!("{cid}-n{n}"),
                            card_ref,
                            &vcid,
                            "ACTIVATE",
                            "APPLE_PAY",
                            Some(("4895370012345678", "1229")),
                        )
                        .await
                        .map(|a| {
                            (
                                a.status,
                                Sent::Notice {
                                    virtual_card_id: vcid,
                                },
                            )
                        })
                    } else {
                        let (cid, card_ref, method) = &enrolments[n % enrolments.len()];
                        tsh.send_otp(cid, card_ref, &format!("{n:08}"), Some(method), "APPLE_PAY")
                            .await
                            .map(|a| {
                                (
                                    a.status,
                                    Sent::Otp {
                                        correlation_id: cid.clone(),
                                    },
                                )
                            })
                    };
                    match result {
                        Ok((200, sent)) => {
                            answered.lock().unwrap().push(sent);
                            if done.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                                reached.notify_one();
                            }
                        }
                        Ok((status, _)) => panic!("unexpected status {status} before the kill"),
                        Err(_) => return, // the server is gone
                    }
                }
            }));
        }
        reached.notified().await;
        served.kill();
        for w in workers {
            w.await.unwrap();
        }
    }

    // A last clean start: recovery works, and the records can be read.
    let served = Served::start(&config);
    let health = reqwest::get(format!("http://{}/health", served.admin))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    served.stop();

    let store = issuer_gateway::store::Store::connect(
        &format!("sqlite://{}", db.display()),
        1,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let answered = answered.lock().unwrap().clone();
    let mut otps_answered: HashMap<String, usize> = HashMap::new();
    let mut notices = 0;
    for sent in &answered {
        match sent {
            Sent::Notice { virtual_card_id } => {
                notices += 1;
                let token = store.token(virtual_card_id).await.unwrap();
                assert_eq!(
                    token.map(|t| t.state),
                    Some("active".to_owned()),
                    "{virtual_card_id} was answered 200 but is not recorded"
                );
                assert_eq!(store.token_events(virtual_card_id).await.unwrap().len(), 1);
            }
            Sent::Otp { correlation_id } => {
                *otps_answered.entry(correlation_id.clone()).or_default() += 1
            }
        }
    }
    // The OTP messages (the activation notices after the ACTIVATEs go to the outbox too).
    let outbox: Vec<String> = outbox_messages(&dir.path().join("outbox"))
        .into_iter()
        .filter(|m| !m.contains(" was added to "))
        .collect();
    let mut accepted_total = 0;
    for (cid, _, _) in &enrolments {
        let sends = store.sends(cid).await.unwrap();
        for s in &sends {
            assert!(
                ["pending", "accepted", "refused", "timeout"].contains(&s.outcome.as_str()),
                "{s:?}"
            );
        }
        let accepted = sends
            .iter()
            .filter(|s| s.outcome.as_str() == "accepted")
            .count();
        let answered_ok = otps_answered.get(cid).copied().unwrap_or(0);
        assert!(
            accepted >= answered_ok,
            "{cid}: {answered_ok} sends answered 200, {accepted} recorded accepted"
        );
        accepted_total += accepted;
    }
    // Every accepted send has its whole message; no visible message is cut short.
    assert!(
        outbox.len() >= accepted_total,
        "{} messages for {accepted_total} accepted sends",
        outbox.len()
    );
    for m in &outbox {
        assert!(
            m.starts_with("Channel: sms\nTo: +44")
                && m.ends_with("Never share it, not even with us."),
            "half-written message: {m:?}"
        );
    }
    eprintln!(
        "5 SIGKILLs: {} calls answered 200 ({notices} notices, {} sends), {accepted_total} sends recorded accepted, {} messages",
        answered.len(),
        answered.len() - notices,
        outbox.len()
    );
    assert!(notices > 0 && accepted_total > 0);
}

crate::on_both_backends!(commits_are_synced_to_disk);

/// The writing connection commits durably (SQLite FULL in WAL mode; PostgreSQL fsync and
/// synchronous_commit on), so a 200 survives a power cut, not only a killed process.
async fn commits_are_synced_to_disk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.gw.state.store.commits_are_durable().await.unwrap(),
        Ok(())
    );
    app.gw.stop().await;
}
