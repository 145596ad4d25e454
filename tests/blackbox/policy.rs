//! The decision policy as configuration: custom rules decide, a broken policy is refused at
//! start naming the rule, and `policy explain` agrees with the server.

use crate::common::*;
use crate::on_both_backends;
use issuer_gateway::config::Config;
use serde_json::{Value, json};

on_both_backends!(
    custom_rules_decide_and_are_recorded,
    policy_explain_agrees_with_the_server
);

const POLICY: &str = r#"
default_outcome = "yellow"
default_rule_name = "step-up"

[[rules]]
name = "not-active"
outcome = "red"
when_any = [ { card_active = false }, { card_expired = true } ]

[[rules]]
name = "sanctioned-device-country"
outcome = "red"
when = { device_country_in = ["KP", "IR"] }

[[rules]]
name = "second-token-needs-email"
outcome = "yellow"
channels = ["email"]
when = { active_tokens_at_least = 1 }

[[rules]]
name = "garmin-always-steps-up"
outcome = "yellow"
when = { wallet_provider_in = ["GARMIN_PAY"] }

[[rules]]
name = "trusted"
outcome = "green"
when = { tsp_level_of_trust_not_in = ["yellow", "red"] }
when_any = [ { cvv_validated = true }, { capture_method_in = ["BANK_APP", "ON_FILE"] } ]
"#;

fn with_policy(c: &mut Config) {
    c.policy = toml::from_str(POLICY).unwrap();
}

async fn custom_rules_decide_and_are_recorded(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_policy).await;
    let tsh = app.tsh();
    let cases = [
        (
            "p-1",
            ALICE,
            "APPLE_PAY",
            json!({"scoringInformation": {"deviceCountry": "kp"}, "cvvValidated": true}),
            "red",
            "sanctioned-device-country",
        ),
        (
            "p-2",
            ALICE,
            "GARMIN_PAY",
            json!({"cvvValidated": true}),
            "yellow",
            "garmin-always-steps-up",
        ),
        (
            "p-3",
            ALICE,
            "APPLE_PAY",
            json!({"captureMethod": "ON_FILE"}),
            "green",
            "trusted",
        ),
        (
            "p-4",
            ALICE,
            "APPLE_PAY",
            json!({"captureMethod": "MANUAL"}),
            "yellow",
            "step-up",
        ),
        (
            "p-5",
            DAN,
            "APPLE_PAY",
            json!({"cvvValidated": true}),
            "red",
            // The eligibility rules come before the policy's own.
            "card-not-active",
        ),
    ];
    for (cid, card, wallet, extra, level, rule) in cases {
        let a = tsh
            .request_digitization(cid, card.pan, card.exp, wallet, extra.clone())
            .await
            .unwrap();
        assert_eq!(
            a.str("levelOfTrust"),
            Some(level),
            "{cid} {extra}: {:?}",
            a.body
        );
        let e = app.gw.state.store.enrolment(cid).await.unwrap().unwrap();
        assert_eq!(e.decision_rule.as_deref(), Some(rule), "{cid}");
        let signals: Value = serde_json::from_str(e.decision_signals.as_deref().unwrap()).unwrap();
        assert_eq!(
            signals["card_status"],
            json!(if card.pan == DAN.pan {
                "blocked"
            } else {
                "active"
            })
        );
    }
    // With a token active on the card, a new enrolment is offered e-mail only.
    let r = tsh
        .check_eligibility("p-6", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    let card_ref = r.str("issuerCardRefId").unwrap().to_owned();
    tsh.notify("p-3", &card_ref, "VC-P3", "ACTIVATE", "APPLE_PAY", None)
        .await
        .unwrap();
    let a = tsh
        .request_digitization(
            "p-6",
            ALICE.pan,
            ALICE.exp,
            "APPLE_PAY",
            json!({"cvvValidated": true}),
        )
        .await
        .unwrap();
    assert_eq!(a.str("levelOfTrust"), Some("yellow"));
    let m = methods(&a.body);
    assert_eq!(
        m.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        vec!["email"]
    );
    // Decisions are counted by outcome and rule.
    let metrics = reqwest::get(format!("http://{}/metrics", app.gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("issuer_gateway_decisions_total")
                && l.contains("rule=\"sanctioned-device-country\"")),
        "{metrics}"
    );
    app.gw.stop().await;
}

async fn policy_explain_agrees_with_the_server(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_policy).await;
    let tsh = app.tsh();
    let dir = app.fx.path();
    let mut config = app.fx.config.clone();
    with_policy(&mut config);
    let config_file = dir.join("explain.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let r = tsh
        .check_eligibility("x-0", BOB.pan, BOB.exp, "APPLE_PAY")
        .await
        .unwrap();
    let card_ref = r.str("issuerCardRefId").unwrap().to_owned();
    let bodies = [
        json!({"issuerCardRefId": card_ref, "walletProviderId": "APPLE_PAY", "cvvValidated": true}),
        json!({"issuerCardRefId": card_ref, "walletProviderId": "APPLE_PAY", "cardCaptureInformation": {"captureMethod": "CAMERA"}}),
        json!({"issuerCardRefId": card_ref, "walletProviderId": "GOOGLE_PAY", "scoringInformation": {"deviceCountry": "IR"}}),
        json!({"issuerCardRefId": card_ref, "walletProviderId": "GARMIN_PAY", "captureMethod": "BANK_APP", "scoringInformation": {"levelOfTrust": "YELLOW"}}),
        json!({"issuerCardRefId": card_ref, "walletProviderId": "APPLE_PAY", "captureMethod": "BANK_APP", "scoringInformation": {"levelOfTrust": "yellow"}}),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let cid = format!("x-{i}");
        let a = tsh
            .call("requestCardDigitization", &cid, body)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        let rule = app
            .gw
            .state
            .store
            .enrolment(&cid)
            .await
            .unwrap()
            .unwrap()
            .decision_rule
            .unwrap();
        let file = dir.join(format!("req-{i}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        let out = bin()
            .args(["policy", "explain", "--config"])
            .arg(&config_file)
            .arg("--request")
            .arg(&file)
            .args(["--card", &card_ref])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = format!(
            "decision: {} by rule {rule}",
            a.str("levelOfTrust").unwrap()
        );
        assert!(
            text.contains(&expected),
            "explain says:\n{text}\nserver: {expected}"
        );
        assert!(text.contains(" DECIDES"), "{text}");
    }
    app.gw.stop().await;
}

#[test]
fn a_broken_policy_is_refused_at_start_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let good = std::fs::read_to_string(&config).unwrap();
    let as_file = |p: &str| {
        format!(
            "{good}\n[policy]\n{}",
            p.replace("[[rules]]", "[[policy.rules]]")
        )
    };
    std::fs::write(&config, as_file(POLICY)).unwrap();
    let out = bin()
        .args(["policy", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("5 rules")
            && text.contains("garmin-always-steps-up")
            && text.contains("offering email"),
        "{text}"
    );

    let broken = POLICY.replace(
        "device_country_in = [\"KP\", \"IR\"]",
        "device_contry_in = [\"KP\"]",
    );
    std::fs::write(&config, as_file(&broken)).unwrap();
    for args in [
        vec!["policy", "check", "--config"],
        vec!["serve", "--config"],
    ] {
        let out = bin().args(&args).arg(&config).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("policy.rules[2] 'sanctioned-device-country': unknown setting or condition 'device_contry_in'"), "{args:?}: {err}");
    }
}
