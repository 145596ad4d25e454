#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::panic
    )
)]
//! issuer-gateway: the issuer's backend for the Thales Token Service Hub.
//!
//! The pipeline runs one way: bytes from TSH (`api`) -> checked request (`domain`) -> decision
//! (`decision`) or delivery (`delivery`) -> durable record (`store`) -> answer.

pub mod admin;
pub mod api;
pub mod app;
pub mod cards;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decision;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod envelope;
pub mod keys;
pub mod secrets;
pub mod sim;
pub mod store;
pub mod telemetry;
