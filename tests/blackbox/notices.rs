//! Token notices: idempotent, out-of-order safe, linked to the enrolment.

use crate::common::*;
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    duplicate_and_out_of_order_notices,
    delete_fails_enrolment_and_erase_wipes,
    a_notice_with_an_error_code_changes_no_state,
);

async fn duplicate_and_out_of_order_notices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let store = &app.gw.state.store;
    let (card_ref, _) = app.enrol_to_yellow("nt-1", ALICE, "APPLE_PAY").await;
    // ACTIVATE twice: recorded once.
    for _ in 0..2 {
        let a = tsh
            .notify(
                "nt-1",
                &card_ref,
                "VC-1",
                "ACTIVATE",
                "APPLE_PAY",
                Some(("4895370012345678", "1229")),
            )
            .await
            .unwrap();
        assert_eq!((a.status, a.body), (200, json!({})));
    }
    let events = store.token_events("VC-1").await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(store.token("VC-1").await.unwrap().unwrap().state, "active");
    // Life cycle with its own correlation ids; mixed case actions.
    assert_eq!(
        tsh.notify("lcm-1", &card_ref, "VC-1", "Suspend", "APPLE_PAY", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        store.token("VC-1").await.unwrap().unwrap().state,
        "suspended"
    );
    // A late ACTIVATE (another session id) does not undo the suspension.
    assert_eq!(
        tsh.notify("late-1", &card_ref, "VC-1", "ACTIVATE", "APPLE_PAY", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        store.token("VC-1").await.unwrap().unwrap().state,
        "suspended"
    );
    assert_eq!(
        tsh.notify("lcm-2", &card_ref, "VC-1", "RESUME", "APPLE_PAY", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(store.token("VC-1").await.unwrap().unwrap().state, "active");
    assert_eq!(
        tsh.notify("lcm-3", &card_ref, "VC-1", "DELETE", "APPLE_PAY", None)
            .await
            .unwrap()
            .status,
        200
    );
    // Late notices never resurrect a deleted token.
    // ("lcm-2", "RESUME") is a replay of a notice already recorded: it changes nothing at all.
    for (cid, action) in [
        ("late-3", "RESUME"),
        ("late-2", "ACTIVATE"),
        ("lcm-4", "RENEW"),
        ("lcm-2", "RESUME"),
    ] {
        assert_eq!(
            tsh.notify(cid, &card_ref, "VC-1", action, "APPLE_PAY", None)
                .await
                .unwrap()
                .status,
            200
        );
        assert_eq!(
            store.token("VC-1").await.unwrap().unwrap().state,
            "deleted",
            "{action}"
        );
    }
    // The enrolment stays complete; the token history has every distinct notice.
    assert_eq!(
        store.enrolment("nt-1").await.unwrap().unwrap().state,
        "complete"
    );
    let history: Vec<(String, String)> = store
        .token_events("VC-1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.state_after))
        .collect();
    assert_eq!(
        history,
        vec![
            ("ACTIVATE".into(), "active".into()),
            ("SUSPEND".into(), "suspended".into()),
            ("ACTIVATE".into(), "suspended".into()),
            ("RESUME".into(), "active".into()),
            ("DELETE".into(), "deleted".into()),
            ("RESUME".into(), "deleted".into()),
            ("ACTIVATE".into(), "deleted".into()),
            ("RENEW".into(), "deleted".into()),
        ]
    );
    // An unknown action is kept, not refused.
    assert_eq!(
        tsh.notify("lcm-5", &card_ref, "VC-2", "TELEPORT", "APPLE_PAY", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(store.token("VC-2").await.unwrap().unwrap().state, "pending");
    app.gw.stop().await;
}

async fn delete_fails_enrolment_and_erase_wipes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let store = &app.gw.state.store;
    let (card_ref, _) = app.enrol_to_yellow("nt-2", BOB, "GOOGLE_PAY").await;
    let body = json!({"issuerCardRefId": card_ref, "virtualCardId": "VC-9", "walletProviderId": "GOOGLE_PAY", "action": "DELETE", "source": "TSP"});
    assert_eq!(
        tsh.call("notifyVirtualCardChange", "nt-2", &body)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        store.enrolment("nt-2").await.unwrap().unwrap().state,
        "failed"
    );
    let ev = store.token_events("VC-9").await.unwrap();
    assert_eq!(
        (ev[0].source.as_deref(), ev[0].error_code),
        (Some("TSP"), None)
    );
    // ERASE wipes what we kept of the token.
    let (card_ref, _) = app.enrol_to_yellow("nt-3", BOB, "GOOGLE_PAY").await;
    tsh.notify(
        "nt-3",
        &card_ref,
        "VC-10",
        "ACTIVATE",
        "GOOGLE_PAY",
        Some(("5204730000009876", "1130")),
    )
    .await
    .unwrap();
    assert_eq!(
        store
            .token("VC-10")
            .await
            .unwrap()
            .unwrap()
            .dpan_last4
            .as_deref(),
        Some("9876")
    );
    tsh.notify("gdpr-1", &card_ref, "VC-10", "ERASE", "GOOGLE_PAY", None)
        .await
        .unwrap();
    let t = store.token("VC-10").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.dpan_last4, t.dpan_exp),
        ("deleted", None, None)
    );
    app.gw.stop().await;
}

on_both_backends!(
    update_moves_the_token_to_the_renewed_card,
    a_file_without_contact_columns_keeps_them
);

async fn update_moves_the_token_to_the_renewed_card(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let store = &app.gw.state.store;
    let (alice_ref, _) = app.enrol_to_yellow("up-1", ALICE, "APPLE_PAY").await;
    let bob_ref = tsh
        .check_eligibility("up-2", BOB.pan, BOB.exp, "APPLE_PAY")
        .await
        .unwrap()
        .str("issuerCardRefId")
        .unwrap()
        .to_owned();
    tsh.notify("up-1", &alice_ref, "VC-UP", "ACTIVATE", "APPLE_PAY", None)
        .await
        .unwrap();
    // The card was replaced: TSH says the token now funds from the new card.
    assert_eq!(
        tsh.notify("upd-1", &bob_ref, "VC-UP", "UPDATE", "APPLE_PAY", None)
            .await
            .unwrap()
            .status,
        200
    );
    let t = store.token("VC-UP").await.unwrap().unwrap();
    assert_eq!(
        (t.card_ref.as_str(), t.state.as_str()),
        (bob_ref.as_str(), "active")
    );
    assert!(store.tokens_of_card(&alice_ref).await.unwrap().is_empty());
    app.gw.stop().await;
}

async fn a_file_without_contact_columns_keeps_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A status-only file: the card is blocked, its phone and e-mail stay, no hold starts.
    let r = app
        .fx
        .import("pan,exp,status,product_id\n4111111111111111,1229,active,VISA_GOLD\n")
        .await;
    assert_eq!((r.added, r.updated), (0, 1));
    let (_, methods) = app.enrol_to_yellow("keep-1", ALICE, "APPLE_PAY").await;
    let kinds: Vec<(&str, &str)> = methods
        .iter()
        .map(|m| (m.1.as_str(), m.2.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![("sms", "+********0123"), ("email", "al***@example.com")]
    );
    app.gw.stop().await;
}

/// A notice carrying `errorCode` reports a life-cycle operation that failed (221: the device was
/// unreachable): it is recorded with its code, and the token and the enrolment keep their state.
async fn a_notice_with_an_error_code_changes_no_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let store = &app.gw.state.store;
    let (card_ref, _) = app.enrol_to_yellow("ne-1", ALICE, "APPLE_PAY").await;
    let failed = |vcid: &str, action: &str| {
        json!({
            "issuerCardRefId": card_ref, "virtualCardId": vcid, "walletProviderId": "APPLE_PAY",
            "action": action, "errorCode": 221, "tokenInfo": tsh.seal(&json!({"dpan": "4895370012345678", "exp": "1229"})).unwrap(),
        })
        .to_string()
    };
    // A failed ACTIVATE of a token not seen before: recorded, not active, enrolment not complete.
    let body: serde_json::Value = serde_json::from_str(&failed("VC-E1", "ACTIVATE")).unwrap();
    let a = tsh
        .call("notifyVirtualCardChange", "ne-1", &body)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let token = store.token("VC-E1").await.unwrap().unwrap();
    assert_eq!(token.state, "pending");
    assert!(
        token.dpan_last4.is_none(),
        "a failed operation keeps no token details"
    );
    assert_ne!(
        store.enrolment("ne-1").await.unwrap().unwrap().state,
        "complete"
    );
    // The real activation, then a failed DELETE and a failed ERASE: still active, details kept.
    let a = tsh
        .notify(
            "ne-1",
            &card_ref,
            "VC-E1",
            "ACTIVATE",
            "APPLE_PAY",
            Some(("4895370012345678", "1229")),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    for (cid, action) in [
        ("ne-lcm-1", "DELETE"),
        ("ne-lcm-2", "ERASE"),
        ("ne-lcm-3", "SUSPEND"),
    ] {
        let body: serde_json::Value = serde_json::from_str(&failed("VC-E1", action)).unwrap();
        let a = tsh
            .call("notifyVirtualCardChange", cid, &body)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{action}: {:?}", a.body);
        let token = store.token("VC-E1").await.unwrap().unwrap();
        assert_eq!(token.state, "active", "{action}");
        assert_eq!(token.dpan_last4.as_deref(), Some("5678"), "{action}");
    }
    assert_eq!(
        store.enrolment("ne-1").await.unwrap().unwrap().state,
        "complete"
    );
    // Every failure is in the token's history, with its code.
    let events = store.token_events("VC-E1").await.unwrap();
    let failures: Vec<(String, Option<i64>, String)> = events
        .into_iter()
        .filter(|e| e.error_code.is_some())
        .map(|e| (e.action, e.error_code, e.state_after))
        .collect();
    assert_eq!(
        failures,
        vec![
            ("ACTIVATE".into(), Some(221), "pending".into()),
            ("DELETE".into(), Some(221), "active".into()),
            ("ERASE".into(), Some(221), "active".into()),
            ("SUSPEND".into(), Some(221), "active".into()),
        ]
    );
    app.gw.stop().await;
}
