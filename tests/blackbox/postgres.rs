//! PostgreSQL only (reported as ignored when IG_TEST_POSTGRES_URL is unset): several gateway instances on one
//! database, calls racing each other across them, and a database outage under a stream of calls.
//!
//! Each in-process gateway of a fixture has its own pool, listeners and state, as a separate
//! process would; one scenario runs two real `serve` processes as well.

use crate::common::*;
use issuer_gateway::sim::{Answer, Tsh};
use issuer_gateway::store::Store;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const WALLET: &str = "GOOGLE_PAY";

/// A fixture on a fresh PostgreSQL database with two gateways on it.
async fn two_instances() -> Option<(Fixture, Gateway, Gateway)> {
    let backend = Backend::postgres()?;
    let fx = Fixture::new(&backend).await;
    let a = fx.start(|_| {}).await;
    let b = fx.start(|_| {}).await;
    assert_ne!(a.api, b.api);
    Some((fx, a, b))
}

/// The card reference of ALICE, from an eligibility call.
async fn alice_ref(tsh: &Tsh, cid: &str) -> String {
    let a = tsh
        .check_eligibility(cid, ALICE.pan, ALICE.exp, WALLET)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.str("issuerCardRefId").unwrap().to_owned()
}

fn ok_empty(a: &Answer) {
    assert_eq!((a.status, &a.body), (200, &json!({})), "{a:?}");
}

/// Eligibility on one instance, digitization on the other, sendOTP on the first, the ACTIVATE
/// notice on the second: the enrolment completes with every call recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn an_enrolment_spread_over_two_instances_completes() {
    let Some((fx, a, b)) = two_instances().await else {
        return;
    };
    let cid = "pg-spread-1";
    let card_ref = alice_ref(&a.tsh, cid).await;
    let d = b
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
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_eq!(d.str("levelOfTrust"), Some("yellow"), "{:?}", d.body);
    let offered = methods(&d.body);
    assert_eq!(offered.len(), 2, "{offered:?}");
    // The method offered by instance b is known to instance a.
    let otp = "246810";
    let s = a
        .tsh
        .send_otp(cid, &card_ref, otp, Some(&offered[0].0), WALLET)
        .await
        .unwrap();
    ok_empty(&s);
    let out = fx.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0].contains("To: +447700900123\n") && out[0].contains(otp));
    let n = b
        .tsh
        .notify(
            cid,
            &card_ref,
            "VC-PG-SPREAD",
            "ACTIVATE",
            WALLET,
            Some(("5204730000001234", "1229")),
        )
        .await
        .unwrap();
    ok_empty(&n);
    for gw in [&a, &b] {
        let store = &gw.state.store;
        let e = store.enrolment(cid).await.unwrap().unwrap();
        assert_eq!(e.state, "complete");
        assert_eq!(e.decision.map(|d| d.as_str()), Some("yellow"));
        let calls: Vec<(String, i64)> = store
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
                ("notifyVirtualCardChange".into(), 200),
            ]
        );
        let token = store.token("VC-PG-SPREAD").await.unwrap().unwrap();
        assert_eq!(
            (token.state.as_str(), token.dpan_last4.as_deref()),
            ("active", Some("1234"))
        );
    }
    a.stop().await;
    b.stop().await;
}

/// TSH delivers one notice to both instances at the same moment (a retry racing the original):
/// it is recorded once, and both instances answer 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn a_notice_delivered_to_both_instances_at_once_is_recorded_once() {
    let Some((_fx, a, b)) = two_instances().await else {
        return;
    };
    let card_ref = alice_ref(&a.tsh, "pg-dup-0").await;
    let store = &a.state.store;
    for i in 0..25 {
        let cid = format!("pg-dup-{i}");
        let vc = format!("VC-DUP-{i}");
        let dpan = (i % 2 == 0).then_some(("5204730000001234", "1229"));
        let (x, y) = tokio::join!(
            a.tsh.notify(&cid, &card_ref, &vc, "ACTIVATE", WALLET, dpan),
            b.tsh.notify(&cid, &card_ref, &vc, "ACTIVATE", WALLET, dpan),
        );
        ok_empty(&x.unwrap());
        ok_empty(&y.unwrap());
        let events = store.token_events(&vc).await.unwrap();
        assert_eq!(events.len(), 1, "{vc}: {events:?}");
        assert_eq!(store.token(&vc).await.unwrap().unwrap().state, "active");
        let mut outcomes: Vec<(String, i64)> = store
            .calls(&cid)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.operation == "notifyVirtualCardChange")
            .map(|c| (c.outcome, c.response_code))
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes,
            vec![("duplicate".into(), 200), ("recorded".into(), 200)],
            "{cid}"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A PAN of 16 digits starting with `prefix`, with its Luhn check digit.
