//! The operator console in a real browser: headless Chromium driven through WebDriver
//! (Debian's `chromium` and `chromium-driver`). An agent logs in with password and TOTP code,
//! sees the overview, searches by BIN + last 4, opens the card, suspends its token and sees the
//! operation reach the simulated TSH (and its notice come back), opens the enrolment's timeline,
//! is refused an action its role lacks and a form without its CSRF token, and is logged out
//! after the idle timeout; a supervisor reads the audit log. No page source visited holds a
//! PAN, the OTP, or a full phone number or e-mail address.
//!
//! Runs when /usr/bin/chromedriver exists; otherwise it says so and passes, except in CI
//! (`CI=true`), where it fails. A screenshot of each page goes to docs/console/ when
//! IG_CONSOLE_SCREENSHOTS=1 (to regenerate the documentation's), else to a temporary folder.

use crate::common::webdriver::Browser;
use crate::common::*;
use issuer_gateway::config::Secret;
use issuer_gateway::sim::tsh::InboundSim;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WALLET: &str = "APPLE_PAY";
const OTP: &str = "482913";

/// chromedriver, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    until("chromedriver to answer", || async {
        reqwest::get(&status)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    driver
}

async fn browser(driver: &Driver) -> Browser {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=en-GB"],
        },
    });
    Browser::start(&driver.url, caps)
        .await
        .expect("a browser session")
}

/// Where the screenshots go.
fn screenshot_dir(tmp: &Path) -> PathBuf {
    if std::env::var("IG_CONSOLE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    } else {
        tmp.join("screenshots")
    }
}

/// What the test keeps of every page it visits: the sources, and a screenshot of some.
struct Visit {
    client: Browser,
    sources: Vec<(String, String)>,
    shots: PathBuf,
}

impl Visit {
    async fn keep(&mut self) -> String {
        let url = self.client.url().await.unwrap();
        let source = self.client.source().await.unwrap();
        self.sources.push((url, source.clone()));
        source
    }

    async fn shot(&mut self, name: &str) -> String {
        let source = self.keep().await;
        std::fs::create_dir_all(&self.shots).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        source
    }

    async fn goto(&mut self, url: &str) -> String {
        self.client.goto(url).await.unwrap();
        self.keep().await
    }

    async fn wait_for_path(&self, path: &str) {
        let c = &self.client;
        until(&format!("the browser to reach {path}"), || async {
            c.path().await.is_ok_and(|p| p == path)
        })
        .await;
    }

    async fn wait_for_text(&self, text: &str) {
        let c = &self.client;
        until(&format!("a page with {text:?}"), || async {
            c.source().await.is_ok_and(|s| s.contains(text))
        })
        .await;
    }

