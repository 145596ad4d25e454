//! Complete enrolments, as TSH runs them.

use crate::common::*;
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    option_b_by_sms_end_to_end,
    same_card_same_reference,
    green_and_red_decisions,
    email_only_card_and_default_method,
    digitization_applies_every_eligibility_rule,
    send_otp_serves_only_a_live_recent_enrolment,
);

async fn option_b_by_sms_end_to_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cid = "enrol-0001";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    // Both channels offered, masked.
    assert_eq!(methods.len(), 2, "{methods:?}");
    assert_eq!(
        (methods[0].1.as_str(), methods[0].2.as_str()),
        ("sms", "+********0123")
    );
    assert_eq!(
        (methods[1].1.as_str(), methods[1].2.as_str()),
        ("email", "al***@example.com")
    );
    assert_ne!(methods[0].0, methods[1].0);

    let otp = "004711";
    let a = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&methods[0].0), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!((a.status, a.body.clone()), (200, json!({})));
    let out = app.fx.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0].contains("To: +447700900123\n"), "{}", out[0]);
    assert!(
        out[0].contains(&format!("\n{otp} is your code")),
        "the OTP exactly as received: {}",
        out[0]
    );
    assert!(out[0].contains("ending 1111") && out[0].contains("Google Pay"));

    let a = app
        .tsh()
        .notify(
            cid,
            &card_ref,
            "VC-0001",
            "ACTIVATE",
            "GOOGLE_PAY",
            Some(("5204730000001234", "1229")),
        )
        .await
        .unwrap();
    assert_eq!((a.status, a.body.clone()), (200, json!({})));
    let token = app.gw.state.store.token("VC-0001").await.unwrap().unwrap();
    assert_eq!(token.state, "active");
    assert_eq!(token.dpan_last4.as_deref(), Some("1234"));
    assert_eq!(token.dpan_exp.as_deref(), Some("1229"));
    assert_eq!(token.card_ref, card_ref);
    let e = app.gw.state.store.enrolment(cid).await.unwrap().unwrap();
    assert_eq!(e.state, "complete");
    assert_eq!(e.decision.map(|d| d.as_str()), Some("yellow"));
    assert_eq!(e.decision_rule.as_deref(), Some("step-up"));
    let calls: Vec<(String, i64)> = app
        .gw
        .state
        .store
        .calls(cid)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.operation, c.response_code))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("checkCardEligibility".into(), 200),
            ("requestCardDigitization".into(), 200),
            ("sendOTP".into(), 200),
            ("notifyVirtualCardChange".into(), 200)
        ]
    );
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        (
            sends[0].channel.as_str(),
            sends[0].destination_masked.as_str(),
            sends[0].outcome.as_str()
        ),
        ("sms", "+********0123", "accepted")
    );

    // A retry of the same sendOTP sends nothing new and answers 200 again.
    let again = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&methods[0].0), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    // One OTP message (the ACTIVATE's notice to the cardholder is another message).
    let otps = app.fx.outbox().iter().filter(|m| m.contains(otp)).count();
    assert_eq!(otps, 1);
    app.gw.stop().await;
}

async fn same_card_same_reference(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut refs = Vec::new();
    for i in 0..3 {
        let a = app
            .tsh()
            .check_eligibility(&format!("ref-{i}"), BOB.pan, BOB.exp, "APPLE_PAY")
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.str("productId"), Some("MC_WORLD"));
        refs.push(a.str("issuerCardRefId").unwrap().to_owned());
    }
    // Re-importing the card (new phone) keeps the reference.
    let report = app.fx.import("pan,exp,status,product_id,phone\n5555555555554444,0630,active,MC_WORLD,+447700900999\n").await;
    assert_eq!((report.added, report.updated), (0, 1));
    // A file that tries to give the card another reference is refused for that line.
    let report = app
        .fx
        .import("pan,exp,status,product_id,issuer_card_ref_id\n5555555555554444,0630,active,MC_WORLD,NEW-REF-1\n")
        .await;
    assert_eq!(
        (report.added, report.updated, report.rejected.len()),
        (0, 0, 1)
    );
    assert!(
        report.rejected[0].1.contains("never changes"),
        "{:?}",
        report.rejected
    );
    let a = app
        .tsh()
        .check_eligibility("ref-after-import", BOB.pan, BOB.exp, "APPLE_PAY")
        .await
        .unwrap();
    refs.push(a.str("issuerCardRefId").unwrap().to_owned());
    assert!(refs.windows(2).all(|w| w[0] == w[1]), "{refs:?}");
    let r = &refs[0];
    assert!(
        !r.contains("5555") && !r.contains("4444") && (1..=48).contains(&r.len()),
        "{r}"
    );
    // Another card gets another reference; digitization answers the same reference.
    let other = app
        .tsh()
        .check_eligibility("ref-other", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_ne!(other.str("issuerCardRefId").unwrap(), r);
    let d = app
        .tsh()
        .request_digitization(
            "ref-0",
            BOB.pan,
            BOB.exp,
            "APPLE_PAY",
            json!({"cvvValidated": true}),
        )
        .await
        .unwrap();
    assert_eq!(d.str("issuerCardRefId"), Some(r.as_str()));
    assert_eq!(
        d.body["cardDetails"],
        json!({"fpanLastDigits": "4444", "fpanExpiryDate": "0630"})
    );
    app.gw.stop().await;
}

