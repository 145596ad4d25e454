//! The sender: claims due operations (each the head of its card's queue), sends them to TSH,
//! records each attempt and what it came to. Runs in every `serve` instance.

use crate::clock::Clock;
use crate::config::TshConfig;
use crate::domain::Millis;
use crate::domain::lifecycle::{RETRYABLE_CODES, backoff_ms};
use crate::store::{Attempt, AttemptVerdict, OperationRow, Store};
use crate::tsh::{Reply, TshClient};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// How often the sender looks for due operations.
pub const POLL: Duration = Duration::from_millis(100);
/// Beyond the attempt's deadline, how long a claim keeps others off an attempt (a crashed
/// instance's attempt is taken again after that, with the same correlation id).
const LEASE_MARGIN_MS: i64 = 10_000;

/// The sender of one instance.
#[derive(Clone)]
pub struct Sender {
    store: Store,
    config: TshConfig,
    issuer_id: String,
    /// Rebuilt on SIGHUP (a renewed client certificate), like the server's TLS files.
    client: std::sync::Arc<std::sync::RwLock<TshClient>>,
    clock: Clock,
}

impl Sender {
    /// `None` when `tsh.base_url` is not set: operations stay waiting.
    pub fn new(
        store: Store,
        config: &TshConfig,
        issuer_id: &str,
        clock: Clock,
    ) -> anyhow::Result<Option<Sender>> {
        if !config.configured() {
            return Ok(None);
        }
        let client = TshClient::new(config, issuer_id)?;
        Ok(Some(Sender {
            store,
            config: config.clone(),
            issuer_id: issuer_id.to_owned(),
            client: std::sync::Arc::new(std::sync::RwLock::new(client)),
            clock,
        }))
    }

    /// Reads `tsh.client_cert`, `tsh.client_key` and `tsh.server_ca` again; on failure the
    /// running client stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = TshClient::new(&self.config, &self.issuer_id)?;
        let mut guard = self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = fresh;
        Ok(())
    }

    fn client(&self) -> TshClient {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends until `stop` turns true; an attempt in flight then finishes (its deadline is
    /// `tsh.timeout_ms`) before this returns.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let pace = Duration::from_micros(1_000_000 / u64::from(self.config.max_per_second.max(1)));
        let batch = i64::from(self.config.max_per_second.clamp(1, 500));
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now_ms();
            let lease = Millis(now.0 + self.config.timeout_ms as i64 + LEASE_MARGIN_MS);
            let claimed = match self.store.claim_operations(now, lease, batch).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "life-cycle sender: cannot claim operations");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut inflight = tokio::task::JoinSet::new();
            for op in claimed {
                let me = self.clone();
                inflight.spawn(async move { me.attempt(op).await });
                tokio::time::sleep(pace).await;
            }
            while inflight.join_next().await.is_some() {}
        }
    }

    /// One attempt of a claimed operation, recorded.
    async fn attempt(&self, op: OperationRow) {
        let operation = op.kind.clone();
        let body = body_of(&op, &self.config);
        let sent = self
            .client()
            .post(&operation, &op.correlation_id, &body)
            .await;
        let at = self.clock.now_ms();
        let duration_ms = i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX);
        let attempt_no = u32::try_from(op.attempts).unwrap_or(u32::MAX);
        let retry = |outcome: &'static str,
                     http_status: Option<u16>,
                     response_code: Option<i64>,
                     error: Option<String>| {
            let give_up =
                at.0 - op.created_at.0 >= i64::from(self.config.give_up_after_minutes) * 60_000;
            let next = Millis(at.0 + with_jitter(backoff_ms(attempt_no)));
            Attempt {
                at,
                http_status,
                response_code,
                outcome,
                duration_ms,
                error,
                verdict: AttemptVerdict::Retry { next, give_up },
            }
        };
        let attempt = match &sent.reply {
            Reply::Answered { status: 200, .. } => Attempt {
                at,
                http_status: Some(200),
                response_code: None,
                outcome: "accepted",
                duration_ms,
                error: None,
                verdict: AttemptVerdict::Accepted,
            },
            Reply::Answered {
                status,
                response_code,
                ..
            } if *status >= 500 => retry(
                "http_5xx",
                Some(*status),
                *response_code,
                Some(format!("HTTP {status}")),
            ),
            Reply::Answered {
                status,
                response_code: Some(code),
                ..
            } if RETRYABLE_CODES.contains(code) => retry(
                "retryable_code",
                Some(*status),
                Some(*code),
                Some(format!("HTTP {status}, responseCode {code} (retryable)")),
            ),
            Reply::Answered {
                status,
                response_code,
                ..
            } => Attempt {
                at,
                http_status: Some(*status),
                response_code: *response_code,
                outcome: "refused",
                duration_ms,
                error: Some(match response_code {
                    Some(c) => format!("HTTP {status}, responseCode {c}"),
                    None => format!("HTTP {status}"),
                }),
                verdict: AttemptVerdict::Refused,
            },
            Reply::TimedOut => retry(
                "timeout",
                None,
                None,
                Some(format!(
                    "no answer within tsh.timeout_ms ({})",
                    self.config.timeout_ms
                )),
            ),
            Reply::NoConnection(e) => {
                retry("connection", None, None, Some(crate::domain::log_safe(e)))
            }
        };
        let state = match attempt.verdict {
            AttemptVerdict::Accepted => "sent",
            AttemptVerdict::Refused => "refused",
            AttemptVerdict::Retry { give_up: true, .. } => "failed",
            AttemptVerdict::Retry { .. } => "waiting",
        };
        metrics::counter!("issuer_gateway_tsh_attempts_total", "operation" => operation.clone(), "outcome" => attempt.outcome).increment(1);
        let log = |level_error: bool| {
            if level_error {
                tracing::error!(operation_id = op.id, operation = %operation, action = op.action.as_deref().unwrap_or(""), card_ref = %op.card_ref, correlation_id = %op.correlation_id, attempt = op.attempts, outcome = attempt.outcome, http_status = attempt.http_status, response_code = attempt.response_code, duration_ms, state, "life-cycle operation attempt");
            } else {
                tracing::info!(operation_id = op.id, operation = %operation, action = op.action.as_deref().unwrap_or(""), card_ref = %op.card_ref, correlation_id = %op.correlation_id, attempt = op.attempts, outcome = attempt.outcome, http_status = attempt.http_status, response_code = attempt.response_code, duration_ms, state, "life-cycle operation attempt");
            }
        };
        log(matches!(state, "failed" | "refused"));
        if let Err(e) = self
            .store
            .finish_attempt(op.id, op.attempts, &attempt)
            .await
        {
            // The claim's lease runs out and the attempt is made again, with the same
            // correlation id: at worst TSH sees it twice, which it answers idempotently.
            tracing::error!(operation_id = op.id, error = %e, "life-cycle sender: cannot record an attempt");
        }
    }
}