fn luhn_pan(prefix: &str) -> String {
    let digits: Vec<u32> = prefix.chars().map(|c| c.to_digit(10).unwrap()).collect();
    assert_eq!(digits.len(), 15);
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

/// A new card imported twice at once (two operators, two instances): it is added once and
/// updated once, never refused or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn one_new_card_imported_twice_at_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let fx = Fixture::new(&backend).await;
    let n = 15;
    for i in 0..n {
        let pan = luhn_pan(&format!("400000{i:09}"));
        let csv = format!(
            "pan,exp,status,product_id,phone,email,language,wallets\n\
             {pan},1229,active,VISA_CLASSIC,+4477009{i:05},c{i}@example.com,en,\n"
        );
        let (x, y) = tokio::join!(fx.import(&csv), fx.import(&csv));
        assert!(
            x.rejected.is_empty() && y.rejected.is_empty(),
            "{x:?} {y:?}"
        );
        assert_eq!(
            (x.added + y.added, x.updated + y.updated),
            (1, 1),
            "{x:?} {y:?}"
        );
    }
    let store = Store::connect(&fx.config.database.url, 2, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(store.count_cards().await.unwrap(), 6 + n);
    store.close().await;
}

/// Checks that the history of a token is one serial chain (each event starts from the state the
/// previous one left: no update was lost) ending in `last`.
async fn assert_serial_history(store: &Store, vc: &str, notices: usize, last: &str) {
    let events = store.token_events(vc).await.unwrap();
    assert_eq!(events.len(), notices, "{vc}: {events:?}");
    let mut state: Option<String> = None;
    for e in &events {
        assert_eq!(e.state_before, state, "{vc}: a lost update in {events:?}");
        state = Some(e.state_after.clone());
    }
    assert_eq!(state.as_deref(), Some(last), "{vc}: {events:?}");
    let token = store.token(vc).await.unwrap().unwrap();
    assert_eq!(token.state, last, "{vc}: {events:?}");
}

/// Different notices of one token at the same moment on two instances (DELETE racing SUSPEND,
/// RESUME and a late ACTIVATE) are applied one after the other: a deleted token stays deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn racing_notices_of_one_token_never_resurrect_it() {
    let Some((_fx, a, b)) = two_instances().await else {
        return;
    };
    let card_ref = alice_ref(&a.tsh, "pg-race-0").await;
    let store = &b.state.store;
    for i in 0..20 {
        let vc = format!("VC-RACE-{i}");
        ok_empty(
            &a.tsh
                .notify(
                    &format!("pg-race-{i}"),
                    &card_ref,
                    &vc,
                    "ACTIVATE",
                    WALLET,
                    None,
                )
                .await
                .unwrap(),
        );
        let cids = [
            format!("lcm-del-{i}"),
            format!("lcm-sus-{i}"),
            format!("lcm-res-{i}"),
            format!("late-act-{i}"),
        ];
        let (w, x, y, z) = tokio::join!(
            a.tsh
                .notify(&cids[0], &card_ref, &vc, "DELETE", WALLET, None),
            b.tsh
                .notify(&cids[1], &card_ref, &vc, "SUSPEND", WALLET, None),
            a.tsh
                .notify(&cids[2], &card_ref, &vc, "RESUME", WALLET, None),
            b.tsh
                .notify(&cids[3], &card_ref, &vc, "ACTIVATE", WALLET, None),
        );
        for r in [w, x, y, z] {
            ok_empty(&r.unwrap());
        }
        assert_serial_history(store, &vc, 5, "deleted").await;
    }
    a.stop().await;
    b.stop().await;
}

