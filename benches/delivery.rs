//! OTP delivery benchmark: the gateway's own latency per `sendOTP`, on top of the provider's,
//! and sends per second, for the `twilio` SMS channel against a local SMS mock and the `smtp`
//! e-mail channel against a local SMTP sink, both on loopback.
//!
//! `cargo bench --bench delivery` (full run), `cargo bench --bench delivery -- --quick` or
//! `IG_BENCH_QUICK=1` (short run). Settings: `IG_BENCH_SENDS` (sends per run, at most),
//! `IG_BENCH_SECONDS` (seconds per run, at most), `IG_BENCH_CARDS` (cards, one yellow
//! enrolment each), `IG_BENCH_CONCURRENCY` (e.g. `1,16`), `IG_BENCH_PROVIDER_DELAY_MS` (time
//! the mock and the sink wait before accepting), `IG_BENCH_DATABASE_URL` (a scratch database
//! instead of a fresh SQLite file).
//! Without `--bench` (as under `cargo test --benches`) it makes a few sends only, as a smoke test.
//!
//! Per send: client latency is what the TSH stand-in observes for the `sendOTP` call; provider
//! latency is measured on the provider's side (the SMS mock: from the request to its answer; the
//! SMTP sink: from the first command of the transaction, or the connection, to the 250 after
//! DATA), matched to the send by its OTP; the gateway's added latency is their difference. For
//! e-mail it also prints how much of the provider time the sink spent waiting for the end of
//! DATA after the body had arrived: time the client's write pattern costs, not the relay's.
//! Figures are printed, never asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use axum::http::StatusCode;
use axum::response::IntoResponse;
use issuer_gateway::app::Application;
use issuer_gateway::config::{Config, Secret};
use issuer_gateway::sim::Tsh;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const ISSUER_ID: &str = "BENCHBANK1";
const WALLET: &str = "GOOGLE_PAY";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// OTPs are distinct 8-digit numbers, so each provider-side record finds its send.
const OTP_BASE: u64 = 10_000_000;

/// Provider-side time per OTP, filled by the SMS mock and the SMTP sink: the whole span, and
/// the part of it the SMTP sink spent waiting for the end of DATA once the body had come.
type Spans = Arc<Mutex<HashMap<String, (Duration, Duration)>>>;

struct Settings {
    mode: &'static str,
    cards: usize,
    sends: usize,
    /// A run also stops once it has lasted this long.
    budget: Duration,
    levels: Vec<usize>,
    delay: Duration,
    database_url: Option<String>,
}

impl Settings {
    fn from_env() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let num = |k: &str| env(k).and_then(|v| v.trim().parse::<usize>().ok());
        let quick =
            args.iter().any(|a| a == "--quick") || env("IG_BENCH_QUICK").is_some_and(|v| v != "0");
        let (mode, cards, sends, seconds) = if !args.iter().any(|a| a == "--bench") {
            ("smoke", 4, 8, 5)
        } else if quick {
            ("quick", 64, 300, 2)
        } else {
            ("full", 256, 2000, 10)
        };
        let levels = env("IG_BENCH_CONCURRENCY")
            .map(|v| {
                v.split(',')
                    .filter_map(|c| c.trim().parse::<usize>().ok())
                    .filter(|c| *c > 0)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| vec![1, 16]);
        Settings {
            mode,
            cards: num("IG_BENCH_CARDS").unwrap_or(cards).max(1),
            sends: num("IG_BENCH_SENDS").unwrap_or(sends).max(1),
            budget: Duration::from_secs(num("IG_BENCH_SECONDS").unwrap_or(seconds).max(1) as u64),
            levels,
            delay: Duration::from_millis(num("IG_BENCH_PROVIDER_DELAY_MS").unwrap_or(0) as u64),
            database_url: env("IG_BENCH_DATABASE_URL"),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings))
}

