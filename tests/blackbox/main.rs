//! Black-box tests: real HTTP against a running gateway, a real database, envelopes sealed with
//! real RSA keys. Scenarios run on SQLite, and on PostgreSQL too when IG_TEST_POSTGRES_URL is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic
)]

mod common;

mod activation_notice;
mod activations;
mod admin;
mod cli;
mod connections;
mod console;
mod console_browser;
mod controls;
mod crash;
mod delivery;
mod enrolment;
mod errors;
mod fallback;
mod lifecycle;
mod logs;
mod malformed_requests;
mod notices;
mod openapi;
mod overload_and_shutdown;
mod policy;
mod postgres;
mod response_codes;
mod retention;
mod sim_swap;
mod templates;
mod tls;
mod vonage;
mod webhooks;
