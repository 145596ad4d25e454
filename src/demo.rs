//! `issuer-gateway demo`: a throw-away gateway (temporary SQLite database, fresh keys, sample
//! cards, the outbox as SMS and e-mail channel) and TSH played against it through complete
//! enrolments, each step printed. Exits 0 when every step went as expected.

use crate::app::Application;
use crate::config::Config;
use crate::sim::{Answer, Tsh};
use serde_json::json;
use std::path::{Path, PathBuf};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

const ISSUER_ID: &str = "DEMOBANK01";
/// Both listeners on loopback, on ports the system chooses.
const LOOPBACK_ANY_PORT: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

struct Card {
    pan: &'static str,
    exp: &'static str,
    label: &'static str,
}

const GREEN: Card = Card {
    pan: "4111111111111111",
    exp: "1229",
    label: "Visa, added from the bank's app",
};
const YELLOW_SMS: Card = Card {
    pan: "5555555555554444",
    exp: "0630",
    label: "Mastercard, typed in by hand",
};
const YELLOW_EMAIL: Card = Card {
    pan: "4000056655665556",
    exp: "0331",
    label: "Visa, photographed, e-mail on file only",
};
const RED: Card = Card {
    pan: "5200828282828210",
    exp: "1129",
    label: "Mastercard, risky device",
};
const BLOCKED: Card = Card {
    pan: "4242424242424242",
    exp: "1229",
    label: "Visa, blocked by the issuer",
};
const FAILING: Card = Card {
    pan: "378282246310005",
    exp: "0930",
    label: "Amex, SMS channel broken",
};

const CARD_FILE: &str = "pan,exp,status,product_id,phone,email,language,wallets\n\
4111111111111111,1229,active,VISA_PLATINUM,+447700900123,alice.martin@example.com,en,\n\
5555555555554444,0630,active,MC_WORLD,+447700900456,bob@example.org,en,APPLE_PAY;GOOGLE_PAY\n\
4000056655665556,0331,active,VISA_CLASSIC,,claire.dubois@example.fr,fr,\n\
5200828282828210,1129,active,MC_STANDARD,+33612345678,dan@example.com,en,\n\
4242424242424242,1229,blocked,VISA_CLASSIC,+447700900789,erin@example.com,en,\n\
378282246310005,0930,active,AMEX_GOLD,+447700900999,frank@example.com,en,\n";

/// Everything sensitive the demo used, so it can check the gateway's log holds none of it.
const SECRETS: &[&str] = &[
    "4111111111111111",
    "5555555555554444",
    "4000056655665556",
    "5200828282828210",
    "4242424242424242",
    "378282246310005",
    "447700900123",
    "447700900456",
    "33612345678",
    "447700900999",
    "alice.martin@example.com",
    "bob@example.org",
    "claire.dubois@example.fr",
    "frank@example.com",
];

struct Printer {
    ok: bool,
}

impl crate::demo_lifecycle::Narrator for Printer {
    fn title(&mut self, t: &str) {
        Printer::title(self, t);
    }
    fn step(&mut self, who: &str, what: &str) {
        Printer::step(self, who, what);
    }
    fn expect(&mut self, cond: bool, what: &str) {
        Printer::expect(self, cond, what);
    }
}

impl Printer {
    fn title(&self, t: &str) {
        println!();
        println!("== {t}");
    }
    fn step(&self, who: &str, what: &str) {
        println!("   {who:<8} {what}");
    }
    fn call(&self, op: &str, a: &Answer, summary: &str) {
        let code = a.code();
        let status = if code == 200 {
            "200 OK".to_owned()
        } else {
            format!("{} responseCode {code}", a.status)
        };
        println!(
            "   TSH   -> {op:<24} {status:<22} {summary}  ({:.1} ms)",
            a.elapsed.as_secs_f64() * 1000.0
        );
    }
    fn expect(&mut self, cond: bool, what: &str) {
        if !cond {
            self.ok = false;
            println!("   !! NOT AS EXPECTED: {what}");
        }
    }
}