async fn run(s: Settings) -> anyhow::Result<()> {
    issuer_gateway::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys");
    issuer_gateway::keys::generate(&keys, 2048, "bench issuer")?;
    let spans = Spans::default();
    let sms_url = start_sms_mock(spans.clone(), s.delay).await?;
    let smtp_port = start_smtp_sink(spans.clone(), s.delay).await?;

    let mut config = Config::default();
    config.issuer.id = ISSUER_ID.into();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.keys.pkcs7_private_keys = vec![keys.join("issuer-pkcs7-key.pem")];
    config.keys.pan_index_key_file = Some(keys.join("pan-index.key"));
    config.outbox.dir = dir.path().join("outbox");
    config.database.url = s
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("gateway.db").display()));
    config.sms.provider = issuer_gateway::config::SmsProvider::Twilio;
    config.sms.base_url = sms_url;
    config.sms.account_sid = ACCOUNT_SID.into();
    config.sms.auth_token = Secret::new("bench-auth-token");
    config.sms.from = "+15005550006".into();
    config.email.provider = issuer_gateway::config::EmailProvider::Smtp;
    config.email.host = "127.0.0.1".into();
    config.email.port = smtp_port;
    config.email.tls = issuer_gateway::config::SmtpTls::None;
    config.email.from = "Card Services <no-reply@bank.example>".into();
    // The benchmark measures delivery, not the rate limits: out of the way.
    config.limits.sends_per_enrolment = 1_000_000;
    config.limits.sends_per_card = 1_000_000;
    config.limits.sends_per_destination = 1_000_000;
    config.limits.sms_per_second = 1_000_000;
    config.limits.email_per_second = 1_000_000;
    config.controls.destination_change_hold_hours = 0;

    let run_id = hex::encode(issuer_gateway::data_keys::random_bytes::<4>());
    let cards: Vec<Card> = (0..s.cards).map(Card::new).collect();
    let file = dir.path().join("cards.csv");
    let mut csv = String::from("pan,exp,status,product_id,phone,email,language,wallets\n");
    for c in &cards {
        csv.push_str(&format!(
            "{},1230,active,VISA_CLASSIC,{},{},en,\n",
            c.pan, c.phone, c.email
        ));
    }
    std::fs::write(&file, csv)?;
    issuer_gateway::card_file::import_cards(&config, &file).await?;

    let app = Application::build(config.clone()).await?;
    let api = app.api_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let certificate = std::fs::read_to_string(keys.join("issuer-pkcs7-cert.pem"))?;
    let tsh = Tsh::new(
        &format!("http://{api}{}", config.server.base_path),
        ISSUER_ID,
        &certificate,
    )?;

    let started = Instant::now();
    let enrolments = Arc::new(enrol(&tsh, &cards, &run_id).await?);
    let backend = if config.database.url.starts_with("sqlite:") {
        "SQLite (synchronous = FULL)"
    } else {
        "PostgreSQL"
    };
    println!(
        "OTP delivery benchmark ({} run): up to {} sends or {} s per run, {} yellow enrolments, \
         {backend}, provider delay {} ms, {} CPU(s); enrolments made in {:.1} s",
        s.mode,
        s.sends,
        s.budget.as_secs(),
        enrolments.len(),
        s.delay.as_millis(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<7} {:>4} {:>6} {:>6} {:>8}  {:>17}  {:>17}  {:>17}",
        "channel",
        "conc",
        "sends",
        "failed",
        "sends/s",
        "client p50/p99",
        "provider p50/p99",
        "added p50/p99"
    );
    let otp_seq = Arc::new(AtomicU64::new(OTP_BASE));
    let warmup = s.levels.iter().copied().max().unwrap_or(1);
    for channel in [Channel::Sms, Channel::Email] {
        // Fills the connection pools (client, gateway to provider) before measuring.
        let _ = phase(
            &tsh,
            &enrolments,
            channel,
            warmup,
            warmup * 4,
            s.budget,
            &otp_seq,
        )
        .await;
        spans.lock().unwrap().clear();
        for &conc in &s.levels {
            let p = phase(
                &tsh,
                &enrolments,
                channel,
                conc,
                s.sends,
                s.budget,
                &otp_seq,
            )
            .await;
            report(channel, conc, &p, &spans);
        }
    }
    println!("(latencies in ms; added = client - provider, per send)");

    let _ = stop.send(());
    gateway.await??;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Channel {
    Sms,
    Email,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

struct Card {
    pan: String,
    phone: String,
    email: String,
}

impl Card {
    /// Distinct Luhn-valid PANs, phone numbers and e-mail addresses.
    fn new(i: usize) -> Card {
        Card {
            pan: issuer_gateway::domain::pan::with_luhn_check_digit(&format!("4000{i:011}")),
            phone: format!("+4477009{:05}", i % 100_000),
            email: format!("holder{i}@example.com"),
        }
    }
}

struct Enrolment {
    cid: String,
    card_ref: String,
    sms: String,
    email: String,
}

/// One yellow enrolment per card (eligibility, then digitization with manual capture), four at
/// a time.
async fn enrol(tsh: &Tsh, cards: &[Card], run_id: &str) -> anyhow::Result<Vec<Enrolment>> {
    let work: Vec<(usize, String, String)> = cards
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.pan.clone(), format!("bench-{run_id}-{i}")))
        .collect();
    let work = Arc::new(Mutex::new(work));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (tsh, work) = (tsh.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let Some((i, pan, cid)) = work.lock().unwrap().pop() else {
                    return Ok::<_, anyhow::Error>(done);
                };
                let a = tsh.check_eligibility(&cid, &pan, "1230", WALLET).await?;
                let card_ref = a
                    .str("issuerCardRefId")
                    .filter(|_| a.status == 200)
                    .ok_or_else(|| anyhow::anyhow!("eligibility: {} {}", a.status, a.body))?
                    .to_owned();
                let d = tsh
                    .request_digitization(
                        &cid,
                        &pan,
                        "1230",
                        WALLET,
                        json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}}),
                    )
                    .await?;
                if d.status != 200 || d.str("levelOfTrust") != Some("yellow") {
                    anyhow::bail!("digitization did not step up: {} {}", d.status, d.body);
                }
                let method = |kind: &str| {
                    d.body
                        .get("idvMethodList")
                        .and_then(Value::as_array)
                        .and_then(|l| {
                            l.iter()
                                .find(|m| m.get("type").and_then(Value::as_str) == Some(kind))
                        })
                        .and_then(|m| m.get("id").and_then(Value::as_str))
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow::anyhow!("no {kind} method offered: {}", d.body))
                };
                done.push((
                    i,
                    Enrolment {
                        sms: method("sms")?,
                        email: method("email")?,
                        cid,
                        card_ref,
                    },
                ));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, e)| e).collect())
}

