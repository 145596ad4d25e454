//! Prometheus metrics. One process-wide recorder; every gateway in the process shares it.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the recorder once; later calls return the same handle.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "issuer_gateway_sim_swap_checks_total",
        "SIM-swap checks before SMS, by result"
    );
    metrics::describe_counter!(
        "issuer_gateway_write_batches_total",
        "transactions committed by the SQLite group commit"
    );
    metrics::describe_counter!(
        "issuer_gateway_batched_writes_total",
        "calls' writes those transactions held"
    );
    metrics::describe_counter!(
        "issuer_gateway_webhook_deliveries_total",
        "webhook attempts by endpoint and outcome (delivered, failed: retried later, dead: given up)"
    );
    metrics::describe_gauge!(
        "issuer_gateway_webhook_lag_seconds",
        "how long the oldest waiting webhook delivery of the endpoint has waited"
    );
    metrics::describe_counter!(
        "issuer_gateway_purged_rows_total",
        "rows removed by the retention purge, by table"
    );
    metrics::describe_counter!(
        "issuer_gateway_app_requests_total",
        "app API calls (Option C) by route and outcome (accepted, ok, or the refusal's error)"
    );
    metrics::describe_counter!(
        "issuer_gateway_requests_total",
        "TSH calls by operation and response code"
    );
    metrics::describe_counter!(
        "issuer_gateway_refusals_not_recorded_total",
        "refused calls counted but not stored (no enrolment on file and no card of ours named, or over the per-enrolment cap)"
    );
    metrics::describe_gauge!(
        "issuer_gateway_outbox_channel",
        "1 when the channel is on the outbox provider: messages are written to files, not delivered"
    );
    metrics::describe_counter!(
        "issuer_gateway_connections_refused_total",
        "connections closed before carrying a call, by listener and reason"
    );
    metrics::describe_histogram!(
        "issuer_gateway_request_duration_seconds",
        "TSH call latency by operation"
    );
    metrics::describe_counter!(
        "issuer_gateway_decisions_total",
        "digitization decisions by outcome and deciding rule"
    );
    metrics::describe_counter!(
        "issuer_gateway_sends_total",
        "OTP sends by channel and outcome"
    );
    metrics::describe_counter!(
        "issuer_gateway_delivery_attempts_total",
        "attempts of a message by channel, provider and outcome (accepted, refused, timeout, unclear, skipped: circuit breaker open)"
    );
    metrics::describe_gauge!(
        "issuer_gateway_delivery_breaker_open",
        "1 while the provider's circuit breaker is open or half-open (the provider is skipped or probed), 0 when closed"
    );
    metrics::describe_counter!(
        "issuer_gateway_cardholder_notices_total",
        "messages to the cardholder that are not OTPs (activation notices), by kind and outcome"
    );
    metrics::describe_histogram!(
        "issuer_gateway_send_duration_seconds",
        "OTP provider latency by channel"
    );
    metrics::describe_counter!(
        "issuer_gateway_limit_refusals_total",
        "sendOTP calls refused by a rate limit, by limit"
    );
    metrics::describe_counter!(
        "issuer_gateway_tsh_attempts_total",
        "attempts of life-cycle operations sent to TSH, by operation and outcome"
    );
    metrics::describe_gauge!(
        "issuer_gateway_lifecycle_operations",
        "life-cycle operations in the log, by kind and state"
    );
    metrics::describe_gauge!(
        "issuer_gateway_lifecycle_operations_unconfirmed",
        "life-cycle operations sent with no notice within tsh.confirm_within_minutes"
    );
    metrics::describe_gauge!(
        "issuer_gateway_lifecycle_oldest_waiting_seconds",
        "age of the oldest waiting life-cycle operation"
    );
    metrics::describe_gauge!(
        "issuer_gateway_db_pool_connections",
        "database connections open, by pool and state (idle, in_use)"
    );
    metrics::describe_gauge!(
        "issuer_gateway_db_pool_max_connections",
        "database connections allowed, by pool"
    );
    metrics::describe_counter!(
        "issuer_gateway_envelope_reuses_total",
        "requestCardDigitization calls that reused the card found at eligibility for the same correlation id and byte-identical cipheredCardInfo instead of opening it again"
    );
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

