//! Structured logs: JSON when standard error is not a terminal (or when asked), one line per
//! request. Nothing logged anywhere in the gateway carries card data: sensitive values are types
//! that print masked, and request and response bodies are never logged.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Installs the global subscriber writing to standard error. Safe to call more than once.
pub fn init(format: LogFormat, level: &str) {
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    init_with(BoxMakeWriter::new(std::io::stderr), json, level);
}

/// Installs the global subscriber with the given writer (the demo writes to a file).
pub fn init_with(writer: BoxMakeWriter, json: bool, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