/// The request body of an operation.
pub fn body_of(op: &OperationRow, config: &TshConfig) -> Value {
    let mut body = Map::new();
    body.insert("issuerCardRefId".into(), json!(op.card_ref));
    match op.kind.as_str() {
        "updateCard" => {
            if let Some(f) = &op.fpan_details {
                body.insert("fpanDetails".into(), json!(f));
            }
            if !config.encryption_key_id.is_empty() {
                body.insert(config.key_id_field.clone(), json!(config.encryption_key_id));
            }
            if let Some(p) = &op.new_product_id {
                body.insert("newProductId".into(), json!(p));
            }
        }
        _ => {
            if let Some(v) = &op.virtual_card_id {
                body.insert("virtualCardId".into(), json!(v));
            }
            if let Some(a) = &op.action {
                body.insert("action".into(), json!(a));
            }
            if let Some(r) = &op.reason {
                body.insert("reason".into(), json!(r));
            }
        }
    }
    Value::Object(body)
}

/// The back-off plus up to a fifth more, at random: instances that failed together do not
/// retry together, and nothing is retried sooner than its back-off.
fn with_jitter(ms: i64) -> i64 {
    let r = crate::data_keys::random_bytes::<2>();
    let unit = i64::from(u16::from_le_bytes(r)); // 0..=65535
    ms + ms / 5 * unit / 65_535
}

/// Logs what the log holds at start (how many operations wait, and why) and the configured
/// certificates that expire within 30 days, then starts `sender` when there is one. Returns its
/// task, which ends once `stop` turns true.
pub async fn start(
    state: &crate::state::SharedState,
    sender: Option<Sender>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let now = state.clock.now_ms();
    crate::cert_expiry::warn_at_start(&state.config, now);
    let confirm_ms = i64::from(state.config.tsh.confirm_within_minutes) * 60_000;
    let stats = state
        .store
        .operation_stats(now, Millis(now.0 - confirm_ms))
        .await;
    let waiting = stats.as_ref().map(|s| s.waiting).unwrap_or(0);
    let oldest_minutes = stats
        .as_ref()
        .map(|s| s.oldest_waiting_ms / 60_000)
        .unwrap_or(0);
    match sender {
        None => {
            tracing::warn!(
                waiting,
                "tsh.base_url is not set: life-cycle operations are recorded and stay waiting ({waiting} waiting); they are sent once [tsh] is configured"
            );
            None
        }
        Some(sender) => {
            if sender.config.base_url.trim().starts_with("http://") {
                tracing::warn!(
                    "tsh.base_url is plain http://: for tests and the demo only (TSH speaks mutual TLS)"
                );
            }
            if waiting > 0 {
                tracing::info!(
                    waiting,
                    oldest_minutes,
                    "life-cycle operations waiting from before this start are sent now (cancel any with POST /operations/{{id}}/cancel)"
                );
                // Named one by one (the first 100), so that nobody is surprised when they go.
                let listed = state
                    .store
                    .operations_in_state("waiting", now, 100)
                    .await
                    .unwrap_or_default();
                for o in listed {
                    tracing::info!(
                        operation_id = o.id,
                        operation = %o.label(),
                        card_ref = %o.card_ref,
                        virtual_card_id = o.virtual_card_id.as_deref().unwrap_or(""),
                        reason = o.reason.as_deref().unwrap_or(""),
                        created_at = %crate::clock::format_ms(o.created_at),
                        "waiting life-cycle operation"
                    );
                }
            }
            reload_on_sighup(sender.clone());
            Some(tokio::spawn(sender.run(stop)))
        }
    }
}

/// Rebuilds the TSH client (its certificate, key and CA files) on every SIGHUP (Unix).
fn reload_on_sighup(sender: Sender) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match sender.reload() {
                Ok(()) => tracing::info!("tsh client certificate, key and server CA reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "tsh reload failed; the previous files stay in use")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = sender;
}
