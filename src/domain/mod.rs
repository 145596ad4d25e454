//! Plain types and rules, no I/O. A value of one of these types is valid by construction
//! ("parse, don't validate"), and every sensitive one prints masked.

pub mod card;
pub mod contact;
pub mod enrolment;
pub mod expiry;
pub mod otp;
pub mod pan;

pub use card::{CardStatus, ProductId};
pub use contact::{Email, Phone};
pub use enrolment::{Action, Channel, LevelOfTrust, TokenState};
pub use expiry::Expiry;
pub use otp::Otp;
pub use pan::Pan;
