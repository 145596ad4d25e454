//! The real binary, run as an operator runs it: `keys generate`, `cards import`, `serve`; a full
//! run of enrolments and hostile calls; then its captured logs are searched for every PAN, OTP,
//! phone number, e-mail address and key it handled.

use crate::common::*;
use issuer_gateway::sim::Tsh;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_issuer-gateway"))
}

pub fn write_config(dir: &Path, db_url: &str) -> std::path::PathBuf {
    let keys = dir.join("keys");
    let config = format!(
        "[issuer]\nid = \"{ISSUER_ID}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"{db_url}\"\n\n[keys]\npkcs7_private_keys = [\"{}\"]\npan_index_key_file = \"{}\"\n\n\
         [outbox]\ndir = \"{}\"\n",
        keys.join("issuer-pkcs7-key.pem").display(),
        keys.join("pan-index.key").display(),
        dir.join("outbox").display()
    );
    let path = dir.join("issuer-gateway.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A folder ready for `serve`: keys made by `keys generate` (the real binary) and a
/// configuration on a SQLite database `gw.db` in it. Returns the configuration file.
pub fn keyed_config(dir: &Path) -> std::path::PathBuf {
    let out = bin()
        .args(["keys", "generate", "--out"])
        .arg(dir.join("keys"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_config(dir, &format!("sqlite://{}", dir.join("gw.db").display()))
}

/// A `serve` process whose standard error is collected line by line. Dropped without `stop` or
/// `kill` (a failing test), the process is killed, so no test leaves a server running.
pub struct Served {
    child: std::process::Child,
    done: bool,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    pub api: String,
    pub admin: String,
}

impl Served {
    pub fn start(config: &Path) -> Served {
        issuer_gateway::install_crypto_provider();
        let mut child = bin()
            .args(["serve", "--config"])
            .arg(config)
            .env("ISSUER_GATEWAY__LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let (api, admin) = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("serve prints its listening line");
            let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            seen.push(line);
            if parsed["message"] == "issuer-gateway listening" {
                break (
                    parsed["api"].as_str().unwrap().to_owned(),
                    parsed["admin"].as_str().unwrap().to_owned(),
                );
            }
        };
        Served {
            child,
            done: false,
            lines: rx,
            seen,
            api,
            admin,
        }
    }

    /// SIGTERM, then wait for a clean exit; returns every log line.
    pub fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        self.done = true;
        assert!(exit.success(), "serve exits 0 after SIGTERM: {exit:?}");
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.iter());
        seen
    }

    /// SIGKILL, as a crash would, and wait for the process to be gone.
    pub fn kill(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
        self.done = true;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_card_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::logs::keyed_config(dir.path());
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
    let lines = served.stop();

    let log = lines.join("\n");
    let outbox = outbox_messages(&dir.path().join("outbox")).join("\n");
    let mut secrets: Vec<String> = sensitive_values().into_iter().map(str::to_owned).collect();
    secrets.push("4895370012345678".into());
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
    for s in sensitive_values() {
        assert!(
            !db.windows(s.len()).any(|w| w == s.as_bytes()),
            "the database holds a sensitive value in clear ({} characters)",
            s.len()
        );
    }
}