/// The same, with two real `serve` processes on one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn two_serve_processes_on_one_database() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let fx = Fixture::new(&backend).await;
    let config = write_config(fx.path(), &fx.config.database.url);
    let (p, q) =
        tokio::task::spawn_blocking(move || (Served::start(&config), Served::start(&config)))
            .await
            .unwrap();
    let tsh = |s: &Served| {
        Tsh::new(
            &format!("http://{}/issuer/igwapi/v2.0", s.api),
            ISSUER_ID,
            &fx.certificate_pem(),
        )
        .unwrap()
    };
    let (tp, tq) = (tsh(&p), tsh(&q));
    let cid = "pg-proc-1";
    let card_ref = alice_ref(&tp, cid).await;
    let d = tq
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
    let offered = methods(&d.body);
    ok_empty(
        &tp.send_otp(cid, &card_ref, "135791", Some(&offered[0].0), WALLET)
            .await
            .unwrap(),
    );
    // The ACTIVATE notice delivered to both processes at once.
    let (x, y) = tokio::join!(
        tp.notify(cid, &card_ref, "VC-PROC-1", "ACTIVATE", WALLET, None),
        tq.notify(cid, &card_ref, "VC-PROC-1", "ACTIVATE", WALLET, None),
    );
    ok_empty(&x.unwrap());
    ok_empty(&y.unwrap());
    // A DELETE racing a SUSPEND and a RESUME.
    let (x, y, z) = tokio::join!(
        tp.notify("lcm-p1", &card_ref, "VC-PROC-1", "DELETE", WALLET, None),
        tq.notify("lcm-p2", &card_ref, "VC-PROC-1", "SUSPEND", WALLET, None),
        tq.notify("lcm-p3", &card_ref, "VC-PROC-1", "RESUME", WALLET, None),
    );
    for r in [x, y, z] {
        ok_empty(&r.unwrap());
    }
    let store = Store::connect(&fx.config.database.url, 2, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        store.enrolment(cid).await.unwrap().unwrap().state,
        "complete"
    );
    assert_serial_history(&store, "VC-PROC-1", 4, "deleted").await;
    store.close().await;
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = p.stop();
        lines.extend(q.stop());
        lines
    })
    .await
    .unwrap();
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 8, "{requests:?}");
    assert!(
        requests.iter().all(|r| r["response_code"] == 200),
        "{requests:?}"
    );
}

/// A TCP proxy in front of PostgreSQL that can be cut: every proxied connection is closed and
/// new ones are refused (the listener is closed) until it is restored on the same port.
///
/// With a freeze marker, a connection whose client sends the marker (a bound parameter, in
/// clear: the gateway speaks to the proxy without TLS) stops forwarding what its client
/// sends next, as a network partition would, while the server stays connected.
struct Proxy {
    addr: SocketAddr,
    command: watch::Sender<bool>,
    state: watch::Receiver<bool>,
    /// How many connections froze.
    frozen: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String, freeze_on: Option<&'static [u8]>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (command, command_rx) = watch::channel(true);
        let (state_tx, state) = watch::channel(true);
        let (frozen_tx, frozen) = watch::channel(0);
        let link = Link {
            upstream,
            freeze_on,
            frozen: Arc::new(frozen_tx),
        };
        let task = tokio::spawn(proxy_loop(listener, addr, link, command_rx, state_tx));
        Proxy {
            addr,
            command,
            state,
            frozen,
            task,
        }
    }

    /// The database URL through this proxy, without TLS (so that a freeze marker is visible).
    fn url(&self, direct: &str) -> String {
        let mut url = reqwest::Url::parse(direct).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "disable");
        url.to_string()
    }

    /// Returns once every proxied connection is closed and the port refuses connections.
    async fn cut(&self) {
        self.command.send_replace(false);
        self.state.clone().wait_for(|up| !*up).await.unwrap();
    }

    /// Returns once the port accepts connections again.
    async fn restore(&self) {
        self.command.send_replace(true);
        self.state.clone().wait_for(|up| *up).await.unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where a proxied connection goes, and when it freezes.
#[derive(Clone)]
struct Link {
    upstream: String,
    freeze_on: Option<&'static [u8]>,
    frozen: Arc<watch::Sender<usize>>,
}

async fn proxy_loop(
    first: TcpListener,
    addr: SocketAddr,
    link: Link,
    mut command: watch::Receiver<bool>,
    state: watch::Sender<bool>,
) {
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => rebind(addr).await,
        };
        state.send_replace(true);
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                r = l.accept() => {
                    if let Ok((s, _)) = r {
                        conns.spawn(forward(s, link.clone()));
                    }
                }
                _ = command.wait_for(|up| !*up) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(l);
        conns.shutdown().await;
        state.send_replace(false);
        if command.wait_for(|up| *up).await.is_err() {
            return;
        }
    }
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..250 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the proxy cannot listen on {addr} again");
}

