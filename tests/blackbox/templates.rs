//! Messages by purpose and language: a `sendOTP` carrying `deviceBindingReference` gets the
//! device-binding template, and the shipped templates are real text in the cardholder's
//! language, accents included, delivered as UTF-8.

use crate::common::*;
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(purpose_and_language_pick_the_template);

async fn purpose_and_language_pick_the_template(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tsh = app.tsh();
    // A French device (CLAIRE has only an e-mail address): adding the card, then binding a
    // device, each its own template.
    for (cid, device_binding) in [("tpl-fr-add", false), ("tpl-fr-bind", true)] {
        let a = tsh
            .check_eligibility(cid, CLAIRE.pan, CLAIRE.exp, "APPLE_PAY")
            .await
            .unwrap();
        let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
        let d = tsh
            .request_digitization(
                cid,
                CLAIRE.pan,
                CLAIRE.exp,
                "APPLE_PAY",
                json!({"captureMethod": "CAMERA", "deviceInformation": {"language": "fr-FR"}}),
            )
            .await
            .unwrap();
        assert_eq!(d.str("levelOfTrust"), Some("yellow"), "{:?}", d.body);
        let mut body = json!({
            "issuerCardRefId": card_ref,
            "otpValue": "482913",
            "walletProviderId": "APPLE_PAY",
        });
        if device_binding {
            body["deviceBindingReference"] = json!("db-ref-1");
        }
        let sent = tsh.call("sendOTP", cid, &body).await.unwrap();
        assert_eq!(sent.status, 200, "{:?}", sent.body);
    }
    let out = app.fx.outbox();
    assert_eq!(out.len(), 2, "{out:?}");
    let add = out
        .iter()
        .find(|m| m.contains("ajouter"))
        .expect("the card-adding message");
    assert!(
        add.contains("Subject: Votre code pour ajouter votre carte à Apple Pay"),
        "{add}"
    );
    assert!(
        add.contains("Si vous ne l'avez pas demandé, appelez le numéro"),
        "{add}"
    );
    let bind = out
        .iter()
        .find(|m| m.contains("appareil"))
        .expect("the device message");
    assert!(
        bind.contains("Subject: Votre code pour confirmer votre appareil dans Apple Pay"),
        "{bind}"
    );
    assert!(bind.contains("\n482913\n"), "{bind}");

    // A Spanish device on a card whose language is English: the device's language wins.
    let (card_ref, methods) = {
        let cid = "tpl-es";
        let a = tsh
            .check_eligibility(cid, ALICE.pan, ALICE.exp, "APPLE_PAY")
            .await
            .unwrap();
        let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
        let d = tsh
            .request_digitization(
                cid,
                ALICE.pan,
                ALICE.exp,
                "APPLE_PAY",
                json!({"captureMethod": "CAMERA", "deviceInformation": {"language": "es-ES"}}),
            )
            .await
            .unwrap();
        (card_ref, methods(&d.body))
    };
    let sms = methods.iter().find(|m| m.1 == "sms").unwrap();
    let sent = tsh
        .send_otp("tpl-es", &card_ref, "771020", Some(&sms.0), "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let out = app.fx.outbox();
    let es = out.iter().find(|m| m.contains("771020")).unwrap();
    assert!(
        es.ends_with("771020 es su código para Apple Pay (tarjeta 1111). No lo comparta."),
        "{es}"
    );
    app.gw.stop().await;
}
