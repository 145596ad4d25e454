//! The test harness, by concern:
//!
//! - `app`: a real gateway in this process, on loopback (port 0), with its own database, freshly
//!   generated keys, the imported test cards and the outbox channel, and a TSH client that seals
//!   real envelopes;
//! - `process`: the real binary, run as an operator runs it (`keys generate`, `serve`, ...);
//! - `cards`: the test cards and the card file that holds them;
//! - `postgres`: the database a test runs on (a SQLite file, or a fresh PostgreSQL database when
//!   IG_TEST_POSTGRES_URL is set), and the macro that runs a scenario on both;
//! - `console`: the operator console's operators and a cookie-keeping HTTP client;
//! - `webdriver`: a small W3C WebDriver client, for the console's browser tests;
//! - `http`: raw requests to the TSH-facing API and reading its answers.
//!
//! Everything is re-exported here: test modules `use crate::common::*;`.

#![allow(dead_code)]

mod app;
mod cards;
mod console;
mod http;
mod postgres;
mod process;
pub mod webdriver;

pub use app::*;
pub use cards::*;
pub use console::*;
pub use http::*;
pub use postgres::*;
pub use process::*;

/// The issuer id every gateway of the tests is configured with, and TSH sends.
pub const ISSUER_ID: &str = "TESTBANK01";