async fn forward(client: TcpStream, link: Link) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = TcpStream::connect(&link.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
            if let Some(marker) = link.freeze_on {
                if chunk.windows(marker.len()).any(|w| w == marker) {
                    link.frozen.send_modify(|n| *n += 1);
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let down = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        () = up => {}
        _ = down => {}
    }
}

/// The PostgreSQL server's address (host:port) of the fixture's database.
fn upstream(fx: &Fixture) -> String {
    let url = reqwest::Url::parse(&fx.config.database.url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}

/// One call of the stream.
#[derive(Debug, Clone)]
struct Rec {
    notice: bool,
    /// The virtual card id of a notice, the correlation id of an eligibility call.
    id: String,
    start: Instant,
    end: Instant,
    status: u16,
    body: Value,
}

impl Rec {
    fn took(&self) -> Duration {
        self.end - self.start
    }
}

/// Waits (bounded) until `done` holds for the calls recorded so far.
async fn wait_for_calls(recs: &Mutex<Vec<Rec>>, what: &str, done: impl Fn(&[Rec]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&recs.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn health(admin: SocketAddr) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = reqwest::get(format!("http://{admin}/health"))
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

/// The database goes away under a stream of notices and eligibility calls: every call fails
/// fast with the contract's 500 (or succeeds), health says 503, and when the database is back the
/// same gateway serves again by itself; every call answered 200 is in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn database_outage_fails_fast_and_recovers() {
    const DB_TIMEOUT_MS: u64 = 400;
    const REQUEST_TIMEOUT_MS: u64 = 1_500;
    const MARGIN_MS: u64 = 1_000;
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let fx = Fixture::new(&backend).await;
    let proxy = Proxy::start(upstream(&fx), None).await;
    let gw = fx
        .start(|c| {
            c.database.url = proxy.url(&fx.config.database.url);
            c.database.timeout_ms = DB_TIMEOUT_MS;
            c.database.max_connections = 4;
            c.server.request_timeout_ms = REQUEST_TIMEOUT_MS;
            c.sms.timeout_ms = 1_000;
            c.email.timeout_ms = 1_000;
        })
        .await;
    let card_ref = alice_ref(&gw.tsh, "out-0").await;

    let recs = Arc::new(Mutex::new(Vec::<Rec>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for w in 0..3 {
        let (tsh, recs, stop, card_ref) =
            (gw.tsh.clone(), recs.clone(), stop.clone(), card_ref.clone());
        workers.spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let notice = (i + w) % 2 == 0;
                let start = Instant::now();
                let (id, answer) = if notice {
                    let vc = format!("VC-OUT-{w}-{i}");
                    let a = tsh
                        .notify(
                            &format!("out-{w}-{i}"),
                            &card_ref,
                            &vc,
                            "ACTIVATE",
                            WALLET,
                            None,
                        )
                        .await;
                    (vc, a)
                } else {
                    let cid = format!("oel-{w}-{i}");
                    let a = tsh
                        .check_eligibility(&cid, ALICE.pan, ALICE.exp, WALLET)
                        .await;
                    (cid, a)
                };
                let answer = answer.expect("the gateway answers");
                recs.lock().unwrap().push(Rec {
                    notice,
                    id,
                    start,
                    end: Instant::now(),
                    status: answer.status,
                    body: answer.body,
                });
                i += 1;
            }
        });
    }

    // Before: the stream succeeds.
    wait_for_calls(&recs, "successes before the outage", |r| {
        r.iter().filter(|c| c.status == 200).count() >= 10
    })
    .await;
    proxy.cut().await;
    let cut = Instant::now();
    let (h_status, h_body, h_took) = health(gw.admin).await;
    assert_eq!(h_status, 503, "{h_body}");
    assert_eq!(h_body["database"], "unreachable", "{h_body}");
    assert!(
        h_took < Duration::from_millis(DB_TIMEOUT_MS + MARGIN_MS),
        "health took {h_took:?}"
    );
    wait_for_calls(&recs, "calls during the outage", |r| {
        r.iter().filter(|c| c.start >= cut).count() >= 30
    })
    .await;
    let restore_start = Instant::now();
    proxy.restore().await;
    let restored = Instant::now();
    wait_for_calls(&recs, "recovery", |r| {
        r.iter()
            .filter(|c| c.start >= restored && c.status == 200)
            .count()
            >= 10
    })
    .await;
    let health_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body, _) = health(gw.admin).await;
        if status == 200 {
            assert_eq!(body["database"], "ok");
            break;
        }
        assert!(Instant::now() < health_deadline, "health stays {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let recs = recs.lock().unwrap().clone();

    // Every answer is a 200 or the contract's 500, within the request timeout.
    let limit = Duration::from_millis(REQUEST_TIMEOUT_MS + MARGIN_MS);
    for c in &recs {
        match c.status {
            200 => {}
            500 => {
                assert_eq!(c.body["responseCode"], 921, "{c:?}");
                assert!(c.body["errorMessage"].is_string(), "{c:?}");
            }
            _ => panic!("unexpected answer {c:?}"),
        }
        assert!(c.took() <= limit, "a call took {:?}: {c:?}", c.took());
    }
    // Calls wholly inside the outage all failed, fast.
    let during: Vec<&Rec> = recs
        .iter()
        .filter(|c| c.start >= cut && c.end <= restore_start)
        .collect();
    assert!(
        during.len() >= 30,
        "{} calls during the outage",
        during.len()
    );
    assert!(
        during.iter().all(|c| c.status == 500),
        "{:?}",
        during.iter().find(|c| c.status != 500)
    );
    let mut took: Vec<Duration> = during.iter().map(|c| c.took()).collect();
    took.sort();
    let recovery = recs
        .iter()
        .filter(|c| c.start >= restored && c.status == 200)
        .map(|c| c.end - restored)
        .min()
        .unwrap();
    let after = recs.iter().filter(|c| c.start >= restored).count();
    let after_ok = recs
        .iter()
        .filter(|c| c.start >= restored && c.status == 200)
        .count();
    eprintln!(
        "outage: {} calls in all ({} answered 200); {} during the outage, all 500, median {:?}, max {:?}; \
         first 200 {:?} after the database came back; {after_ok} of {after} calls after it answered 200",
        recs.len(),
        recs.iter().filter(|c| c.status == 200).count(),
        during.len(),
        took[took.len() / 2],
        took[took.len() - 1],
        recovery,
    );
    assert!(
        recs.iter()
            .any(|c| c.start >= restored && c.status == 200 && c.notice)
            && recs
                .iter()
                .any(|c| c.start >= restored && c.status == 200 && !c.notice),
        "both operations recover"
    );

    // Nothing acknowledged is lost; nothing is half-written.
    gw.stop().await;
    let store = Store::connect(&fx.config.database.url, 2, Duration::from_secs(5))
        .await
        .unwrap();
    for c in &recs {
        if c.notice {
            let token = store.token(&c.id).await.unwrap();
            let events = store.token_events(&c.id).await.unwrap();
            match (c.status, token) {
                (200, Some(t)) => {
                    assert_eq!(t.state, "active", "{c:?}");
                    assert_eq!(events.len(), 1, "{c:?}");
                }
                (200, None) => panic!("an acknowledged notice is lost: {c:?}"),
                (_, Some(_)) => assert_eq!(events.len(), 1, "{c:?}"),
                (_, None) => assert!(events.is_empty(), "{c:?}"),
            }
        } else if c.status == 200 {
            let calls = store.calls(&c.id).await.unwrap();
            assert!(
                calls
                    .iter()
                    .any(|r| r.operation == "checkCardEligibility" && r.response_code == 200),
                "an acknowledged eligibility call is lost: {c:?}"
            );
        }
    }
    store.close().await;
    drop(proxy);
}

/// A gateway instance that stops talking to the database in the middle of a transaction (a
/// network partition: its connection stays open, the server waits for its next statement) while
/// holding the lock of a token. The call on that instance fails within the request timeout, the
/// server ends the abandoned transaction after `database.timeout_ms`, and the other instance
/// records notices of that token again, rather than waiting for TCP keepalives (hours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn an_instance_stalled_inside_a_transaction_does_not_block_the_others() {
    const DB_TIMEOUT_MS: u64 = 500;
    const REQUEST_TIMEOUT_MS: u64 = 2_000;
    const MARGIN_MS: u64 = 1_000;
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let fx = Fixture::new(&backend).await;
    let proxy = Proxy::start(upstream(&fx), Some(b"token:VC-STALL")).await;
    let timeouts = |c: &mut issuer_gateway::config::Config| {
        c.database.timeout_ms = DB_TIMEOUT_MS;
        c.server.request_timeout_ms = REQUEST_TIMEOUT_MS;
        c.sms.timeout_ms = 1_000;
        c.email.timeout_ms = 1_000;
    };
    let stalled = fx
        .start(|c| {
            c.database.url = proxy.url(&fx.config.database.url);
            timeouts(c);
        })
        .await;
    let other = fx.start(timeouts).await;
    let card_ref = alice_ref(&other.tsh, "stall-0").await;

    let tsh = stalled.tsh.clone();
    let card = card_ref.clone();
    let frozen_call = tokio::spawn(async move {
        tsh.notify("stall-a", &card, "VC-STALL", "ACTIVATE", WALLET, None)
            .await
            .unwrap()
    });
    tokio::time::timeout(
        Duration::from_secs(30),
        proxy.frozen.clone().wait_for(|n| *n >= 1),
    )
    .await
    .expect("the stalled instance takes the token's lock")
    .unwrap();
    let frozen_at = Instant::now();
    // The other instance: bounded retries (TSH retries a 500 too).
    let mut attempts = Vec::new();
    let unblocked = loop {
        let a = other
            .tsh
            .notify("stall-b", &card_ref, "VC-STALL", "ACTIVATE", WALLET, None)
            .await
            .unwrap();
        attempts.push((a.status, a.elapsed));
        if a.status == 200 {
            break frozen_at.elapsed();
        }
        assert_eq!(a.body["responseCode"], 921, "{a:?}");
        assert!(
            frozen_at.elapsed() < Duration::from_secs(10),
            "the other instance is still blocked: {attempts:?}"
        );
    };
    let a = frozen_call.await.unwrap();
    assert_eq!(
        (a.status, &a.body["responseCode"]),
        (500, &json!(921)),
        "{a:?}"
    );
    assert!(
        a.elapsed <= Duration::from_millis(REQUEST_TIMEOUT_MS + MARGIN_MS),
        "{a:?}"
    );
    eprintln!(
        "stall: the stalled call failed after {:?}; the other instance recorded the token {unblocked:?} \
         after the stall began ({} attempts: {attempts:?})",
        a.elapsed,
        attempts.len()
    );
    // Only the other instance's notice is recorded; the abandoned transaction left nothing.
    let store = &other.state.store;
    let events = store.token_events("VC-STALL").await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].correlation_id, "stall-b");
    // The stalled instance serves again by itself (other tokens never froze).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = stalled
            .tsh
            .notify("stall-c", &card_ref, "VC-AFTER", "ACTIVATE", WALLET, None)
            .await
            .unwrap();
        if a.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{a:?}");
    }
    stalled.stop().await;
    other.stop().await;
    drop(proxy);
}

