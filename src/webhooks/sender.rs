//! The sender: claims due deliveries (each the head of its card's queue at its endpoint), posts
//! them signed, records what each attempt came to. Runs in every `serve` instance with
//! `[[webhooks]]` configured, one loop per endpoint (a receiver that is slow or down delays
//! only its own events); instances sharing one PostgreSQL database never take the same attempt
//! (claims with a lease, `FOR UPDATE SKIP LOCKED`).

use super::signing;
use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::domain::Millis;
use crate::domain::lifecycle::backoff_ms;
use crate::store::{ClaimedDelivery, DeliveryVerdict, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the sender looks for due deliveries when it found none.
pub const POLL: Duration = Duration::from_millis(100);
/// Beyond the attempt's deadline, how long a claim keeps others off an attempt (a crashed
/// instance's attempt is made again after that, with the same `webhook-id`).
const LEASE_MARGIN_MS: i64 = 10_000;
/// Deliveries claimed at once.
const BATCH: i64 = 100;

struct Endpoint {
    config: WebhookConfig,
    client: reqwest::Client,
}

/// The webhook sender of one instance: a loop per endpoint.
#[derive(Clone)]
pub struct Sender {
    store: Store,
    endpoints: Vec<Arc<Endpoint>>,
    clock: Clock,
}

/// What one attempt came to.
struct Outcome {
    status: Option<u16>,
    /// `delivered`, `http_status`, `timeout`, `connection`.
    kind: &'static str,
    error: Option<String>,
}

impl Sender {
    /// Writes the configured endpoints to the store (the events they take are written from
    /// now on, in the transactions of what they report) and makes the sender; `None` without
    /// `[[webhooks]]` (and then no event is written).
    pub async fn new(
        store: Store,
        hooks: &[WebhookConfig],
        clock: Clock,
    ) -> anyhow::Result<Option<Sender>> {
        let table: Vec<(String, String)> = hooks
            .iter()
            .map(|h| (h.name.clone(), h.events_filter()))
            .collect();
        store
            .sync_webhook_endpoints(&table, clock.now_ms())
            .await
            .map_err(|e| anyhow::anyhow!("webhooks: cannot record the endpoints: {e}"))?;
        if hooks.is_empty() {
            return Ok(None);
        }
        let mut endpoints = Vec::new();
        for h in hooks {
            let timeout = Duration::from_millis(h.timeout_ms);
            let client = reqwest::Client::builder()
                .user_agent(concat!("issuer-gateway/", env!("CARGO_PKG_VERSION")))
                .use_rustls_tls()
                .connect_timeout(timeout)
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| anyhow::anyhow!("webhooks ({}): HTTP client: {e}", h.name))?;
            endpoints.push(Arc::new(Endpoint {
                config: h.clone(),
                client,
            }));
        }
        Ok(Some(Sender {
            store,
            endpoints,
            clock,
        }))
    }

    /// Delivers until `stop` turns true, a loop per endpoint; the attempts in flight then
    /// finish (each within its entry's `timeout_ms`) before this returns.
    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        match self.store.unpark_webhook_heads(self.clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                deliveries = n,
                "webhooks: deliveries left parked with nothing before them are due now"
            ),
            Err(e) => tracing::error!(error = %e, "webhooks: cannot check the parked deliveries"),
        }
        let mut loops = tokio::task::JoinSet::new();
        for endpoint in &self.endpoints {
            loops.spawn(self.clone().run_endpoint(endpoint.clone(), stop.clone()));
        }
        while loops.join_next().await.is_some() {}
    }

    async fn run_endpoint(
        self,
        endpoint: Arc<Endpoint>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let lease_ms =
            i64::try_from(endpoint.config.timeout_ms).unwrap_or(i64::MAX / 2) + LEASE_MARGIN_MS;
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now_ms();
            let lease = Millis(now.0 + lease_ms);
            let claimed = match self
                .store
                .claim_deliveries(&endpoint.config.name, now, lease, BATCH)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(endpoint = %endpoint.config.name, error = %e, "webhook sender: cannot claim deliveries");
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
            for d in claimed {
                let (me, endpoint) = (self.clone(), endpoint.clone());
                inflight.spawn(async move { me.attempt(&endpoint, d).await });
            }
            while inflight.join_next().await.is_some() {}
        }
    }

    /// One attempt of a claimed delivery, recorded.
    async fn attempt(&self, endpoint: &Endpoint, d: ClaimedDelivery) {
        let outcome = self.post(endpoint, &d).await;
        let at = self.clock.now_ms();
        let verdict = if outcome.kind == "delivered" {
            DeliveryVerdict::Delivered
        } else {
            let attempt_no = u32::try_from(d.attempts).unwrap_or(u32::MAX);
            let window = i64::from(endpoint.config.give_up_after_minutes) * 60_000;
            DeliveryVerdict::Retry {
                next: Millis(at.0 + with_jitter(backoff_ms(attempt_no))),
                give_up: at.0 - d.queued_at.0 >= window,
            }
        };
        let state = match verdict {
            DeliveryVerdict::Delivered => "delivered",
            DeliveryVerdict::Retry { give_up: true, .. } => "dead",
            DeliveryVerdict::Retry { .. } => "failed",
        };
        metrics::counter!("issuer_gateway_webhook_deliveries_total", "endpoint" => d.endpoint.clone(), "outcome" => state).increment(1);
        if state == "dead" {
            tracing::error!(endpoint = %d.endpoint, webhook_id = %d.message_id, event = %d.event_type, card_ref = %d.card_ref, attempt = d.attempts, outcome = outcome.kind, http_status = outcome.status, "webhook dead-lettered after its give_up_after_minutes (redeliver with POST /webhooks/events/{{id}}/redeliver)");
        } else {
            tracing::info!(endpoint = %d.endpoint, webhook_id = %d.message_id, event = %d.event_type, card_ref = %d.card_ref, attempt = d.attempts, outcome = outcome.kind, http_status = outcome.status, state, "webhook attempt");
        }
        if let Err(e) = self
            .store
            .finish_delivery(
                d.id,
                &d.card_ref,
                d.attempts,
                at,
                outcome.status,
                outcome.error.as_deref(),
                verdict,
            )
            .await
        {
            // The lease runs out and the attempt is made again, with the same webhook-id: at
            // worst the receiver sees it twice, which the id lets it recognise.
            tracing::error!(delivery_id = d.id, error = %e, "webhook sender: cannot record an attempt");
        }
    }

    async fn post(&self, endpoint: &Endpoint, d: &ClaimedDelivery) -> Outcome {
        // The signature's time is the wall clock's: receivers compare it with theirs to refuse
        // replays (Standard Webhooks allow five minutes either way).
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature =
            signing::signature_header(&endpoint.config.keys, &d.message_id, timestamp, &d.body);
        let started = Instant::now();
        let sent = endpoint
            .client
            .post(endpoint.config.url.trim())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await;
        metrics::histogram!("issuer_gateway_webhook_attempt_seconds", "endpoint" => d.endpoint.clone())
            .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(resp) if resp.status().is_success() => Outcome {
                status: Some(resp.status().as_u16()),
                kind: "delivered",
                error: None,
            },
            Ok(resp) => Outcome {
                status: Some(resp.status().as_u16()),
                kind: "http_status",
                error: Some(format!("HTTP {}", resp.status().as_u16())),
            },
            Err(e) if e.is_timeout() => Outcome {
                status: None,
                kind: "timeout",
                error: Some(format!(
                    "no answer within webhooks.timeout_ms ({})",
                    endpoint.config.timeout_ms
                )),
            },
            Err(e) => Outcome {
                status: None,
                kind: "connection",
                error: Some(crate::domain::log_safe(&error_chain(&e))),
            },
        }
    }
}

/// An error with its causes, without the URL (which may carry a token of the receiver's).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = String::from("cannot connect");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The back-off plus up to a fifth more, at random: deliveries that failed together do not
/// retry together, and nothing is retried sooner than its back-off.
fn with_jitter(ms: i64) -> i64 {
    let r = crate::data_keys::random_bytes::<2>();
    let unit = i64::from(u16::from_le_bytes(r));
    ms + ms / 5 * unit / 65_535
}

/// Starts `sender` when there is one; its task ends once `stop` turns true.
pub fn start(
    sender: Option<Sender>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let sender = sender?;
    for e in &sender.endpoints {
        if e.config.url.trim().starts_with("http://") {
            tracing::warn!(endpoint = %e.config.name, "webhooks: plain http:// (allow_http): for a receiver on the same host only");
        }
    }
    Some(tokio::spawn(sender.run(stop)))
}
