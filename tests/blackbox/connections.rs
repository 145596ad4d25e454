//! Connections are bounded at every stage on both listeners: a slow or stalled client is closed
//! by the server (request head, idle keep-alive), connections beyond the cap are closed at once,
//! and calls from well-behaved clients are still served promptly meanwhile. (TLS handshakes:
//! `tls.rs`.)

use crate::common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the test waits for the server to close a connection it should close (far above the
/// configured timeouts, far below "forever").
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// A connection that sent `bytes` and then nothing more.
pub async fn stalled(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    if !bytes.is_empty() {
        s.write_all(bytes).await.unwrap();
    }
    s
}

/// Reads until the server closes the connection (EOF or reset), within `bound`; returns what
/// was read, or `None` if the connection was still open after `bound`.
pub async fn closed_within(s: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

const HALF_HEAD: &[u8] =
    b"POST /issuer/igwapi/v2.0/checkCardEligibility HTTP/1.1\r\nHost: gw\r\nx-issuer-";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_heads_are_closed_and_real_calls_still_served() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.server.header_timeout_ms = 1_000).await;
    let mut api_stalled = Vec::new();
    let mut admin_stalled = Vec::new();
    for _ in 0..50 {
        api_stalled.push(stalled(app.gw.api, HALF_HEAD).await);
        admin_stalled.push(stalled(app.gw.admin, b"GET /health HTTP/1.1\r\nHo").await);
    }
    // A real call is served promptly while they hang.
    let a = tokio::time::timeout(
        Duration::from_secs(3),
        app.tsh()
            .check_eligibility("conn-1", ALICE.pan, ALICE.exp, "APPLE_PAY"),
    )
    .await
    .expect("served promptly")
    .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let health = tokio::time::timeout(
        Duration::from_secs(3),
        reqwest::get(format!("http://{}/health", app.gw.admin)),
    )
    .await
    .expect("health answered promptly")
    .unwrap();
    assert_eq!(health.status(), 200);
    // Every stalled connection is closed by the server.
    for (i, s) in api_stalled
        .iter_mut()
        .chain(admin_stalled.iter_mut())
        .enumerate()
    {
        assert!(
            closed_within(s, CLOSE_BOUND).await.is_some(),
            "stalled connection {i} still open"
        );
    }
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.server.header_timeout_ms = 1_000).await;
    for addr in [app.gw.admin, app.gw.api] {
        let mut s = stalled(addr, b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n").await;
        // The answer comes (200 on admin, the contract's 404/405 on the API), then the idle
        // connection is closed.
        let got = closed_within(&mut s, CLOSE_BOUND)
            .await
            .expect("idle connection closed");
        assert!(
            got.starts_with(b"HTTP/1.1 "),
            "{addr}: no answer before the close"
        );
    }
    app.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.header_timeout_ms = 60_000;
        c.server.max_connections = 4;
        c.admin.max_connections = 4;
    })
    .await;
    for addr in [app.gw.api, app.gw.admin] {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(stalled(addr, b"GET /health HTTP/1.1\r\n").await);
        }
        // Make sure the server accepted the four before the fifth arrives: a fifth complete
        // request on a new connection is closed without an answer.
        let mut fifth = stalled(addr, b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n").await;
        let got = closed_within(&mut fifth, CLOSE_BOUND)
            .await
            .expect("the connection beyond the cap is closed");
        assert!(got.is_empty(), "{addr}: answered beyond the cap");
        // Once one of the held connections goes, a new one is served again.
        drop(held.pop());
        let mut served = false;
        for _ in 0..100 {
            let mut s = stalled(
                addr,
                b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
            )
            .await;
            if let Some(got) = closed_within(&mut s, CLOSE_BOUND).await
                && got.starts_with(b"HTTP/1.1 ")
            {
                served = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(served, "{addr}: a freed slot is not served again");
    }
    app.gw.stop().await;
}