/// Runs the demo. `keep`: a new folder to keep the demo's files in.
pub async fn run(keep: Option<PathBuf>) -> anyhow::Result<bool> {
    let temp;
    let dir: PathBuf = match keep {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                anyhow::bail!("--keep: {} exists and is not empty", d.display());
            }
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("issuer-gateway-demo-")
                .tempdir()?;
            temp.path().to_owned()
        }
    };
    let log_path = dir.join("gateway.log");
    let log_file = std::fs::File::create(&log_path)?;
    crate::telemetry::init_with(
        BoxMakeWriter::new(std::sync::Mutex::new(log_file)),
        true,
        "info",
    );

    println!("issuer-gateway demo: a gateway on a fresh SQLite database, TSH played against it.");
    println!("   folder   {}", dir.display());
    let keys_dir = dir.join("keys");
    crate::keys::generate(&keys_dir, 2048, "issuer-gateway demo")?;
    println!(
        "   keys     RSA-2048 PKCS#7 key, self-signed certificate and PAN index key generated"
    );

    let mut config = Config::default();
    config.issuer.id = ISSUER_ID.into();
    config.server.listen = LOOPBACK_ANY_PORT;
    config.admin.listen = LOOPBACK_ANY_PORT;
    // Admin writes need a token, on loopback too: a fresh random one.
    config.admin.token =
        crate::config::Secret::new(hex::encode(crate::data_keys::random_bytes::<16>()));
    config.database.url = format!("sqlite://{}", dir.join("gateway.db").display());
    config.keys.pkcs7_private_keys = vec![keys_dir.join(crate::keys::PRIVATE_KEY_FILE)];
    config.keys.pan_index_key_file = Some(keys_dir.join(crate::keys::PAN_INDEX_KEY_FILE));
    config.outbox.dir = dir.join("outbox");
    // TSH's inbound side, simulated: the life-cycle operations go there.
    let tsh_sim = crate::demo_lifecycle::prepare(&dir, &mut config).await?;

    let card_file = dir.join("cards.csv");
    std::fs::write(&card_file, CARD_FILE)?;
    let report = crate::card_file::import_cards(&config, &card_file).await?;
    println!(
        "   cards    imported {} sample cards (added {}, rejected {}); the database holds no PAN, only a keyed index, BIN and last 4",
        report.added + report.updated,
        report.added,
        report.rejected.len()
    );

    let app = Application::build(config.clone()).await?;
    let api = app.api_addr();
    let admin = app.admin_addr();
    let app_api = app.app_addr();
    let state = app.state();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));
    println!(
        "   gateway  TSH API on http://{api}{}, admin on http://{admin}",
        config.server.base_path
    );

    let cert = std::fs::read_to_string(keys_dir.join(crate::keys::CERTIFICATE_FILE))?;
    let tsh = Tsh::new(
        &format!("http://{api}{}", config.server.base_path),
        ISSUER_ID,
        &cert,
    )?;
    let outbox = config.outbox.dir.clone();
    let mut p = Printer { ok: true };

    // 1. Green
    p.title(&format!(
        "1. Green: {} ({})",
        GREEN.label,
        masked(GREEN.pan)
    ));
    let cid = "demo-green-0001";
    let (card_ref, _) = eligibility(&tsh, &mut p, cid, &GREEN, "APPLE_PAY").await?;
    let green_ref = card_ref.clone();
    let a = tsh
        .request_digitization(
            cid,
            GREEN.pan,
            GREEN.exp,
            "APPLE_PAY",
            json!({"cvvValidated": true, "cardCaptureInformation": {"captureMethod": "BANK_APP"}}),
        )
        .await?;
    let why = rule_of(&state, cid).await;
    p.call(
        "requestCardDigitization",
        &a,
        &format!(
            "levelOfTrust={} (rule {why})",
            a.str("levelOfTrust").unwrap_or("?")
        ),
    );
    p.expect(a.str("levelOfTrust") == Some("green"), "green");
    activate(
        &tsh,
        &mut p,
        &state,
        cid,
        &card_ref,
        "APPLE_PAY",
        "DNITHE000000000000000001",
        "4895370012345678",
    )
    .await?;

    // 2. Yellow, SMS
    p.title(&format!(
        "2. Yellow with SMS OTP: {} ({})",
        YELLOW_SMS.label,
        masked(YELLOW_SMS.pan)
    ));
    let cid = "demo-yellow-sms-0002";
    let (card_ref, _) = eligibility(&tsh, &mut p, cid, &YELLOW_SMS, "GOOGLE_PAY").await?;
    let methods = digitize_yellow(
        &tsh,
        &mut p,
        &state,
        cid,
        &YELLOW_SMS,
        "GOOGLE_PAY",
        json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}}),
    )
    .await?;
    let sms = methods.iter().find(|(_, t, _)| t == "sms").cloned();
    p.expect(
        sms.is_some() && methods.iter().any(|(_, t, _)| t == "email"),
        "an SMS and an e-mail method",
    );
    if let Some((id, _, value)) = sms {
        p.step(
            "wallet",
            &format!("user picks SMS to {value}; the network generates OTP 482913"),
        );
        let a = tsh
            .send_otp(cid, &card_ref, "482913", Some(&id), "GOOGLE_PAY")
            .await?;
        p.call("sendOTP", &a, "OTP delivered");
        p.expect(a.status == 200, "sendOTP accepted");
        show_message(&mut p, &outbox, "482913")?;
        let again = tsh
            .send_otp(cid, &card_ref, "482913", Some(&id), "GOOGLE_PAY")
            .await?;
        p.call(
            "sendOTP",
            &again,
            "same call retried: answered 200, nothing sent twice",
        );
        p.expect(
            again.status == 200 && count_messages(&outbox, "482913")? == 1,
            "retry sends nothing",
        );
    }
    activate(
        &tsh,
        &mut p,
        &state,
        cid,
        &card_ref,
        "GOOGLE_PAY",
        "DNITHE000000000000000002",
        "5204730000001234",
    )
    .await?;

    // 3. Yellow, e-mail
    p.title(&format!(
        "3. Yellow with e-mail OTP: {} ({})",
        YELLOW_EMAIL.label,
        masked(YELLOW_EMAIL.pan)
    ));
    let cid = "demo-yellow-email-0003";
    let (card_ref, _) = eligibility(&tsh, &mut p, cid, &YELLOW_EMAIL, "SAMSUNG_PAY").await?;
    let methods = digitize_yellow(&tsh, &mut p, &state, cid, &YELLOW_EMAIL, "SAMSUNG_PAY", json!({"cardCaptureInformation": {"captureMethod": "CAMERA"}, "deviceInformation": {"language": "fr-FR"}})).await?;
    let otp: Vec<_> = methods
        .iter()
        .filter(|m| m.1 == "sms" || m.1 == "email")
        .collect();
    p.expect(
        otp.len() == 1 && otp.first().is_some_and(|m| m.1 == "email"),
        "only an e-mail OTP method (no phone on file)",
    );
    if let Some((id, _, value)) = methods.iter().find(|m| m.1 == "email").cloned() {
        p.step(
            "wallet",
            &format!("user picks e-mail to {value}; the network generates OTP 0071"),
        );
        let a = tsh
            .send_otp(cid, &card_ref, "0071", Some(&id), "SAMSUNG_PAY")
            .await?;
        p.call(
            "sendOTP",
            &a,
            "OTP delivered (template in the device's language, French)",
        );
        p.expect(a.status == 200, "sendOTP accepted");
        show_message(&mut p, &outbox, "0071")?;
    }
    activate(
        &tsh,
        &mut p,
        &state,
        cid,
        &card_ref,
        "SAMSUNG_PAY",
        "DNITHE000000000000000003",
        "4895370098765432",
    )
    .await?;

    // 4. Red
    p.title(&format!("4. Red: {} ({})", RED.label, masked(RED.pan)));
    let cid = "demo-red-0004";
    eligibility(&tsh, &mut p, cid, &RED, "APPLE_PAY").await?;
    let a = tsh
        .request_digitization(
            cid,
            RED.pan,
            RED.exp,
            "APPLE_PAY",
            json!({"scoringInformation": {"deviceScore": "1", "levelOfTrust": "yellow"}}),
        )
        .await?;
    let why = rule_of(&state, cid).await;
    p.call(
        "requestCardDigitization",
        &a,
        &format!(
            "levelOfTrust={} (rule {why})",
            a.str("levelOfTrust").unwrap_or("?")
        ),
    );
    p.expect(
        a.str("levelOfTrust") == Some("red") && why == "lowest-risk-score",
        "red by lowest-risk-score",
    );
    p.step(
        "wallet",
        "tells the user the card cannot be added; no token is made",
    );
    let a = tsh
        .check_eligibility("demo-blocked-0005", BLOCKED.pan, BLOCKED.exp, "APPLE_PAY")
        .await?;
    p.call(
        "checkCardEligibility",
        &a,
        &format!(
            "{} ({}): {}",
            BLOCKED.label,
            masked(BLOCKED.pan),
            a.str("errorMessage").unwrap_or("")
        ),
    );
    p.expect(a.code() == 159, "blocked card refused with 159");

    // 5. Failed delivery
    p.title(&format!(
        "5. Failed delivery: {} ({})",
        FAILING.label,
        masked(FAILING.pan)
    ));
    let cid = "demo-failed-0006";
    let (card_ref, _) = eligibility(&tsh, &mut p, cid, &FAILING, "APPLE_PAY").await?;
    let methods = digitize_yellow(
        &tsh,
        &mut p,
        &state,
        cid,
        &FAILING,
        "APPLE_PAY",
        json!({"captureMethod": "MANUAL"}),
    )
    .await?;
    if let Some((id, _, value)) = methods.iter().find(|m| m.1 == "sms").cloned() {
        p.step(
            "ops",
            "the SMS channel breaks (its outbox folder becomes unwritable)",
        );
        let saved = outbox.with_extension("saved");
        std::fs::rename(&outbox, &saved)?;
        std::fs::write(&outbox, b"not a folder")?;
        p.step(
            "wallet",
            &format!("user picks SMS to {value}; the network generates OTP 771020"),
        );
        let a = tsh
            .send_otp(cid, &card_ref, "771020", Some(&id), "APPLE_PAY")
            .await?;
        p.call(
            "sendOTP",
            &a,
            &format!(
                "TSH is told the truth: {}",
                a.str("errorMessage").unwrap_or("")
            ),
        );
        p.expect(a.code() == 911, "delivery failure answered 911");
        std::fs::remove_file(&outbox)?;
        std::fs::rename(&saved, &outbox)?;
        p.step(
            "ops",
            "the channel is repaired; the wallet lets the user try again",
        );
        let a = tsh
            .send_otp(cid, &card_ref, "771020", Some(&id), "APPLE_PAY")
            .await?;
        p.call("sendOTP", &a, "the retry after a failure is sent");
        p.expect(a.status == 200, "retry after failure sent");
        show_message(&mut p, &outbox, "771020")?;
    } else {
        p.expect(false, "an SMS method");
    }

    // What the gateway recorded
    p.title("What the gateway recorded for enrolment demo-yellow-sms-0002");
    if let Some(e) = state.store.enrolment("demo-yellow-sms-0002").await? {
        p.step(
            "record",
            &format!(
                "state {}, decision {} by rule {}",
                e.state,
                e.decision.map(|d| d.as_str()).unwrap_or_default(),
                e.decision_rule.unwrap_or_default()
            ),
        );
    }
    for c in state.store.calls("demo-yellow-sms-0002").await? {
        p.step(
            "call",
            &format!("{:<24} {} {}", c.operation, c.response_code, c.outcome),
        );
    }
    for s in state.store.sends("demo-yellow-sms-0002").await? {
        p.step(
            "send",
            &format!(
                "{} to {} via {}: {} in {} (the OTP itself is never stored)",
                s.channel, s.destination_masked, s.provider, s.outcome, s.latency_ms
            ),
        );
    }
    crate::demo_lifecycle::show(
        &mut p,
        &config,
        &state,
        &tsh_sim,
        &tsh,
        admin,
        &green_ref,
        (GREEN.pan, GREEN.exp, "VISA_PLATINUM", "1231"),
        &dir,
    )
    .await?;
    crate::demo_lifecycle::show_activations(
        &mut p,
        &state,
        &tsh_sim,
        &tsh,
        admin,
        app_api,
        (YELLOW_SMS.pan, YELLOW_SMS.exp),
        (YELLOW_EMAIL.pan, YELLOW_EMAIL.exp),
    )
    .await?;
    let health = reqwest::get(format!("http://{admin}/health"))
        .await?
        .status();
    p.step("admin", &format!("GET /health -> {health}"));

    let _ = stop_tx.send(());
    server.await??;

    let log = std::fs::read_to_string(&log_path)?;
    let leaks: Vec<&&str> = SECRETS
        .iter()
        .chain(["482913", "771020"].iter())
        .filter(|s| log.contains(**s))
        .collect();
    println!();
    println!(
        "== Log check: {} lines in {}, {} of {} card numbers, phone numbers, e-mail addresses and OTPs found in it",
        log.lines().count(),
        log_path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("gateway.log"),
        leaks.len(),
        SECRETS.len() + 2
    );
    p.expect(leaks.is_empty(), "no sensitive value in the log");
    println!();
    if p.ok {
        println!("All steps went as expected.");
    } else {
        println!("Some steps did not go as expected (see !! above).");
    }
    Ok(p.ok)
}

