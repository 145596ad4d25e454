//! Real OTP delivery: the `twilio` SMS channel against a mock gateway (wiremock) and the `smtp`
//! e-mail channel against an SMTP server written here, on loopback. The OTP reaches the
//! cardholder byte for byte; refusals answer 911, silence answers 921 within the deadline;
//! a retry after success sends nothing, a retry after failure sends again.

use crate::common::*;
use issuer_gateway::app::Application;
use issuer_gateway::config::Secret;
use serde_json::json;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wiremock::matchers::{basic_auth, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const TOKEN: &str = "tw-auth-token";
pub(crate) const MESSAGES: &str =
    "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

pub(crate) fn twilio(c: &mut issuer_gateway::config::Config, base_url: &str, timeout_ms: u64) {
    c.sms.provider = issuer_gateway::config::SmsProvider::Twilio;
    c.sms.base_url = base_url.into();
    c.sms.account_sid = SID.into();
    c.sms.auth_token = Secret::new(TOKEN);
    c.sms.from = "+15005550006".into();
    c.sms.timeout_ms = timeout_ms;
}

pub(crate) fn accepted(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(json!({"sid": sid, "status": "queued", "to": "+447700900123"}))
}

/// The form fields of one request the mock gateway received.
fn form(req: &wiremock::Request) -> Vec<(String, String)> {
    let body = std::str::from_utf8(&req.body).unwrap();
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn sms_requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

pub(crate) fn sms_method(methods: &[(String, String, String)]) -> String {
    methods
        .iter()
        .find(|m| m.1 == "sms")
        .expect("sms method offered")
        .0
        .clone()
}

pub(crate) fn email_method(methods: &[(String, String, String)]) -> String {
    methods
        .iter()
        .find(|m| m.1 == "email")
        .expect("email method offered")
        .0
        .clone()
}

/// No phone number, e-mail address or OTP in an error answer.
fn assert_clean(a: &issuer_gateway::sim::Answer, otp: &str) {
    let text = a.body.to_string();
    for secret in sensitive_values().into_iter().chain([otp]) {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_gateway_receives_the_exact_otp_once() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(basic_auth(SID, TOKEN))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(accepted("SM00000000000000000000000000000001"))
        .mount(&gateway)
        .await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| twilio(c, &gateway.uri(), 2000)).await;

    // Leading zeros, then letters, punctuation, form-encoding metacharacters and non-ASCII.
    for (i, (card, otp)) in [(ALICE, "000042"), (BOB, "0a-B+9 &=%2F é€")]
        .into_iter()
        .enumerate()
    {
        let cid = format!("sms-exact-{i}");
        let (card_ref, methods) = app.enrol_to_yellow(&cid, card, "GOOGLE_PAY").await;
        let a = app
            .tsh()
            .send_otp(
                &cid,
                &card_ref,
                otp,
                Some(&sms_method(&methods)),
                "GOOGLE_PAY",
            )
            .await
            .unwrap();
        assert_eq!((a.status, a.body.clone()), (200, json!({})), "{otp}");
        let reqs = sms_requests(&gateway).await;
        assert_eq!(reqs.len(), i + 1);
        let f = form(&reqs[i]);
        assert_eq!(field(&f, "To"), card.phone.unwrap());
        assert_eq!(field(&f, "From"), "+15005550006");
        assert!(
            field(&f, "Body").starts_with(&format!("{otp} is your code to add your card ending")),
            "{:?}",
            field(&f, "Body")
        );
        let sends = app.gw.state.store.sends(&cid).await.unwrap();
        assert_eq!(sends.len(), 1);
        assert_eq!(
            (sends[0].provider.as_str(), sends[0].outcome.as_str()),
            ("twilio", "accepted")
        );
        assert_eq!(
            sends[0].provider_message_id.as_deref(),
            Some("SM00000000000000000000000000000001")
        );

        // The same call again: 200, and nothing new reaches the gateway.
        let again = app
            .tsh()
            .send_otp(
                &cid,
                &card_ref,
                otp,
                Some(&sms_method(&methods)),
                "GOOGLE_PAY",
            )
            .await
            .unwrap();
        assert_eq!(again.status, 200);
        assert_eq!(
            sms_requests(&gateway).await.len(),
            i + 1,
            "a retry after success sent again"
        );
    }
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_gateway_refusals_answer_136_and_a_retry_sends_again() {
    let gateway = MockServer::start().await;
    // First a 400 with Twilio's error shape (echoing the number), then a 500, then acceptance.
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"code": 21211, "message": "The 'To' number +447700900123 is not a valid phone number.", "status": 400})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("<html>internal error for +447700900123</html>"),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted("SM00000000000000000000000000000002"))
        .with_priority(3)
        .mount(&gateway)
        .await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| twilio(c, &gateway.uri(), 2000)).await;
    let cid = "sms-refused";
    let otp = "731904";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    let m = sms_method(&methods);

    let a = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!((a.status, a.code()), (400, 911), "{:?}", a.body);
    assert_clean(&a, otp);
    let b = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!(b.code(), 911, "{:?}", b.body);
    assert_clean(&b, otp);
    assert_eq!(
        sms_requests(&gateway).await.len(),
        2,
        "a retry after failure sends again"
    );
    // Third try: accepted.
    let c = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(sms_requests(&gateway).await.len(), 3);

    let sends = app.gw.state.store.sends(cid).await.unwrap();
    let got: Vec<(&str, Option<&str>)> = sends
        .iter()
        .map(|s| (s.outcome.as_str(), s.provider_code.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("refused", Some("21211")),
            ("refused", Some("500")),
            ("accepted", None)
        ]
    );
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_gateway_that_never_answers_gives_137_within_the_deadline() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted("SMlate").set_delay(Duration::from_secs(60)))
        .mount(&gateway)
        .await;
    let timeout_ms = 700;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| twilio(c, &gateway.uri(), timeout_ms)).await;
    let cid = "sms-silent";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    let started = Instant::now();
    let a = app
        .tsh()
        .send_otp(
            cid,
            &card_ref,
            "123456",
            Some(&sms_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(a.code(), 921, "{:?}", a.body);
    assert!(
        elapsed < Duration::from_millis(timeout_ms + 1000),
        "answered after {elapsed:?}"
    );
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    assert_eq!(sends[0].outcome.as_str(), "timeout");
    app.gw.stop().await;
}

crate::on_both_backends!(
    a_send_never_outlives_its_call,
    an_sms_cut_off_after_its_request_counts_and_is_sent_again_once,
);

/// An SMS gateway that reads each request whole, then closes the connection without a word
/// (what an attacker who can cut connections produces). Returns its URL and the count of
/// requests it read.
pub(crate) async fn cutting_gateway() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                // Dropped here: the connection closes with no answer.
            });
        }
    });
    (url, count)
}

