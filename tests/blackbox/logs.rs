//! The real binary, run as an operator runs it: `keys generate`, `cards import`, `serve`; a full
//! run of enrolments and hostile calls; then its captured logs are searched for every PAN, OTP,
//! phone number, e-mail address and key it handled.

use crate::common::*;
use issuer_gateway::sim::Tsh;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_card_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    std::fs::write(dir.path().join("cards.csv"), CARD_FILE).unwrap();
    let out = bin()
        .args(["cards", "import", "--config"])
        .arg(&config)
        .arg(dir.path().join("cards.csv"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("added 6, updated 0, rejected 0")
    );

    let served = Served::start(&config);
    let health = reqwest::get(format!("http://{}/health", served.admin))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Both channels are on the outbox here: /health and /metrics say so.
    let health: Value = health.json().await.unwrap();
    assert_eq!(
        health["outbox_channels"],
        json!(["sms", "email"]),
        "{health}"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", served.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for channel in ["sms", "email"] {
        let series = format!("issuer_gateway_outbox_channel{{channel=\"{channel}\"}} 1");
        assert!(
            metrics.contains(&series),
            "{series} missing from:\n{metrics}"
        );
    }
    let cert = std::fs::read_to_string(dir.path().join("keys/issuer-pkcs7-cert.pem")).unwrap();
    let tsh = Tsh::new(
        &format!("http://{}/issuer/igwapi/v2.0", served.api),
        ISSUER_ID,
        &cert,
    )
    .unwrap();
    let mut otps = Vec::new();
    for (i, (card, wallet)) in [
        (ALICE, "APPLE_PAY"),
        (BOB, "GOOGLE_PAY"),
        (CLAIRE, "SAMSUNG_PAY"),
    ]
    .into_iter()
    .enumerate()
    {
        let cid = format!("logs-{i}");
        let a = tsh
            .check_eligibility(&cid, card.pan, card.exp, wallet)
            .await
            .unwrap();
        let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
        let d = tsh
            .request_digitization(
                &cid,
                card.pan,
                card.exp,
                wallet,
                json!({"captureMethod": "MANUAL"}),
            )
            .await
            .unwrap();
        for (n, (id, _, _)) in methods(&d.body).into_iter().enumerate() {
            let otp = format!("{}{}{}93", 7 - i, n, i + 4);
            assert_eq!(
                tsh.send_otp(&cid, &card_ref, &otp, Some(&id), wallet)
                    .await
                    .unwrap()
                    .status,
                200
            );
            otps.push(otp);
        }
        tsh.notify(
            &cid,
            &card_ref,
            &format!("VC-{i}"),
            "ACTIVATE",
            wallet,
            Some(("4895370012345678", "1229")),
        )
        .await
        .unwrap();
    }
    // Refusals and hostile input that carry card data where it does not belong.
    for card in [DAN, ERIN, UNKNOWN] {
        assert_eq!(
            tsh.check_eligibility("logs-bad", card.pan, card.exp, "APPLE_PAY")
                .await
                .unwrap()
                .status,
            400
        );
    }
    assert_eq!(
        tsh.call(
            "checkCardEligibility",
            ALICE.pan,
            &json!({"issuerCardRefId": ALICE.pan})
        )
        .await
        .unwrap()
        .status,
        400
    );
    assert_eq!(
        tsh.call(
            "sendOTP",
            "logs-0",
            &json!({"issuerCardRefId": BOB.pan, "otpValue": "55501234"})
        )
        .await
        .unwrap()
        .status,
        400
    );
    otps.push("55501234".into());
    // A PAN glued to other digits, or broken by spaces or dashes, where identifiers belong.
    let grouped = |sep: &str| {
        ALICE
            .pan
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(sep)
    };
    let glued = [
        format!("c-1{}", ALICE.pan),
        format!("{}9", ALICE.pan),
        grouped("-"),
        format!("id-{}-x", grouped("-")),
    ];
    for cid in &glued {
        let a = tsh
            .check_eligibility(cid, ALICE.pan, ALICE.exp, "APPLE_PAY")
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{cid}: {:?}", a.body);
        let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
        let n = tsh
            .call(
                "notifyVirtualCardChange",
                cid,
                &json!({
                    "issuerCardRefId": card_ref, "virtualCardId": format!("vc-0{}", ALICE.pan),
                    "walletProviderId": format!("W-{}", grouped("-")),
                    "tokenStorageId": grouped(" "), "action": "ACTIVATE",
                }),
            )
            .await
            .unwrap();
        assert_eq!(n.status, 200, "{cid}: {:?}", n.body);
    }
    let lines = served.stop();

    let log = lines.join("\n");
    // The start-up warns of each channel on the outbox.
    for channel in ["sms", "email"] {
        assert!(
            lines.iter().any(|l| l.contains("WARN")
                && l.contains(&format!("the {channel} channel is the outbox"))),
            "no outbox warning for {channel}:\n{log}"
        );
    }
    let outbox = outbox_messages(&dir.path().join("outbox")).join("\n");
    let mut secrets: Vec<String> = sensitive_values().into_iter().map(str::to_owned).collect();
    secrets.push("4895370012345678".into());
    secrets.push(grouped(" "));
    secrets.push(grouped("-"));
    for otp in &otps {
        assert!(
            otp == "55501234" || outbox.contains(otp.as_str()),
            "the OTP {otp} was really sent"
        );
    }
    secrets.extend(otps);
    let key_pem = std::fs::read_to_string(dir.path().join("keys/issuer-pkcs7-key.pem")).unwrap();
    secrets.extend(
        key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    secrets.push(
        std::fs::read_to_string(dir.path().join("keys/pan-index.key"))
            .unwrap()
            .trim()
            .to_owned(),
    );
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the log holds a sensitive value ({} characters)",
            s.len()
        );
    }
    // One structured line per request.
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert!(requests.len() >= 17, "{} request lines", requests.len());
    for r in &requests {
        for field in [
            "operation",
            "correlation_id",
            "outcome",
            "response_code",
            "duration_ms",
        ] {
            assert!(!r[field].is_null(), "{field} missing in {r}");
        }
    }
    assert!(
        requests.iter().any(|r| r["correlation_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("pan#"))),
        "a PAN used as correlation id is replaced by its fingerprint"
    );
    // Nor does the database hold any of them (the correlation ids are stored in the same form).
    let mut db = std::fs::read(dir.path().join("gw.db")).unwrap();
    db.extend(std::fs::read(dir.path().join("gw.db-wal")).unwrap_or_default());
    for s in sensitive_values()
        .into_iter()
        .chain([grouped(" ").as_str(), grouped("-").as_str()])
    {
        assert!(
            !db.windows(s.len()).any(|w| w == s.as_bytes()),
            "the database holds a sensitive value in clear ({} characters)",
            s.len()
        );
    }
}
