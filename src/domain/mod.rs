//! Plain types and rules, no I/O. A value of one of these types is valid by construction
//! ("parse, don't validate"), and every sensitive one prints masked.

pub mod card;
pub mod contact;
pub mod enrolment;
pub mod expiry;
pub mod idv;
pub mod language;
pub mod lifecycle;
pub mod millis;
pub mod otp;
pub mod pan;
pub mod reason;
pub mod template;
pub mod wipe;

pub use card::{Card, CardStatus, ProductId};
pub use contact::{Email, Phone};
pub use enrolment::{Action, Channel, LevelOfTrust, SendOutcome, TokenState};
pub use expiry::Expiry;
pub use idv::IdvKind;
pub use language::Language;
pub use millis::Millis;
pub use otp::Otp;
pub use pan::{Pan, contains_pan_like, log_safe};
pub use reason::Reason;