/// A message whose outcome is unclear (the request went out, the connection was cut) counts
/// against the limits, and a retry of the same OTP is sent again once, not forever.
async fn an_sms_cut_off_after_its_request_counts_and_is_sent_again_once(backend: Backend) {
    use issuer_gateway::domain::Reason;
    let (url, requests) = cutting_gateway().await;
    let app = TestApp::spawn_with(backend, |c| twilio(c, &url, 2_000)).await;
    let cid = "sms-cut";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    let sms = sms_method(&methods);
    let send = |otp: &'static str| {
        let tsh = app.tsh().clone();
        let (card_ref, sms) = (card_ref.clone(), sms.clone());
        async move {
            tsh.send_otp(cid, &card_ref, otp, Some(&sms), "GOOGLE_PAY")
                .await
                .unwrap()
        }
    };
    let sent = || requests.load(Ordering::SeqCst);
    // The first send and one retry of the same OTP go out; both unclear.
    for n in 1..=2 {
        let a = send("111111").await;
        assert_eq!(
            a.code(),
            Reason::DeliveryTimeout.default_number(),
            "{:?}",
            a.body
        );
        assert_eq!(sent(), n);
    }
    // A further retry of that OTP is not sent.
    let a = send("111111").await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(sent(), 2);
    // Both count against the per-enrolment limit (3): one more OTP goes out, then no more.
    let a = send("222222").await;
    assert_eq!(
        a.code(),
        Reason::DeliveryTimeout.default_number(),
        "{:?}",
        a.body
    );
    assert_eq!(sent(), 3);
    let a = send("333333").await;
    assert_eq!(
        a.code(),
        Reason::LimitReached.default_number(),
        "{:?}",
        a.body
    );
    assert_eq!(sent(), 3);
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    let outcomes: Vec<&str> = sends.iter().map(|s| s.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["timeout", "timeout", "timeout"]);
    app.gw.stop().await;
}