    async fn login(&mut self, base: &str, op: &TestOperator, now_ms: i64) {
        self.goto(&format!("{base}/console/login")).await;
        let c = &self.client;
        c.find("#name")
            .await
            .unwrap()
            .send_keys(&op.name)
            .await
            .unwrap();
        c.find("#password")
            .await
            .unwrap()
            .send_keys(&op.password)
            .await
            .unwrap();
        c.find("#code")
            .await
            .unwrap()
            .send_keys(&op.code(now_ms))
            .await
            .unwrap();
        c.find("form.card button[type=submit]")
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_for_path("/console/overview").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    if !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{CHROMEDRIVER} is missing in CI: .ci/run installs chromium and chromium-driver"
        );
        eprintln!(
            "console_browser: SKIPPED: {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)"
        );
        return;
    }
    // A gateway sending to the simulated inbound TSH, whose notices come back.
    let mut fx = Fixture::new(&Backend::Sqlite).await;
    let thales = fx.path().join("thales");
    issuer_gateway::keys::generate(&thales, 2048, "thales test").unwrap();
    let key = std::fs::read_to_string(thales.join("issuer-pkcs7-key.pem")).unwrap();
    let sim = InboundSim::new(&key, Duration::ZERO).unwrap();
    let (sim_addr, _task) = sim
        .listen("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    fx.config.tsh.encryption_cert = Some(thales.join("issuer-pkcs7-cert.pem"));
    let gw = fx
        .start(|c| {
            c.tsh.base_url = format!("http://{sim_addr}");
            c.tsh.timeout_ms = 500;
            c.admin.token = Secret::new("browser-admin-token");
        })
        .await;
    sim.connect_gateway(gw.tsh.clone());
    let base = format!("http://{}", gw.admin);
    let now = || fx.clock_ms.load(std::sync::atomic::Ordering::SeqCst);

    // Alice's card: a yellow enrolment with an SMS sent, then its token activated.
    let cid = "browser-enrolment-1";
    let a = gw
        .tsh
        .check_eligibility(cid, ALICE.pan, ALICE.exp, WALLET)
        .await
        .unwrap();
    let card_ref = a.str("issuerCardRefId").unwrap().to_owned();
    fx.advance_ms(1_500);
    let d = gw
        .tsh
        .request_digitization(
            cid,
            ALICE.pan,
            ALICE.exp,
            WALLET,
            json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}}),
        )
        .await
        .unwrap();
    assert_eq!(d.str("levelOfTrust"), Some("yellow"), "{:?}", d.body);
    let sms = methods(&d.body)
        .into_iter()
        .find(|m| m.1 == "SMS" || m.1.to_lowercase().contains("sms"))
        .unwrap_or_else(|| methods(&d.body)[0].clone());
    fx.advance_ms(4_000);
    let s = gw
        .tsh
        .send_otp(cid, &card_ref, OTP, Some(&sms.0), WALLET)
        .await
        .unwrap();
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert!(
        fx.outbox().iter().any(|m| m.contains(OTP)),
        "the OTP went out"
    );
    fx.advance_ms(45_000);
    let body = json!({
        "issuerCardRefId": card_ref, "virtualCardId": "VC-BROWSER-1", "walletProviderId": WALLET,
        "tokenStorageId": "DEV-BROWSER-1", "isPrimary": true, "action": "ACTIVATE",
    });
    assert_eq!(
        gw.tsh
            .call("notifyVirtualCardChange", cid, &body)
            .await
            .unwrap()
            .status,
        200
    );
    sim.add_token(&card_ref, "VC-BROWSER-1", WALLET, "DEV-BROWSER-1");

    let agent = add_operator(&gw, "amy.agent", "agent").await;
    let supervisor = add_operator(&gw, "sue.supervisor", "supervisor").await;

    let driver = start_driver().await;
    let mut v = Visit {
        client: browser(&driver).await,
        sources: Vec::new(),
        shots: screenshot_dir(fx.path()),
    };

    // The login page, then password and code.
    v.goto(&format!("{base}/console/login")).await;
    v.shot("login").await;
    v.login(&base, &agent, now()).await;
    let overview = v.shot("overview").await;
    assert!(
        overview.contains("Enrolments by outcome") && overview.contains("<svg"),
        "{overview}"
    );
    assert!(
        overview.contains("/console/enrolments?outcome=yellow"),
        "the numbers link to their lists"
    );

    // Search by BIN + last 4, open the card.
    v.goto(&format!("{base}/console/search")).await;
    v.client
        .find("#q")
        .await
        .unwrap()
        .send_keys("411111 1111")
        .await
        .unwrap();
    v.client
        .find("form.search button")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.wait_for_text("card(s) with BIN 411111").await;
    v.shot("search").await;
    v.client
        .find(&format!("a[href=\"/console/cards/{card_ref}\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.wait_for_path(&format!("/console/cards/{card_ref}")).await;
    let card = v.keep().await;
    assert!(
        card.contains("VC-BROWSER-1") && card.contains("411111"),
        "{card}"
    );

    // Suspend the token, with a reason: the operation reaches the simulated TSH, and its notice
    // comes back and changes the token's state.
    v.client
        .find("#reason-SUSPEND-VC-BROWSER-1 option[value=CARD_LOST]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.client
        .find("button[name=go][value=SUSPEND]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.wait_for_text("Done: token SUSPEND").await;
    v.keep().await;
    until("the SUSPEND at the simulated TSH", || async {
        sim.received().iter().any(|r| {
            r.operation == "updateCardState"
                && r.action.as_deref() == Some("SUSPEND")
                && r.virtual_card_id.as_deref() == Some("VC-BROWSER-1")
                && r.reason.as_deref() == Some("CARD_LOST")
                && r.answered == 200
        })
    })
    .await;
    let c = &v.client;
    until("the token shown suspended", || async {
        c.refresh().await.is_ok()
            && c.source()
                .await
                .is_ok_and(|s| s.contains("<span class=\"state\">suspended</span>"))
    })
    .await;
    // Thales's own state beside ours (getCardInfo), as an agent checks before an Option D
    // activation.
    v.goto(&format!("{base}/console/cards/{card_ref}?refresh=1"))
        .await;
    v.wait_for_text("Thales: SUSPENDED").await;
    let card = v.shot("card").await;
    assert!(card.contains("Resume"), "a suspended token offers Resume");
    assert!(
        !card.contains("value=\"DELETE\""),
        "an agent is offered no delete"
    );

    // An action the agent's role lacks, sent anyway (a hand-made form with the right CSRF
    // token): refused.
    let script = format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/console/cards/{card_ref}/actions';
         const add = (n, v) => {{ const i = document.createElement('input'); i.type = 'hidden'; i.name = n; i.value = v; f.appendChild(i); }};
         add('csrf', document.querySelector('input[name=csrf]').value); add('action', 'DELETE');
         add('token', 'VC-BROWSER-1'); add('reason', 'FRAUD_SUSPECTED'); document.body.appendChild(f); f.submit();"
    );
    v.client.execute(&script).await.unwrap();
    v.wait_for_text("Not allowed").await;
    let refused = v.shot("refused").await;
    assert!(
        refused.contains("Your role (agent) cannot delete tokens"),
        "{refused}"
    );

    // A form without its CSRF token: refused, nothing done.
    v.goto(&format!("{base}/console/cards/{card_ref}")).await;
    v.client
        .execute(
            "document.querySelector('button[name=go][value=RESUME]').form.querySelector('input[name=csrf]').remove();",
        )
        .await
        .unwrap();
    v.client
        .find("button[name=go][value=RESUME]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.wait_for_text("Form refused").await;
    v.keep().await;
    let ops = gw.state.store.operations_of_card(&card_ref).await.unwrap();
    assert_eq!(
        ops.iter()
            .map(|o| o.action.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["SUSPEND".to_owned()],
        "neither the DELETE nor the RESUME was made"
    );

    // The enrolment's timeline.
    v.goto(&format!("{base}/console/cards/{card_ref}")).await;
    v.client
        .find(&format!("a[href=\"/console/enrolments/{cid}\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.wait_for_path(&format!("/console/enrolments/{cid}")).await;
    let timeline = v.shot("enrolment").await;
    assert!(
        timeline.contains("OTP send by sms") && timeline.contains("requestCardDigitization"),
        "{timeline}"
    );
    assert!(timeline.contains("notice ACTIVATE"), "{timeline}");

    // The operation log.
    v.goto(&format!("{base}/console/operations?state=confirmed"))
        .await;
    let operations = v.shot("operations").await;
    assert!(
        operations.contains("amy.agent") && operations.contains("CARD_LOST"),
        "{operations}"
    );

    // Idle for longer than console.idle_timeout_minutes: logged out.
    fx.advance_ms(16 * 60_000);
    v.goto(&format!("{base}/console/overview")).await;
    v.wait_for_path("/console/login").await;
    v.wait_for_text("Your session ended").await;
    v.keep().await;

    // A supervisor reads the audit log.
    v.login(&base, &supervisor, now()).await;
    v.goto(&format!("{base}/console/audit")).await;
    let audit = v.shot("audit").await;
    assert!(
        audit.contains("The chain of") && audit.contains("holds"),
        "{audit}"
    );
    for seen in [
        "amy.agent",
        "token SUSPEND",
        "refused: role",
        "session timeout",
        "CARD_LOST",
    ] {
        assert!(audit.contains(seen), "{seen} in the audit log: {audit}");
    }

    // No page holds a PAN, the OTP, or a full destination.
    let mut secrets: Vec<&str> = sensitive_values();
    secrets.push(OTP);
    for (url, source) in &v.sources {
        for s in &secrets {
            assert!(!source.contains(s), "{url} holds {s}");
        }
    }
    assert!(v.sources.len() >= 12, "{} pages visited", v.sources.len());
    v.client.close().await.unwrap();
    drop(driver);
    gw.stop().await;
}