fn masked(pan: &str) -> String {
    crate::domain::Pan::parse(pan)
        .map(|p| p.masked())
        .unwrap_or_default()
}

async fn eligibility(
    tsh: &Tsh,
    p: &mut Printer,
    cid: &str,
    card: &Card,
    wallet: &str,
) -> anyhow::Result<(String, String)> {
    p.step(
        "wallet",
        &format!(
            "user adds the card to {} (correlation id {cid})",
            crate::delivery::template::wallet_display_name(wallet)
        ),
    );
    let a = tsh
        .check_eligibility(cid, card.pan, card.exp, wallet)
        .await?;
    let card_ref = a.str("issuerCardRefId").unwrap_or("").to_owned();
    let product = a.str("productId").unwrap_or("").to_owned();
    p.call(
        "checkCardEligibility",
        &a,
        &format!("eligible, issuerCardRefId={card_ref}, productId={product}"),
    );
    p.expect(a.status == 200 && !card_ref.is_empty(), "eligible");
    Ok((card_ref, product))
}

async fn digitize_yellow(
    tsh: &Tsh,
    p: &mut Printer,
    state: &crate::state::SharedState,
    cid: &str,
    card: &Card,
    wallet: &str,
    extra: serde_json::Value,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let a = tsh
        .request_digitization(cid, card.pan, card.exp, wallet, extra)
        .await?;
    let methods: Vec<(String, String, String)> = a
        .body
        .get("idvMethodList")
        .and_then(|l| l.as_array())
        .map(|l| {
            l.iter()
                .map(|m| {
                    let f = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    (f("id"), f("type"), f("value"))
                })
                .collect()
        })
        .unwrap_or_default();
    let why = rule_of(state, cid).await;
    let list: Vec<String> = methods.iter().map(|(_, t, v)| format!("{t} {v}")).collect();
    p.call(
        "requestCardDigitization",
        &a,
        &format!(
            "levelOfTrust={} (rule {why}), methods: {}",
            a.str("levelOfTrust").unwrap_or("?"),
            list.join(", ")
        ),
    );
    p.expect(a.str("levelOfTrust") == Some("yellow"), "yellow");
    Ok(methods)
}

