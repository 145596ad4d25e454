//! Driving TSH: the life-cycle operations the gateway sends (updateCardState, updateCard) and
//! the sender that delivers them from the durable log (`store::operations`), with retries,
//! back-off and jitter, in order per card, shared safely by every instance on one database.
//!
//! The operations are made where their cause is written (the card file, the admin API): in the
//! same transaction, by the store. This module only sends them.

pub mod sender;

pub use sender::Sender;
