//! TSH's inbound side, simulated: the API the issuer calls (`updateCardState`, `updateCard`,
//! `getCardInfo`, `getTokenInfo`), answered as Thales would, over mutual TLS or plain HTTP (for
//! tests). It keeps the tokens it knows, opens `fpanDetails` with its own private key (the one
//! whose certificate the gateway has as `tsh.encryption_cert`) and checks its fields, and sends
//! the matching `notifyVirtualCardChange` back to the gateway, one per token, with the
//! operation's `x-correlation-id`, in the order the operations arrived.
//!
//! Tests script its next answers (a 500, a 400 with a responseCode, a delay past the client's
//! deadline) and read what it received.

use super::Tsh;
use crate::envelope::KeyRing;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A scripted answer for the next request.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Answer this HTTP status with no body (500, 503...).
    Status(u16),
    /// Answer 400 with this `responseCode`.
    Code(i64),
    /// Wait this long before handling the request normally (longer than the client's
    /// deadline: a time-out).
    Delay(Duration),
    /// Handle this request normally (to script the one after it).
    Normal,
}

/// A token as the simulated TSH keeps it.
#[derive(Debug, Clone)]
pub struct SimToken {
    pub virtual_card_id: String,
    pub card_ref: String,
    pub wallet: String,
    pub token_storage_id: String,
    /// Thales's state: `INACTIVE`, `RESUMED`, `SUSPENDED`, `DELETED`.
    pub status: String,
}

/// The card data an `updateCard` carried, as opened by the simulator.
#[derive(Clone)]
pub struct OpenedFpan {
    pub old_fpan: String,
    pub old_exp: String,
    pub new_fpan: String,
    pub new_exp: String,
}

impl std::fmt::Debug for OpenedFpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last4 = |p: &str| {
            p.chars()
                .skip(p.len().saturating_sub(4))
                .collect::<String>()
        };
        write!(
            f,
            "OpenedFpan(old ..{} {}, new ..{} {})",
            last4(&self.old_fpan),
            self.old_exp,
            last4(&self.new_fpan),
            self.new_exp
        )
    }
}

/// One request the simulator received (answered 200 or not).
#[derive(Debug, Clone)]
pub struct Received {
    pub operation: String,
    pub correlation_id: String,
    pub issuer_id: String,
    pub card_ref: String,
    pub virtual_card_id: Option<String>,
    pub action: Option<String>,
    pub reason: Option<String>,
    pub fpan: Option<OpenedFpan>,
    pub key_id: Option<String>,
    /// The HTTP status answered.
    pub answered: u16,
}

#[derive(Default)]
struct SimState {
    tokens: BTreeMap<String, SimToken>,
    received: Vec<Received>,
    script: VecDeque<Scripted>,
}

/// The simulated inbound TSH.
#[derive(Clone)]
pub struct InboundSim {
    state: Arc<Mutex<SimState>>,
    keys: Arc<KeyRing>,
    notices: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Notice>>>>,
    notice_delay: Duration,
    key_id_field: String,
}

struct Notice {
    correlation_id: String,
    card_ref: String,
    virtual_card_id: String,
    wallet: String,
    token_storage_id: String,
    action: String,
}

/// Mutual TLS for the simulator's listener: its certificate, key, and the CA of the clients it
/// accepts.
pub type SimTls = crate::config::TlsConfig;

impl InboundSim {
    /// `key_pem`: the private key that opens `fpanDetails`. Notices are sent, after
    /// `notice_delay`, once [`InboundSim::connect_gateway`] said where.
    pub fn new(key_pem: &str, notice_delay: Duration) -> anyhow::Result<InboundSim> {
        let mut ring = KeyRing::new();
        ring.add_private_key_pem(key_pem)
            .map_err(|e| anyhow::anyhow!("the simulator's fpanDetails key: {e}"))?;
        Ok(InboundSim {
            state: Arc::new(Mutex::new(SimState::default())),
            keys: Arc::new(ring),
            notices: Arc::new(Mutex::new(None)),
            notice_delay,
            key_id_field: "keyId".into(),
        })
    }

