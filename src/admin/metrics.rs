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
        "issuer_gateway_requests_total",
        "TSH calls by operation and response code"
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
    metrics::describe_histogram!(
        "issuer_gateway_send_duration_seconds",
        "OTP provider latency by channel"
    );
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

pub fn record_request(operation: &'static str, code: u16, elapsed: Duration) {
    metrics::counter!("issuer_gateway_requests_total", "operation" => operation, "code" => code.to_string()).increment(1);
    metrics::histogram!("issuer_gateway_request_duration_seconds", "operation" => operation)
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