struct Phase {
    wall: Duration,
    /// (OTP, client-observed latency) of each accepted send.
    ok: Vec<(String, Duration)>,
    failed: usize,
    first_failure: Option<String>,
}

/// `n` sendOTP calls (fewer if `budget` runs out) on one channel, `conc` at a time, each with a
/// new OTP, spread over the enrolments.
async fn phase(
    tsh: &Tsh,
    enrolments: &Arc<Vec<Enrolment>>,
    channel: Channel,
    conc: usize,
    n: usize,
    budget: Duration,
    otp_seq: &Arc<AtomicU64>,
) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (tsh, enrolments, next, otp_seq) = (
            tsh.clone(),
            enrolments.clone(),
            next.clone(),
            otp_seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || started.elapsed() >= budget {
                    return (ok, failures);
                }
                let e = &enrolments[i % enrolments.len()];
                let otp = otp_seq.fetch_add(1, Ordering::Relaxed).to_string();
                let method = match channel {
                    Channel::Sms => &e.sms,
                    Channel::Email => &e.email,
                };
                match tsh
                    .send_otp(&e.cid, &e.card_ref, &otp, Some(method), WALLET)
                    .await
                {
                    Ok(a) if a.status == 200 => ok.push((otp, a.elapsed)),
                    Ok(a) => failures.push(format!("{} {}", a.status, a.body)),
                    Err(err) => failures.push(err.to_string()),
                }
            }
        }));
    }
    let mut p = Phase {
        wall: Duration::ZERO,
        ok: Vec::with_capacity(n),
        failed: 0,
        first_failure: None,
    };
    for t in tasks {
        let (ok, failures) = t.await.expect("send task");
        p.ok.extend(ok);
        p.failed += failures.len();
        if p.first_failure.is_none() {
            p.first_failure = failures.into_iter().next();
        }
    }
    p.wall = started.elapsed();
    p
}