#[allow(clippy::too_many_arguments)]
async fn activate(
    tsh: &Tsh,
    p: &mut Printer,
    state: &crate::state::SharedState,
    cid: &str,
    card_ref: &str,
    wallet: &str,
    vcid: &str,
    dpan: &str,
) -> anyhow::Result<()> {
    p.step("network", "the token is provisioned and activated");
    let a = tsh
        .notify(
            cid,
            card_ref,
            vcid,
            "ACTIVATE",
            wallet,
            Some((dpan, "1229")),
        )
        .await?;
    let token = state.store.token(vcid).await?;
    let enrolment = state.store.enrolment(cid).await?;
    let summary = format!(
        "ACTIVATE: token ...{} {}, enrolment {}",
        token
            .as_ref()
            .and_then(|t| t.dpan_last4.clone())
            .unwrap_or_default(),
        token.as_ref().map(|t| t.state.clone()).unwrap_or_default(),
        enrolment
            .as_ref()
            .map(|e| e.state.clone())
            .unwrap_or_default()
    );
    p.call("notifyVirtualCardChange", &a, &summary);
    p.expect(
        a.status == 200
            && token.is_some_and(|t| t.state == "active")
            && enrolment.is_some_and(|e| e.state == "complete"),
        "token active, enrolment complete",
    );
    let again = tsh
        .notify(
            cid,
            card_ref,
            vcid,
            "ACTIVATE",
            wallet,
            Some((dpan, "1229")),
        )
        .await?;
    p.call(
        "notifyVirtualCardChange",
        &again,
        "the same notice again: recorded once, nothing changes",
    );
    p.expect(again.status == 200, "duplicate notice accepted");
    show_activation_notice(p, state, card_ref, vcid).await?;
    Ok(())
}

