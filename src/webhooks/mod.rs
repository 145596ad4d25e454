//! Events to the bank's own systems: the sender of the webhook event log (`store::events`),
//! with retries, back-off, a dead letter, in order per card and endpoint, shared safely by every
//! instance on one database; and the Standard Webhooks signatures (`signing`).
//!
//! The events are written where what they report is written, in the same transaction, by the
//! store. This module only delivers them.

pub mod sender;
pub mod signing;

pub use sender::Sender;