/// Rate limits are counted in the database, so they hold across instances: 40 concurrent
/// sendOTP calls for one card, spread over two gateways, send exactly the per-card quota; and the
/// per-enrolment quota holds when one enrolment's sends alternate between the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn rate_limits_hold_across_two_instances() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let fx = Fixture::new(&backend).await;
    let high_budget = |c: &mut issuer_gateway::config::Config| {
        c.limits.sms_per_second = 1000;
        c.limits.email_per_second = 1000;
    };
    let a = fx.start(high_budget).await;
    let b = fx.start(high_budget).await;
    let mut enrolments = Vec::new();
    for i in 0..14 {
        let cid = format!("rl-{i}");
        let gw = if i % 2 == 0 { &a } else { &b };
        let e = gw
            .tsh
            .check_eligibility(&cid, ALICE.pan, ALICE.exp, WALLET)
            .await
            .unwrap();
        let card_ref = e.str("issuerCardRefId").unwrap().to_owned();
        let d = gw
            .tsh
            .request_digitization(
                &cid,
                ALICE.pan,
                ALICE.exp,
                WALLET,
                json!({"captureMethod": "MANUAL"}),
            )
            .await
            .unwrap();
        let m = methods(&d.body);
        enrolments.push((cid, card_ref, m[0].0.clone(), m[1].0.clone()));
    }
    let mut set = JoinSet::new();
    for n in 0..40usize {
        let tsh = if n % 2 == 0 {
            a.tsh.clone()
        } else {
            b.tsh.clone()
        };
        let (cid, card_ref, sms, email) = enrolments[n % 14].clone();
        set.spawn(async move {
            let method = if n % 3 == 0 { email } else { sms };
            tsh.send_otp(&cid, &card_ref, &format!("{n:06}"), Some(&method), WALLET)
                .await
                .unwrap()
                .code()
        });
    }
    let mut codes = Vec::new();
    while let Some(c) = set.join_next().await {
        codes.push(c.unwrap());
    }
    let sent = codes.iter().filter(|c| **c == 200).count();
    let limited = codes.iter().filter(|c| **c == 164).count();
    assert_eq!((sent, limited), (5, 35), "{codes:?}");
    assert_eq!(fx.outbox().len(), 5);

    // Per enrolment, alternating instances, on a card with room to spare: 3, then 164.
    let (cid, card_ref) = {
        let e = a
            .tsh
            .check_eligibility("rl-bob", BOB.pan, BOB.exp, WALLET)
            .await
            .unwrap();
        let card_ref = e.str("issuerCardRefId").unwrap().to_owned();
        b.tsh
            .request_digitization(
                "rl-bob",
                BOB.pan,
                BOB.exp,
                WALLET,
                json!({"captureMethod": "MANUAL"}),
            )
            .await
            .unwrap();
        ("rl-bob".to_owned(), card_ref)
    };
    let mut answers = Vec::new();
    for n in 0..4 {
        let gw = if n % 2 == 0 { &a } else { &b };
        answers.push(
            gw.tsh
                .send_otp(&cid, &card_ref, &format!("b{n}"), None, WALLET)
                .await
                .unwrap()
                .code(),
        );
    }
    assert_eq!(answers, vec![200, 200, 200, 164]);
    a.stop().await;
    b.stop().await;
}