async fn green_and_red_decisions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (json!({"cvvValidated": true}), "green", "trusted-capture"),
        (
            json!({"cardCaptureInformation": {"captureMethod": "on_file"}}),
            "green",
            "trusted-capture",
        ),
        (
            json!({"captureMethod": "BANK_APP", "scoringInformation": {"levelOfTrust": "YELLOW"}}),
            "yellow",
            "step-up",
        ),
        (
            json!({"tncStatus": false, "cvvValidated": true}),
            "red",
            "terms-not-accepted",
        ),
        (
            json!({"scoringInformation": {"levelOfTrust": "Red"}}),
            "red",
            "tsp-says-red",
        ),
        (
            json!({"scoringInformation": {"deviceScore": "1"}, "cvvValidated": true}),
            "red",
            "lowest-risk-score",
        ),
        (
            json!({"scoringInformation": {"phoneNumberScore": 1}}),
            "red",
            "lowest-risk-score",
        ),
        (
            json!({"walletUserInformation": {"provisioningAttemptsOnDeviceIn24Hours": "6"}}),
            "red",
            "too-many-provisioning-attempts",
        ),
    ];
    for (i, (extra, level, rule)) in cases.into_iter().enumerate() {
        let cid = format!("decide-{i}");
        let a = app
            .tsh()
            .request_digitization(&cid, ALICE.pan, ALICE.exp, "APPLE_PAY", extra.clone())
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{extra}: {:?}", a.body);
        assert_eq!(a.str("levelOfTrust"), Some(level), "{extra}");
        assert_eq!(
            a.body.get("idvMethodList").is_some(),
            level == "yellow",
            "{extra}"
        );
        let e = app.gw.state.store.enrolment(&cid).await.unwrap().unwrap();
        assert_eq!(e.decision_rule.as_deref(), Some(rule), "{extra}");
    }
    // An inactive card is declined (red), not refused.
    let a = app
        .tsh()
        .request_digitization(
            "decide-blocked",
            DAN.pan,
            DAN.exp,
            "APPLE_PAY",
            json!({"cvvValidated": true}),
        )
        .await
        .unwrap();
    assert_eq!((a.status, a.str("levelOfTrust")), (200, Some("red")));
    // Yellow with no destination on file becomes red, recorded as such.
    let a = app
        .tsh()
        .request_digitization(
            "decide-nocontact",
            FRANK.pan,
            FRANK.exp,
            "APPLE_PAY",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(a.str("levelOfTrust"), Some("red"));
    let e = app
        .gw
        .state
        .store
        .enrolment("decide-nocontact")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.decision_rule.as_deref(),
        Some("no-deliverable-idv-method")
    );
    // Digitization by reference only, as deployments in the field do.
    let r = app
        .tsh()
        .check_eligibility("by-ref", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    let card_ref = r.str("issuerCardRefId").unwrap().to_owned();
    let a = app
        .tsh()
        .call(
            "requestCardDigitization",
            "by-ref",
            &json!({"issuerCardRefId": card_ref, "walletUserInformation": {"walletUserId": "u1"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.str("levelOfTrust")),
        (200, Some("yellow")),
        "{:?}",
        a.body
    );
    app.gw.stop().await;
}

async fn email_only_card_and_default_method(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.server.level_of_trust_case = issuer_gateway::config::LevelOfTrustCase::Upper
    })
    .await;
    let cid = "email-only";
    let a = app
        .tsh()
        .check_eligibility(cid, CLAIRE.pan, CLAIRE.exp, "SAMSUNG_PAY")
        .await
        .unwrap();
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    let d = app
        .tsh()
        .request_digitization(
            cid,
            CLAIRE.pan,
            CLAIRE.exp,
            "SAMSUNG_PAY",
            json!({"captureMethod": "CAMERA", "deviceInformation": {"language": "fr-FR"}}),
        )
        .await
        .unwrap();
    assert_eq!(d.str("levelOfTrust"), Some("YELLOW"));
    let m = methods(&d.body);
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].1.as_str(), m[0].2.as_str()),
        ("email", "cl***@example.fr")
    );
    // No otpMethodId: the first offered method in the preference order is used.
    let a = app
        .tsh()
        .send_otp(cid, &card_ref, "A1-b2 ", None, "SAMSUNG_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let out = app.fx.outbox();
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("Channel: email\nTo: claire.dubois@example.fr\nSubject: Votre code"),
        "{}",
        out[0]
    );
    assert!(
        out[0].contains("\nA1-b2 \n"),
        "the OTP byte for byte, in the French template: {}",
        out[0]
    );
    app.gw.stop().await;
}