fn report(channel: Channel, conc: usize, p: &Phase, spans: &Spans) {
    let mut client = Vec::with_capacity(p.ok.len());
    let mut provider = Vec::with_capacity(p.ok.len());
    let mut added = Vec::with_capacity(p.ok.len());
    let mut end_wait = Vec::with_capacity(p.ok.len());
    let mut unmatched = 0usize;
    {
        let mut spans = spans.lock().unwrap();
        for (otp, c) in &p.ok {
            client.push(*c);
            match spans.remove(otp) {
                Some((pr, wait)) => {
                    provider.push(pr);
                    added.push(c.saturating_sub(pr));
                    end_wait.push(wait);
                }
                None => unmatched += 1,
            }
        }
        spans.clear();
    }
    let both = |v: &mut Vec<Duration>| format!("{:>7.3} / {:>7.3}", pct(v, 0.50), pct(v, 0.99));
    println!(
        "{:<7} {:>4} {:>6} {:>6} {:>8.0}  {}  {}  {}",
        channel.name(),
        conc,
        p.ok.len(),
        p.failed,
        p.ok.len() as f64 / p.wall.as_secs_f64().max(1e-9),
        both(&mut client),
        both(&mut provider),
        both(&mut added)
    );
    if channel == Channel::Email {
        println!(
            "        of the provider time, waiting for the end of DATA after the body: {}",
            both(&mut end_wait)
        );
    }
    if let Some(f) = &p.first_failure {
        println!("        first failure: {f}");
    }
    if unmatched > 0 {
        println!("        {unmatched} accepted send(s) not seen by the provider side");
    }
}

/// The nearest-rank percentile, in milliseconds.
fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1].as_secs_f64() * 1000.0
}

/// A Twilio-shaped SMS gateway on loopback: any POST answers 201 with a message sid.
async fn start_sms_mock(spans: Spans, delay: Duration) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let count = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (spans, count) = (spans.clone(), count.clone());
        async move {
            let started = Instant::now();
            let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            // `Body=<otp>+is+your+code...`: the OTP is the first word of the form's Body.
            let otp = std::str::from_utf8(&body).ok().and_then(|b| {
                b.split('&')
                    .find_map(|kv| kv.strip_prefix("Body="))
                    .and_then(|v| v.split('+').next())
                    .map(str::to_owned)
            });
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let n = count.fetch_add(1, Ordering::Relaxed);
            let answer = (
                StatusCode::CREATED,
                axum::Json(json!({"sid": format!("SM{n:032x}"), "status": "queued"})),
            )
                .into_response();
            if let Some(otp) = otp {
                spans
                    .lock()
                    .unwrap()
                    .insert(otp, (started.elapsed(), Duration::ZERO));
            }
            answer
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// An SMTP sink on loopback: 250 to everything, 354 to DATA.
async fn start_smtp_sink(spans: Spans, delay: Duration) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(smtp_session(stream, spans.clone(), delay));
        }
    });
    Ok(port)
}

async fn smtp_session(stream: TcpStream, spans: Spans, delay: Duration) {
    // A transaction's span starts at the connection, or at its first command on a kept one.
    let mut started = Some(Instant::now());
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    if w.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let since = *started.get_or_insert_with(Instant::now);
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n").await;
                return;
            }
            "DATA" => {
                if w.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                // The body's last line only ends with the terminator's CRLF: the wait is
                // timed from the body's first line.
                let mut data = String::new();
                let mut first: Option<Instant> = None;
                let end_wait = loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let first = *first.get_or_insert_with(Instant::now);
                    if line == ".\r\n" {
                        break first.elapsed();
                    }
                    data.push_str(&line);
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some(otp) = otp_in_email(&data) {
                    spans
                        .lock()
                        .unwrap()
                        .insert(otp, (since.elapsed(), end_wait));
                }
                started = None;
                b"250 2.0.0 queued\r\n"
            }
            _ => b"250 OK\r\n",
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// The OTP of a message from the gateway: its base64 body holds the OTP alone on a line.
fn otp_in_email(data: &str) -> Option<String> {
    use base64::Engine;
    let (_, body) = data.split_once("\r\n\r\n")?;
    let compact: String = body.split_whitespace().collect();
    let text = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    let text = String::from_utf8(text).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
}