pub fn record_request(operation: &'static str, code: u16, elapsed: Duration) {
    let code: metrics::SharedString = match code_label(code) {
        Some(c) => c.into(),
        None => code.to_string().into(),
    };
    metrics::counter!("issuer_gateway_requests_total", "operation" => operation, "code" => code)
        .increment(1);
    metrics::histogram!("issuer_gateway_request_duration_seconds", "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// One attempt of a message (OTP or notice) on one provider.
pub fn record_delivery_attempt(channel: &'static str, provider: &str, outcome: &'static str) {
    metrics::counter!("issuer_gateway_delivery_attempts_total", "channel" => channel, "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// The providers' circuit breakers, read at scrape time: (channel, provider, open).
pub fn record_breakers(breakers: &[(&'static str, String, bool)]) {
    for (channel, provider, open) in breakers {
        metrics::gauge!("issuer_gateway_delivery_breaker_open", "channel" => *channel, "provider" => provider.clone())
            .set(if *open { 1.0 } else { 0.0 });
    }
}

/// A cardholder notice's attempt: `sent`, `retry`, `failed`, `unclear`, `skipped`.
pub fn record_cardholder_notice(kind: &str, outcome: &'static str) {
    metrics::counter!("issuer_gateway_cardholder_notices_total", "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// 1 for each channel (`sms`, `email`) on the `outbox` provider (nothing delivered), 0 for the
/// others.
pub fn record_outbox_channels(outbox: &[&'static str]) {
    for channel in ["sms", "email"] {
        let on = if outbox.contains(&channel) { 1.0 } else { 0.0 };
        metrics::gauge!("issuer_gateway_outbox_channel", "channel" => channel).set(on);
    }
}

/// A refused call not stored: it belonged to no enrolment on file and named no card of ours, or
/// its enrolment already holds the most refusals recorded.
pub fn record_unrecorded_refusal(operation: &'static str) {
    metrics::counter!("issuer_gateway_refusals_not_recorded_total", "operation" => operation)
        .increment(1);
}

/// A connection closed by the server before it could carry a call: `reason` is
/// `max_connections`, `handshake_displaced`, `handshake_timeout` or `handshake_failed`.
pub fn record_connection_refused(listener: &'static str, reason: &'static str) {
    metrics::counter!("issuer_gateway_connections_refused_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

/// The label of a response code of the contract, without allocating on the hot path.
fn code_label(code: u16) -> Option<&'static str> {
    Some(match code {
        200 => "200",
        100 => "100",
        101 => "101",
        102 => "102",
        103 => "103",
        104 => "104",
        110 => "110",
        111 => "111",
        120 => "120",
        121 => "121",
        122 => "122",
        123 => "123",
        130 => "130",
        131 => "131",
        132 => "132",
        133 => "133",
        134 => "134",
        135 => "135",
        136 => "136",
        137 => "137",
        500 => "500",
        _ => return None,
    })
}

/// An app API call: `route` (`create_activation`, `read_activation`, `other`), `outcome`
/// (`accepted`, `ok`, or the refusal's `error`).
pub fn record_app_request(route: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("issuer_gateway_app_requests_total", "route" => route, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("issuer_gateway_app_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}

pub fn record_decision(outcome: &str, rule: &str) {
    metrics::counter!("issuer_gateway_decisions_total", "outcome" => outcome.to_owned(), "rule" => rule.to_owned()).increment(1);
}

pub fn record_send(channel: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("issuer_gateway_sends_total", "channel" => channel, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("issuer_gateway_send_duration_seconds", "channel" => channel)
        .record(elapsed.as_secs_f64());
}

/// A `sendOTP` refused by a limit (its name as in the refusal message).
pub fn record_limit_refusal(limit: &'static str) {
    metrics::counter!("issuer_gateway_limit_refusals_total", "limit" => limit).increment(1);
}

/// SQLite's group commit since start, set when the metrics are scraped: transactions
/// committed, and the calls' writes they held (their ratio is the mean batch size).
pub fn record_write_batches(batches: u64, writes: u64) {
    metrics::counter!("issuer_gateway_write_batches_total").absolute(batches);
    metrics::counter!("issuer_gateway_batched_writes_total").absolute(writes);
}

/// A SIM-swap check by result (`not_swapped`, `swapped`, `unknown`, `cached`).
pub fn record_sim_swap_check(result: &'static str) {
    metrics::counter!("issuer_gateway_sim_swap_checks_total", "result" => result).increment(1);
}

/// Rows removed by the retention purge.
pub fn record_purged(table: &'static str, rows: u64) {
    metrics::counter!("issuer_gateway_purged_rows_total", "table" => table).increment(rows);
}

/// The database pools' use, set when the metrics are scraped.
pub fn record_pool_stats(stats: &[crate::store::PoolStat]) {
    for s in stats {
        let in_use = s.size.saturating_sub(s.idle);
        metrics::gauge!("issuer_gateway_db_pool_connections", "pool" => s.pool, "state" => "idle")
            .set(f64::from(s.idle));
        metrics::gauge!("issuer_gateway_db_pool_connections", "pool" => s.pool, "state" => "in_use")
            .set(f64::from(in_use));
        metrics::gauge!("issuer_gateway_db_pool_max_connections", "pool" => s.pool)
            .set(f64::from(s.max));
    }
}

/// A digitization that reused the eligibility's card instead of opening its envelope again.
pub fn record_envelope_reuse() {
    metrics::counter!("issuer_gateway_envelope_reuses_total").increment(1);
}

/// The life-cycle operation log, read when the metrics are: operations by kind and state, the
/// unconfirmed ones, and the age of the oldest waiting one.
pub fn record_operation_stats(stats: &crate::store::OperationStats) {
    // A kind and state seen once and absent now is set to 0, not left at its last value.
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (kind, state) in seen.iter() {
        if !stats
            .by_kind_state
            .iter()
            .any(|(k, s, _)| k == kind && s == state)
        {
            metrics::gauge!("issuer_gateway_lifecycle_operations", "kind" => kind.clone(), "state" => state.clone())
                .set(0.0);
        }
    }
    for (kind, state, n) in &stats.by_kind_state {
        seen.insert((kind.clone(), state.clone()));
        metrics::gauge!("issuer_gateway_lifecycle_operations", "kind" => kind.clone(), "state" => state.clone())
            .set(*n as f64);
    }
    metrics::gauge!("issuer_gateway_lifecycle_operations_unconfirmed")
        .set(stats.unconfirmed as f64);
    metrics::gauge!("issuer_gateway_lifecycle_oldest_waiting_seconds")
        .set(stats.oldest_waiting_ms as f64 / 1000.0);
}

/// The webhook deliveries, read when the metrics are, per endpoint: waiting, dead-lettered, and
/// the lag (how long the oldest waiting delivery has waited). Delivered and failed attempts are
/// counted as they happen (`issuer_gateway_webhook_deliveries_total`).
pub fn record_webhook_stats(stats: &[crate::store::EndpointStats]) {
    for s in stats {
        let e = s.endpoint.clone();
        metrics::gauge!("issuer_gateway_webhook_waiting", "endpoint" => e.clone())
            .set(s.waiting as f64);
        metrics::gauge!("issuer_gateway_webhook_dead", "endpoint" => e.clone()).set(s.dead as f64);
        metrics::gauge!("issuer_gateway_webhook_lag_seconds", "endpoint" => e)
            .set(s.lag_ms as f64 / 1000.0);
    }
}