/// The provider's deadline is the smaller of the channel's and what is left of the call's, less
/// a margin: with a channel deadline as long as the call's, a silent gateway still gets a
/// delivery timeout (not the call's 500), and the send is recorded as such, not left pending.
async fn a_send_never_outlives_its_call(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted("SMlate").set_delay(Duration::from_secs(60)))
        .mount(&gateway)
        .await;
    let app = TestApp::spawn_with(backend, |c| {
        c.server.request_timeout_ms = 1_500;
        c.database.timeout_ms = 1_000;
        c.email.timeout_ms = 1_000;
        twilio(c, &gateway.uri(), 1_499);
    })
    .await;
    let cid = "sms-outlive";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    let started = Instant::now();
    let a = app
        .tsh()
        .send_otp(
            cid,
            &card_ref,
            "123456",
            Some(&sms_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(
        a.code(),
        issuer_gateway::domain::Reason::DeliveryTimeout.default_number(),
        "{:?}",
        a.body
    );
    assert!(
        elapsed < Duration::from_millis(1_500),
        "answered after {elapsed:?}"
    );
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].outcome.as_str(), "timeout");
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_bad_sms_gateway_url_naming_the_setting() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    // Mistyped URLs that carry the credentials themselves: the refusal names the setting and
    // echoes none of it.
    for url in [
        format!("https://{SID}:{TOKEN}@api.twilio.com"),
        format!("api.twilio.com/{TOKEN}"),
        format!("https://api.twilio.com/?auth={TOKEN}"),
    ] {
        let mut config = fx.config.clone();
        twilio(&mut config, &url, 2000);
        let e = Application::build(config)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(e.starts_with("sms.base_url:"), "{e}");
        assert!(!e.contains(TOKEN), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// An SMTP server on loopback, enough for a submission client.

/// Answers everything, takes every message.
pub(crate) const ACCEPT: u8 = 0;
/// Refuses every recipient with 550 (echoing the address, as relays do).
pub(crate) const REFUSE_RCPT: u8 = 1;
/// Never greets new connections, never answers on open ones.
pub(crate) const SILENT: u8 = 2;
/// Answers until the end of DATA, then never again on that connection.
pub(crate) const MUTE_AFTER_DATA: u8 = 3;
/// Takes the message, then closes the connection instead of answering the end of DATA.
pub(crate) const CLOSE_AFTER_DATA: u8 = 4;

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) mail_from: String,
    pub(crate) rcpt_to: Vec<String>,
    pub(crate) data: String,
}

