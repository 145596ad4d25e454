//! issuer-gateway: the issuer's backend for the Thales Token Service Hub.
//!
//! The pipeline runs one way: bytes from TSH (`api`) -> checked request (`domain`) -> decision
//! (`decision`) or delivery (`delivery`) -> durable record (`store`) -> answer.

pub mod admin;
pub mod api;
pub mod app;
pub mod app_api;
pub mod card_file;
pub mod cert_expiry;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod controls;
pub mod data_keys;
pub mod decision;
pub mod delivery;
pub mod demo;
pub mod demo_lifecycle;
pub mod domain;
pub mod fpan_details;
/// PKCS#7 envelopes: the `issuer-gateway-envelope` crate of this workspace.
pub use issuer_gateway_envelope as envelope;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod notices;
pub mod retention;
pub mod serve;
pub mod sim;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tsh;
pub mod webhooks;

/// Installs the process-wide TLS crypto provider (aws-lc-rs) once. Every TLS client or server
/// (the SMS gateway client, SMTP, the simulator) calls this before building its configuration.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}