/// An admin card update racing a card import on PostgreSQL: the update waits for the import
/// (the card's lock) and reads the row afresh, so it never writes back the contact details the
/// import had just replaced. The import is played by hand here, holding its lock, so that the
/// race happens every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
async fn an_admin_update_never_undoes_a_concurrent_import() {
    use sqlx::Connection;
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let fx = Fixture::new(&backend).await;
    let gw = fx
        .start(|c| c.admin.token = issuer_gateway::config::Secret::new("adm-race-token"))
        .await;
    let card = gw
        .state
        .store
        .card_by_pan_index(
            &gw.state
                .data_keys
                .pan_index(&issuer_gateway::domain::Pan::parse(ALICE.pan).unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    // The import: its lock on the card, the new phone written, not yet committed.
    let url = fx.pg.as_ref().unwrap().url.clone();
    let mut import = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut import).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("card-pan:{}", card.pan_index))
        .execute(&mut import)
        .await
        .unwrap();
    sqlx::query("UPDATE cards SET phone_masked = '+********0999', phone_fp = 'new-phone' WHERE pan_index = $1")
        .bind(&card.pan_index)
        .execute(&mut import)
        .await
        .unwrap();
    // The admin update of the status starts meanwhile.
    let admin = gw.admin;
    let card_ref = card.card_ref.clone();
    let update = tokio::spawn(async move {
        reqwest::Client::new()
            .patch(format!("http://{admin}/cards/{card_ref}"))
            .bearer_auth("adm-race-token")
            .json(&json!({"status": "blocked"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    // Until it waits for a lock the import holds (bounded).
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut waiting = false;
    for _ in 0..500 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(&mut watcher)
            .await
            .unwrap();
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waiting, "the admin update never waited for the import");
    sqlx::query("COMMIT").execute(&mut import).await.unwrap();
    assert_eq!(update.await.unwrap(), 200);
    let after = gw
        .state
        .store
        .card_by_ref(&card.card_ref)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status.as_str(), "blocked");
    assert_eq!(
        after.phone_masked.as_deref(),
        Some("+********0999"),
        "the import was undone"
    );
    assert_eq!(after.phone_fp.as_deref(), Some("new-phone"));
    gw.stop().await;
}

/// CI runs the PostgreSQL half: a CI run (CI=true) whose tests were built without
/// IG_TEST_POSTGRES_URL fails here instead of passing with that half ignored.
#[test]
fn ci_runs_the_postgresql_half() {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(
            cfg!(ig_test_postgres)
                && std::env::var("IG_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()),
            "CI=true but IG_TEST_POSTGRES_URL is not set: the PostgreSQL scenarios would be skipped"
        );
    }
}