#[derive(Clone)]
pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    mode: Arc<AtomicU8>,
    received: Arc<Mutex<Vec<Received>>>,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpServer {
    pub(crate) async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = SmtpServer {
            port,
            mode: Arc::new(AtomicU8::new(ACCEPT)),
            received: Arc::new(Mutex::new(Vec::new())),
            sessions: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(60), s.session(stream)).await;
                });
            }
        });
        server
    }

    pub(crate) fn set_mode(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    async fn session(&self, stream: tokio::net::TcpStream) {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut line = String::new();
        self.sessions.fetch_add(1, Ordering::SeqCst);
        let mut muted = false;
        if self.mode.load(Ordering::SeqCst) == SILENT {
            // Never greet; hold the connection until the client gives up.
            while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                line.clear();
            }
            return;
        }
        let _ = w.write_all(b"220 smtp.test ESMTP ready\r\n").await;
        let (mut from, mut rcpt) = (String::new(), Vec::new());
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if muted || self.mode.load(Ordering::SeqCst) == SILENT {
                continue;
            }
            let cmd = line.trim_end().to_owned();
            let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
            let reply: String = match verb.as_str() {
                "EHLO" => "250-smtp.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into(),
                "HELO" | "NOOP" => "250 OK\r\n".into(),
                "RSET" => {
                    from.clear();
                    rcpt.clear();
                    "250 OK\r\n".into()
                }
                "MAIL" => {
                    from = cmd.clone();
                    "250 2.1.0 OK\r\n".into()
                }
                "RCPT" => {
                    if self.mode.load(Ordering::SeqCst) == REFUSE_RCPT {
                        format!(
                            "550 5.1.1 {}: recipient address rejected\r\n",
                            cmd.trim_start_matches("RCPT TO:")
                        )
                    } else {
                        rcpt.push(cmd.clone());
                        "250 2.1.5 OK\r\n".into()
                    }
                }
                "DATA" => {
                    let _ = w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    if matches!(self.mode.load(Ordering::SeqCst), SILENT | MUTE_AFTER_DATA) {
                        muted = true;
                        continue;
                    }
                    if self.mode.load(Ordering::SeqCst) == CLOSE_AFTER_DATA {
                        return;
                    }
                    self.received.lock().unwrap().push(Received {
                        mail_from: std::mem::take(&mut from),
                        rcpt_to: std::mem::take(&mut rcpt),
                        data,
                    });
                    "250 2.0.0 OK: queued as 7F3A2\r\n".into()
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
                    return;
                }
                _ => "502 5.5.2 command not recognised\r\n".into(),
            };
            if w.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

pub(crate) fn smtp(c: &mut issuer_gateway::config::Config, port: u16, timeout_ms: u64) {
    c.email.provider = issuer_gateway::config::EmailProvider::Smtp;
    c.email.host = "127.0.0.1".into();
    c.email.port = port;
    c.email.tls = issuer_gateway::config::SmtpTls::None;
    c.email.from = "Card Services <no-reply@bank.example>".into();
    c.email.timeout_ms = timeout_ms;
}

/// Headers (unfolded) and the decoded body of a received message.
pub(crate) fn parse_message(data: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = data.split_once("\r\n\r\n").expect("header/body separator");
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in head.split("\r\n") {
        if l.starts_with([' ', '\t']) {
            headers.last_mut().unwrap().1.push_str(l);
        } else {
            let (k, v) = l.split_once(':').expect("header line");
            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let cte = headers
        .iter()
        .find(|(k, _)| k == "content-transfer-encoding")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into());
    let text = match cte.as_str() {
        "base64" => {
            use base64::Engine;
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap(),
            )
            .unwrap()
        }
        "7bit" | "8bit" => body.to_owned(),
        other => panic!("unexpected transfer encoding {other}"),
    };
    (headers, text)
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_relay_receives_the_exact_otp_once() {
    let relay = SmtpServer::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| smtp(c, relay.port, 2000)).await;
    for (i, (card, otp)) in [(ALICE, "000731"), (BOB, "Zx-7 .é€=?0A")]
        .into_iter()
        .enumerate()
    {
        let cid = format!("mail-exact-{i}");
        let (card_ref, methods) = app.enrol_to_yellow(&cid, card, "GOOGLE_PAY").await;
        let m = email_method(&methods);
        let a = app
            .tsh()
            .send_otp(&cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
            .await
            .unwrap();
        assert_eq!((a.status, a.body.clone()), (200, json!({})), "{otp}");
        let got = relay.received();
        assert_eq!(got.len(), i + 1);
        let msg = &got[i];
        let to = card.email.unwrap();
        assert_eq!(msg.mail_from, "MAIL FROM:<no-reply@bank.example>");
        assert_eq!(msg.rcpt_to, vec![format!("RCPT TO:<{to}>")]);
        let (headers, text) = parse_message(&msg.data);
        assert_eq!(header_of(&headers, "to"), Some(to));
        assert_eq!(
            header_of(&headers, "from"),
            Some("\"Card Services\" <no-reply@bank.example>")
        );
        assert_eq!(
            header_of(&headers, "subject"),
            Some("Your code to add your card to Google Pay")
        );
        assert_eq!(header_of(&headers, "mime-version"), Some("1.0"));
        assert_eq!(
            header_of(&headers, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(header_of(&headers, "date").is_some_and(|d| !d.is_empty()));
        let message_id = header_of(&headers, "message-id")
            .expect("Message-ID")
            .to_owned();
        assert!(
            message_id.starts_with('<') && message_id.ends_with("@bank.example>"),
            "{message_id}"
        );
        assert!(
            !msg.data.contains(otp),
            "the raw message is encoded, so an OTP seen raw would be a second copy"
        );
        let expected = format!(
            "Hello,\n\nYour verification code to add your card ending {} to Google Pay is:\n\n{otp}\n\n",
            &card.pan[card.pan.len() - 4..]
        );
        assert!(
            text.replace("\r\n", "\n").starts_with(&expected),
            "{text:?}"
        );
        assert!(text.contains(&format!("\r\n{otp}\r\n")), "{text:?}");

        let sends = app.gw.state.store.sends(&cid).await.unwrap();
        assert_eq!(
            (sends[0].provider.as_str(), sends[0].outcome.as_str()),
            ("smtp", "accepted")
        );
        assert_eq!(
            sends[0].provider_message_id.as_deref(),
            Some(message_id.as_str())
        );

        let again = app
            .tsh()
            .send_otp(&cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
            .await
            .unwrap();
        assert_eq!(again.status, 200);
        assert_eq!(
            relay.received().len(),
            i + 1,
            "a retry after success sent again"
        );
    }
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_refused_recipient_answers_136_and_a_retry_sends_again() {
    let relay = SmtpServer::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| smtp(c, relay.port, 2000)).await;
    let cid = "mail-refused";
    let otp = "558201";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    let m = email_method(&methods);
    relay.set_mode(REFUSE_RCPT);
    let a = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!((a.status, a.code()), (400, 911), "{:?}", a.body);
    assert_clean(&a, otp);
    assert!(relay.received().is_empty());

    relay.set_mode(ACCEPT);
    let b = app
        .tsh()
        .send_otp(cid, &card_ref, otp, Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(
        relay.received().len(),
        1,
        "a retry after failure sends again"
    );
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    let got: Vec<(&str, Option<&str>)> = sends
        .iter()
        .map(|s| (s.outcome.as_str(), s.provider_code.as_deref()))
        .collect();
    assert_eq!(got, vec![("refused", Some("550")), ("accepted", None)]);
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_relay_that_never_answers_gives_137_within_the_deadline() {
    let relay = SmtpServer::start().await;
    let timeout_ms = 700;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| smtp(c, relay.port, timeout_ms)).await;

    // One message through, so a kept connection exists; then the relay goes silent, both on
    // that connection and on new ones.
    let (card_ref, methods) = app.enrol_to_yellow("mail-before", BOB, "GOOGLE_PAY").await;
    let a = app
        .tsh()
        .send_otp(
            "mail-before",
            &card_ref,
            "111111",
            Some(&email_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);

    relay.set_mode(SILENT);
    let cid = "mail-silent";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    for _ in 0..2 {
        let started = Instant::now();
        let a = app
            .tsh()
            .send_otp(
                cid,
                &card_ref,
                "222222",
                Some(&email_method(&methods)),
                "GOOGLE_PAY",
            )
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(a.code(), 921, "{:?}", a.body);
        assert!(
            elapsed < Duration::from_millis(timeout_ms + 1000),
            "answered after {elapsed:?}"
        );
    }
    assert_eq!(relay.received().len(), 1);

    // The relay answers again: the next send (a new OTP: that one went out twice already,
    // the retry allowed after an unclear outcome) goes through on a fresh connection.
    relay.set_mode(ACCEPT);
    let a = app
        .tsh()
        .send_otp(
            cid,
            &card_ref,
            "222223",
            Some(&email_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(relay.received().len(), 2);
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_cut_off_after_data_gives_137_and_its_connection_is_not_reused() {
    let relay = SmtpServer::start().await;
    let timeout_ms = 700;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| smtp(c, relay.port, timeout_ms)).await;
    let (card_ref, methods) = app.enrol_to_yellow("mail-first", ALICE, "GOOGLE_PAY").await;
    let a = app
        .tsh()
        .send_otp(
            "mail-first",
            &card_ref,
            "333333",
            Some(&email_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let sessions = relay.sessions();

    // The kept connection carries the next message, but the relay never acknowledges its end.
    relay.set_mode(MUTE_AFTER_DATA);
    let cid = "mail-cut";
    let (card_ref, methods) = app.enrol_to_yellow(cid, BOB, "GOOGLE_PAY").await;
    let m = email_method(&methods);
    let started = Instant::now();
    let b = app
        .tsh()
        .send_otp(cid, &card_ref, "444444", Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!(b.code(), 921, "{:?}", b.body);
    assert!(started.elapsed() < Duration::from_millis(timeout_ms + 1000));
    assert_eq!(relay.sessions(), sessions, "the kept connection was used");

    // The retry goes on a new connection: the one cut off in its transaction is never reused.
    relay.set_mode(ACCEPT);
    let c = app
        .tsh()
        .send_otp(cid, &card_ref, "444444", Some(&m), "GOOGLE_PAY")
        .await
        .unwrap();
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(relay.sessions(), sessions + 1);
    let got = relay.received();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.rcpt_to.len(), 1, "{r:?}");
        assert!(
            !r.data.contains("MAIL FROM") && !r.data.contains("NOOP"),
            "{r:?}"
        );
    }
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    let outcomes: Vec<&str> = sends.iter().map(|s| s.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["timeout", "accepted"]);
    app.gw.stop().await;
}

/// EOF after the end of DATA: the relay may have queued the message. Unclear, like a timeout:
/// counted, and answered as worth a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_closed_after_data_is_an_unclear_outcome() {
    let relay = SmtpServer::start().await;
    relay.set_mode(CLOSE_AFTER_DATA);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| smtp(c, relay.port, 2_000)).await;
    let cid = "mail-eof";
    let (card_ref, methods) = app.enrol_to_yellow(cid, ALICE, "GOOGLE_PAY").await;
    let a = app
        .tsh()
        .send_otp(
            cid,
            &card_ref,
            "555555",
            Some(&email_method(&methods)),
            "GOOGLE_PAY",
        )
        .await
        .unwrap();
    assert_eq!(
        a.code(),
        issuer_gateway::domain::Reason::DeliveryTimeout.default_number(),
        "{:?}",
        a.body
    );
    let sends = app.gw.state.store.sends(cid).await.unwrap();
    assert_eq!(sends[0].outcome.as_str(), "timeout");
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_when_the_relay_is_unusable() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    // Nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = fx.config.clone();
    smtp(&mut config, port, 1000);
    let e = Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.starts_with(&format!("email.host: cannot connect to 127.0.0.1:{port}")),
        "{e}"
    );

    // Accepts the connection but never greets.
    let relay = SmtpServer::start().await;
    relay.set_mode(SILENT);
    let mut config = fx.config.clone();
    smtp(&mut config, relay.port, 500);
    let started = Instant::now();
    let e = Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.starts_with("email.host:") && e.contains("did not answer within 500 ms"),
        "{e}"
    );
    // The check gives up at email.timeout_ms; the rest is the start-up itself (keys, database).
    assert!(started.elapsed() < Duration::from_millis(2500));

    // STARTTLS required but not offered.
    relay.set_mode(ACCEPT);
    let mut config = fx.config.clone();
    smtp(&mut config, relay.port, 1000);
    config.email.tls = issuer_gateway::config::SmtpTls::Starttls;
    let e = Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("STARTTLS"), "{e}");
}