    /// The gateway the notices go to (its TSH-facing API, as a TSH client), in the order the
    /// operations arrived. Replaces any earlier one.
    pub fn connect_gateway(&self, tsh: Tsh) {
        let delay = self.notice_delay;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Notice>();
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let body = json!({
                    "issuerCardRefId": n.card_ref,
                    "virtualCardId": n.virtual_card_id,
                    "walletProviderId": n.wallet,
                    "tokenStorageId": n.token_storage_id,
                    "isPrimary": true,
                    "action": n.action,
                    "source": "ISSUER",
                });
                // Again a little later while the gateway does not answer 200 (restarting).
                for _ in 0..40 {
                    match tsh
                        .call("notifyVirtualCardChange", &n.correlation_id, &body)
                        .await
                    {
                        Ok(a) if a.status == 200 => break,
                        _ => tokio::time::sleep(Duration::from_millis(250)).await,
                    }
                }
            }
        });
        *self
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    }

    /// The field of `updateCard` that carries the key identifier (`tsh.key_id_field`).
    pub fn with_key_id_field(mut self, field: &str) -> Self {
        self.key_id_field = field.to_owned();
        self
    }

    /// Serves on `listener` until the returned task is aborted; with `tls`, mutual TLS only.
    pub fn serve(
        &self,
        listener: tokio::net::TcpListener,
        tls: Option<&SimTls>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let app = self.router();
        let tls = match tls {
            Some(files) => {
                Some(crate::tls::Reloadable::new(files).map_err(|e| anyhow::anyhow!(e))?)
            }
            None => None,
        };
        // The gateway's own connection handling (bounded stages, mutual TLS), with generous
        // bounds: this is a test peer. It serves until the task is aborted (the sender half of
        // its shutdown signal lives in the task).
        let limits = crate::serve::Limits {
            max_connections: 1024,
            max_handshakes: 128,
            handshake_timeout: std::time::Duration::from_secs(10),
            header_timeout: std::time::Duration::from_secs(30),
        };
        Ok(tokio::spawn(async move {
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            crate::serve::serve(listener, tls, app, limits, "tsh-sim", stopped).await;
        }))
    }

    /// Binds `addr` and serves (see [`InboundSim::serve`]); returns the bound address.
    pub async fn listen(
        &self,
        addr: SocketAddr,
        tls: Option<&SimTls>,
    ) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--tsh-listen: cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        Ok((bound, self.serve(listener, tls)?))
    }

    pub fn router(&self) -> Router {
        // Each request is handled in a task of its own: a client that gives up (its deadline)
        // does not stop TSH from doing what was asked, as with the real hub, whose answer is
        // then lost.
        macro_rules! detached {
            ($handler:ident) => {
                post(
                    |s: State<InboundSim>, h: HeaderMap, b: axum::body::Bytes| async move {
                        tokio::spawn($handler(s, h, b))
                            .await
                            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
                    },
                )
            };
        }
        Router::new()
            .route("/_simulator/tokens", post(register_token))
            .route("/updateCardState", detached!(update_card_state))
            .route("/updateCard", detached!(update_card))
            .route("/getCardInfo", detached!(get_card_info))
            .route("/getTokenInfo", detached!(get_token_info))
            .with_state(self.clone())
    }

    /// A token TSH knows (one an enrolment created), active (`RESUMED`).
    pub fn add_token(&self, card_ref: &str, virtual_card_id: &str, wallet: &str, storage: &str) {
        self.lock().tokens.insert(
            virtual_card_id.to_owned(),
            SimToken {
                virtual_card_id: virtual_card_id.to_owned(),
                card_ref: card_ref.to_owned(),
                wallet: wallet.to_owned(),
                token_storage_id: storage.to_owned(),
                status: "RESUMED".into(),
            },
        );
    }

    /// A token waiting for step-up (`INACTIVE`): what a yellow enrolment leaves at TSH until
    /// the cardholder is verified.
    pub fn add_inactive_token(
        &self,
        card_ref: &str,
        virtual_card_id: &str,
        wallet: &str,
        storage: &str,
    ) {
        self.add_token(card_ref, virtual_card_id, wallet, storage);
        self.set_token_status(virtual_card_id, "INACTIVE");
    }

    /// Sets a token's Thales state (`SUSPENDED` when the wallet suspended it, ...).
    pub fn set_token_status(&self, virtual_card_id: &str, status: &str) {
        if let Some(t) = self.lock().tokens.get_mut(virtual_card_id) {
            t.status = status.to_owned();
        }
    }

    pub fn tokens(&self) -> Vec<SimToken> {
        self.lock().tokens.values().cloned().collect()
    }

    pub fn token(&self, virtual_card_id: &str) -> Option<SimToken> {
        self.lock().tokens.get(virtual_card_id).cloned()
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The requests answered 200, in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.lock()
            .received
            .iter()
            .filter(|r| r.answered == 200)
            .cloned()
            .collect()
    }

    /// The next requests get these answers, one each, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(answers);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The scripted answer for this request, if any (a delay is waited here).
    async fn scripted(&self) -> Option<Response> {
        let next = self.lock().script.pop_front();
        match next {
            None | Some(Scripted::Normal) => None,
            Some(Scripted::Delay(d)) => {
                tokio::time::sleep(d).await;
                None
            }
            Some(Scripted::Status(s)) => Some(
                StatusCode::from_u16(s)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response(),
            ),
            Some(Scripted::Code(c)) => Some(refusal(c, "scripted refusal")),
        }
    }

    fn record(&self, r: Received) {
        self.lock().received.push(r);
    }

    fn notify(&self, correlation_id: &str, t: &SimToken, action: &str) {
        let notices = self
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = notices.as_ref() {
            let _ = tx.send(Notice {
                correlation_id: correlation_id.to_owned(),
                card_ref: t.card_ref.clone(),
                virtual_card_id: t.virtual_card_id.clone(),
                wallet: t.wallet.clone(),
                token_storage_id: t.token_storage_id.clone(),
                action: action.to_owned(),
            });
        }
    }
}