async fn rule_of(state: &crate::state::SharedState, cid: &str) -> String {
    state
        .store
        .enrolment(cid)
        .await
        .ok()
        .flatten()
        .and_then(|e| e.decision_rule)
        .unwrap_or_else(|| "?".into())
}

/// The outbox messages holding `text` (an OTP: the activation notices are messages too).
fn count_messages(outbox: &Path, text: &str) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(outbox)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(text)))
        .count())
}

/// Prints the newest outbox message holding `otp` (the message as the cardholder receives it),
/// failing the step when there is none.
fn show_message(p: &mut Printer, outbox: &Path, otp: &str) -> anyhow::Result<()> {
    let shown = print_newest(outbox, |t| t.contains(otp))?;
    p.expect(shown, "the message holds the OTP exactly");
    Ok(())
}

/// Prints the newest outbox message for which `pick` holds; false when there is none.
fn print_newest(outbox: &Path, pick: impl Fn(&str) -> bool) -> anyhow::Result<bool> {
    let mut entries: Vec<_> = std::fs::read_dir(outbox)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
    for entry in entries {
        let text = std::fs::read_to_string(entry.path())?;
        if pick(&text) {
            println!("   cardholder receives:");
            for line in text.lines() {
                println!("      | {line}");
            }
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits (up to 5 s) for the activation notice of token `vcid` to be sent in the background, and
/// prints it as the cardholder receives it.
async fn show_activation_notice(
    p: &mut Printer,
    state: &crate::state::SharedState,
    card_ref: &str,
    vcid: &str,
) -> anyhow::Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let notice = loop {
        let rows = state.store.cardholder_notices_of_card(card_ref).await?;
        let row = rows
            .into_iter()
            .find(|n| n.virtual_card_id == vcid && n.state != "waiting");
        if row.is_some() || std::time::Instant::now() > until {
            break row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let sent = notice.as_ref().is_some_and(|n| n.state == "sent");
    if let Some(n) = &notice {
        p.step(
            "gateway",
            &format!(
                "tells the cardholder the card was added ({} to {}, in the background: TSH's answer did not wait)",
                n.channel.as_deref().unwrap_or("?"),
                n.destination_masked.as_deref().unwrap_or("?")
            ),
        );
    }
    // The notice is the newest message: nothing else was sent since the ACTIVATE.
    let shown = sent && print_newest(&state.config.outbox.dir, |_| true)?;
    p.expect(shown, "the activation notice reached the cardholder once");
    Ok(())
}