/// Digitization applies every rule eligibility applies, whatever eligibility answered or
/// whether it was called: a card eligibility refuses is red, the rule named, even with the
/// signals that would make it green or yellow.
async fn digitization_applies_every_eligibility_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    let trusted =
        json!({"cvvValidated": true, "cardCaptureInformation": {"captureMethod": "BANK_APP"}});
    let manual = json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}});
    // Expiry mismatch: eligibility refuses; digitization of the very same envelope (the reused
    // card) and of a fresh one are red.
    let wrong_exp = tsh.card_info(ALICE.pan, Some("1130")).unwrap();
    let e = tsh
        .check_eligibility_sealed("recheck-exp", &wrong_exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(e.status, 400, "{:?}", e.body);
    for (cid, signals) in [("recheck-exp", &trusted), ("recheck-exp-2", &manual)] {
        let d = tsh
            .request_digitization_sealed(cid, &wrong_exp, "APPLE_PAY", signals.clone())
            .await
            .unwrap();
        assert_eq!(d.status, 200, "{:?}", d.body);
        assert_eq!(d.str("levelOfTrust"), Some("red"), "{cid}: {:?}", d.body);
        assert!(d.body.get("idvMethodList").is_none(), "{:?}", d.body);
        let e = app.gw.state.store.enrolment(cid).await.unwrap().unwrap();
        assert_eq!(e.decision_rule.as_deref(), Some("expiry-mismatch"), "{cid}");
    }
    // Wallet not enabled for the card (BOB: Apple Pay and Google Pay only), digitization called
    // directly.
    for (cid, signals) in [("recheck-wallet", &trusted), ("recheck-wallet-2", &manual)] {
        let d = tsh
            .request_digitization(cid, BOB.pan, BOB.exp, "SAMSUNG_PAY", signals.clone())
            .await
            .unwrap();
        assert_eq!(d.str("levelOfTrust"), Some("red"), "{cid}: {:?}", d.body);
        let e = app.gw.state.store.enrolment(cid).await.unwrap().unwrap();
        assert_eq!(
            e.decision_rule.as_deref(),
            Some("wallet-not-enabled"),
            "{cid}"
        );
    }
    // Blocked, expired: named by their own rule.
    for (cid, card, rule) in [
        ("recheck-blocked", DAN, "card-not-active"),
        ("recheck-expired", ERIN, "card-expired"),
    ] {
        let d = tsh
            .request_digitization(cid, card.pan, card.exp, "APPLE_PAY", trusted.clone())
            .await
            .unwrap();
        assert_eq!(d.str("levelOfTrust"), Some("red"), "{cid}: {:?}", d.body);
        let e = app.gw.state.store.enrolment(cid).await.unwrap().unwrap();
        assert_eq!(e.decision_rule.as_deref(), Some(rule), "{cid}");
    }
    // The card's own envelope with the right expiry is still decided by the policy.
    let d = tsh
        .request_digitization("recheck-ok", ALICE.pan, ALICE.exp, "APPLE_PAY", trusted)
        .await
        .unwrap();
    assert_eq!(d.str("levelOfTrust"), Some("green"), "{:?}", d.body);
    app.gw.stop().await;
}

/// sendOTP serves only an enrolment that is still in step-up: not once it completed
/// (ACTIVATE) or failed (DELETE), nor once it is older than controls.step_up_max_age_minutes.
async fn send_otp_serves_only_a_live_recent_enrolment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let no_step_up = issuer_gateway::domain::Reason::UnknownSession.default_number();
    for (cid, action) in [("live-done", "ACTIVATE"), ("live-failed", "DELETE")] {
        let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "APPLE_PAY").await;
        let n = app
            .tsh()
            .notify(
                cid,
                &card_ref,
                &format!("VC-{cid}"),
                action,
                "APPLE_PAY",
                None,
            )
            .await
            .unwrap();
        assert_eq!(n.status, 200, "{:?}", n.body);
        let s = app
            .tsh()
            .send_otp(cid, &card_ref, "246810", Some(&methods[0].0), "APPLE_PAY")
            .await
            .unwrap();
        assert_eq!(
            (s.status, s.code()),
            (400, no_step_up),
            "{action}: {:?}",
            s.body
        );
    }
    let (card_ref, methods) = app.enrol_to_yellow("live-old", ALICE, "APPLE_PAY").await;
    app.fx.advance_ms(61 * 60_000);
    let s = app
        .tsh()
        .send_otp(
            "live-old",
            &card_ref,
            "135790",
            Some(&methods[0].0),
            "APPLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!((s.status, s.code()), (400, no_step_up), "{:?}", s.body);
    // No OTP was sent (the ACTIVATE's notice to the cardholder is no OTP).
    let otps: Vec<String> = app
        .fx
        .outbox()
        .into_iter()
        .filter(|m| !m.contains(" was added to "))
        .collect();
    assert!(otps.is_empty(), "nothing was sent: {otps:?}");
    app.gw.stop().await;
}