fn refusal(code: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "responseCode": code, "errorMessage": message })),
    )
        .into_response()
}

/// The headers and body every inbound operation needs: `Err` is the answer.
fn read_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String, Value), (i64, &'static str)> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
    };
    let cid = h("x-correlation-id").ok_or((100, "x-correlation-id is missing"))?;
    let issuer = h("x-issuer-id").ok_or((100, "x-issuer-id is missing"))?;
    if issuer.len() != 10 {
        return Err((100, "x-issuer-id must be 10 characters"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| (110, "body is not JSON"))?;
    if value
        .get("issuerCardRefId")
        .and_then(Value::as_str)
        .is_none_or(|r| r.is_empty() || r.len() > 48)
    {
        return Err((111, "issuerCardRefId is missing or too long"));
    }
    Ok((cid, issuer, value))
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

async fn update_card_state(
    State(sim): State<InboundSim>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let scripted = sim.scripted().await;
    let (cid, issuer, v) = match read_request(&headers, &body) {
        Ok(r) => r,
        Err((code, message)) => return refusal(code, message),
    };
    let card_ref = text(&v, "issuerCardRefId").unwrap_or_default();
    let vcid = text(&v, "virtualCardId");
    let action = text(&v, "action");
    let reason = text(&v, "reason");
    let mut received = Received {
        operation: "updateCardState".into(),
        correlation_id: cid.clone(),
        issuer_id: issuer,
        card_ref: card_ref.clone(),
        virtual_card_id: vcid.clone(),
        action: action.clone(),
        reason: reason.clone(),
        fpan: None,
        key_id: None,
        answered: 200,
    };
    if let Some(resp) = scripted {
        received.answered = resp.status().as_u16();
        sim.record(received);
        return resp;
    }
    let (new_status, notice) = match action.as_deref() {
        Some("SUSPEND") => ("SUSPENDED", "SUSPEND"),
        Some("RESUME") => ("RESUMED", "RESUME"),
        Some("DELETE") => ("DELETED", "DELETE"),
        _ => {
            received.answered = 400;
            sim.record(received);
            return refusal(112, "action must be SUSPEND, RESUME or DELETE");
        }
    };
    if reason.is_none() {
        received.answered = 400;
        sim.record(received);
        return refusal(111, "reason is missing");
    }
    if notice == "RESUME" && vcid.is_none() {
        received.answered = 400;
        sim.record(received);
        return refusal(111, "a RESUME names its virtualCardId");
    }
    let changed: Vec<(SimToken, &str)> = {
        let mut st = sim.lock();
        if let Some(id) = &vcid {
            if st.tokens.get(id).is_none_or(|t| t.card_ref != card_ref) {
                drop(st);
                received.answered = 400;
                sim.record(received);
                return refusal(113, "virtualCardId is unknown for this card");
            }
        }
        let mut changed = Vec::new();
        for t in st.tokens.values_mut() {
            let named = vcid.as_ref().is_none_or(|id| *id == t.virtual_card_id);
            if named && t.card_ref == card_ref && t.status != "DELETED" && t.status != new_status {
                // A token waiting for step-up that the issuer resumes is activated (options C
                // and D): Thales notifies ACTIVATE.
                let told = if notice == "RESUME" && t.status == "INACTIVE" {
                    "ACTIVATE"
                } else {
                    notice
                };
                t.status = new_status.into();
                changed.push((t.clone(), told));
            }
        }
        st.received.push(received);
        changed
    };
    for (t, told) in &changed {
        sim.notify(&cid, t, told);
    }
    axum::Json(json!({})).into_response()
}

async fn update_card(
    State(sim): State<InboundSim>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let scripted = sim.scripted().await;
    let (cid, issuer, v) = match read_request(&headers, &body) {
        Ok(r) => r,
        Err((code, message)) => return refusal(code, message),
    };
    let card_ref = text(&v, "issuerCardRefId").unwrap_or_default();
    let mut received = Received {
        operation: "updateCard".into(),
        correlation_id: cid.clone(),
        issuer_id: issuer,
        card_ref: card_ref.clone(),
        virtual_card_id: None,
        action: None,
        reason: None,
        fpan: None,
        key_id: text(&v, &sim.key_id_field),
        answered: 200,
    };
    if let Some(resp) = scripted {
        received.answered = resp.status().as_u16();
        sim.record(received);
        return resp;
    }
    let opened = text(&v, "fpanDetails").ok_or("fpanDetails is missing").and_then(|f| {
        let plain = sim.keys.open(&f).map_err(|_| "fpanDetails cannot be opened")?;
        let j: Value = serde_json::from_slice(&plain).map_err(|_| "fpanDetails is not JSON")?;
        let pan = |k: &str| {
            text(&j, k).filter(|p| (16..=19).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let exp = |k: &str| {
            text(&j, k).filter(|e| {
                e.len() == 4
                    && e.bytes().all(|b| b.is_ascii_digit())
                    && e.get(..2).and_then(|m| m.parse::<u8>().ok()).is_some_and(|m| (1..=12).contains(&m))
            })
        };
        match (pan("oldFPAN"), exp("oldExpDate"), pan("newFPAN"), exp("newExpDate")) {
            (Some(old_fpan), Some(old_exp), Some(new_fpan), Some(new_exp)) => Ok(OpenedFpan {
                old_fpan,
                old_exp,
                new_fpan,
                new_exp,
            }),
            _ => Err("fpanDetails must hold oldFPAN, newFPAN (16 to 19 digits), oldExpDate, newExpDate (MMYY)"),
        }
    });
    let opened = match opened {
        Ok(o) => o,
        Err(message) => {
            received.answered = 400;
            sim.record(received);
            return refusal(114, message);
        }
    };
    received.fpan = Some(opened);
    let changed: Vec<SimToken> = {
        let mut st = sim.lock();
        let changed: Vec<SimToken> = st
            .tokens
            .values()
            .filter(|t| {
                t.card_ref == card_ref && matches!(t.status.as_str(), "RESUMED" | "SUSPENDED")
            })
            .cloned()
            .collect();
        st.received.push(received);
        changed
    };
    for t in &changed {
        sim.notify(&cid, t, "UPDATE");
    }
    StatusCode::OK.into_response()
}

async fn get_card_info(
    State(sim): State<InboundSim>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(resp) = sim.scripted().await {
        return resp;
    }
    let (_, _, v) = match read_request(&headers, &body) {
        Ok(r) => r,
        Err((code, message)) => return refusal(code, message),
    };
    let card_ref = text(&v, "issuerCardRefId").unwrap_or_default();
    let list: Vec<Value> = sim
        .tokens()
        .into_iter()
        .filter(|t| t.card_ref == card_ref)
        .map(|t| {
            json!({
                "virtualCardId": t.virtual_card_id,
                "issuerCardRefId": t.card_ref,
                "walletProviderId": t.wallet,
                "status": t.status,
                "deviceInformation": { "tokenStorageId": t.token_storage_id },
            })
        })
        .collect();
    axum::Json(json!({ "issuerCardRefId": card_ref, "virtualCardList": list })).into_response()
}

async fn get_token_info(
    State(sim): State<InboundSim>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(resp) = sim.scripted().await {
        return resp;
    }
    let (_, _, v) = match read_request(&headers, &body) {
        Ok(r) => r,
        Err((code, message)) => return refusal(code, message),
    };
    let vcid = text(&v, "virtualCardId").unwrap_or_default();
    match sim.token(&vcid) {
        Some(t) => axum::Json(json!({
            "issuerCardRefId": t.card_ref,
            "virtualCardId": t.virtual_card_id,
            "walletProviderId": t.wallet,
            "status": t.status,
        }))
        .into_response(),
        None => refusal(113, "virtualCardId is unknown"),
    }
}

/// `POST /_simulator/tokens`: a token the simulated TSH should know (the simulator's own route,
/// for a bank's test environment; not a Thales operation).
async fn register_token(State(sim): State<InboundSim>, body: axum::body::Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return refusal(110, "body is not JSON");
    };
    match (
        text(&v, "issuerCardRefId"),
        text(&v, "virtualCardId"),
        text(&v, "walletProviderId"),
    ) {
        (Some(card), Some(vcid), Some(wallet)) => {
            let storage = text(&v, "tokenStorageId").unwrap_or_else(|| "SIM-DEVICE".into());
            sim.add_token(&card, &vcid, &wallet, &storage);
            // `"status": "INACTIVE"`: a token waiting for step-up (options C and D).
            if let Some(status) = text(&v, "status") {
                sim.set_token_status(&vcid, &status.to_ascii_uppercase());
            }
            axum::Json(json!({})).into_response()
        }
        _ => refusal(
            111,
            "issuerCardRefId, virtualCardId and walletProviderId are required",
        ),
    }
}

/// What `simulate --tsh-listen` needs.
pub struct CliOptions {
    pub listen: Option<SocketAddr>,
    pub key: Option<std::path::PathBuf>,
    pub target: String,
    pub issuer_id: String,
    pub cert: std::path::PathBuf,
    pub tls: Option<SimTls>,
    pub shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// `simulate --tsh-listen`: serves until `shutdown`.
pub async fn serve_cli(o: CliOptions) -> anyhow::Result<()> {
    let listen = o
        .listen
        .ok_or_else(|| anyhow::anyhow!("--tsh-listen: an address is required"))?;
    let key_path = o
        .key
        .ok_or_else(|| anyhow::anyhow!("--tsh-key: required with --tsh-listen"))?;
    let key = zeroize::Zeroizing::new(
        std::fs::read_to_string(&key_path)
            .map_err(|e| anyhow::anyhow!("--tsh-key {}: {e}", key_path.display()))?,
    );
    let cert = std::fs::read_to_string(&o.cert)
        .map_err(|e| anyhow::anyhow!("--cert {}: {e}", o.cert.display()))?;
    let base = super::scenario::base_url(&o.target)?;
    let gateway = Tsh::new(&base, &o.issuer_id, &cert)?;
    let sim = InboundSim::new(&key, Duration::from_millis(200))?;
    sim.connect_gateway(gateway);
    let (addr, task) = sim.listen(listen, o.tls.as_ref()).await?;
    let scheme = if o.tls.is_some() { "https" } else { "http" };
    println!("simulated TSH inbound API on {scheme}://{addr} (notices to {base}); Ctrl-C to stop");
    o.shutdown.await;
    task.abort();
    let received = sim.received();
    println!(
        "received {} operations ({} answered 200)",
        received.len(),
        received.iter().filter(|r| r.answered == 200).count()
    );
    Ok(())
}
