//! Rows as stored, and the records written. Nothing here holds a PAN, an OTP or a destination
//! in clear: contact details are sealed, masked, or fingerprinted before they reach this module.

use crate::domain::{Card, CardStatus, Expiry, SendOutcome};
use serde::Serialize;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardRow {
    pub card_ref: String,
    pub pan_index: String,
    pub bin: String,
    pub last4: String,
    pub exp: String,
    #[sqlx(try_from = "String")]
    pub status: CardStatus,
    pub product_id: String,
    pub phone_sealed: Option<String>,
    pub phone_masked: Option<String>,
    pub phone_fp: Option<String>,
    pub phone_changed_at: Option<i64>,
    pub email_sealed: Option<String>,
    pub email_masked: Option<String>,
    pub email_fp: Option<String>,
    pub email_changed_at: Option<i64>,
    pub language: Option<String>,
    pub wallets: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CardRow {
    /// The card as the decision sees it.
    pub fn card(&self) -> Card {
        Card {
            card_ref: self.card_ref.clone(),
            bin: self.bin.clone(),
            last4: self.last4.clone(),
            expiry: Expiry::parse_mmyy(&self.exp).ok(),
            status: self.status,
            product_id: self.product_id.clone(),
            phone_changed_at: self.phone_changed_at,
            email_changed_at: self.email_changed_at,
        }
    }

    /// True when the card may be used in `wallet` (an empty list allows every wallet).
    pub fn allows_wallet(&self, wallet: &str) -> bool {
        let list: Vec<&str> = self
            .wallets
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        list.is_empty() || list.iter().any(|w| w.eq_ignore_ascii_case(wallet))
    }
}

/// What an update leaves as stored because its input did not carry it (a card file without
/// that column, an admin call without that field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    pub phone: bool,
    pub email: bool,
    pub language: bool,
    pub wallets: bool,
}

/// A card to insert or update (from the card file or the admin API).
#[derive(Debug, Clone)]
pub struct NewCard {
    pub card_ref: Option<String>,
    pub pan_index: String,
    pub bin: String,
    pub last4: String,
    pub exp: String,
    pub status: CardStatus,
    pub product_id: String,
    pub phone_sealed: Option<String>,
    pub phone_masked: Option<String>,
    pub phone_fp: Option<String>,
    pub phone_changed_at: Option<i64>,
    pub email_sealed: Option<String>,
    pub email_masked: Option<String>,
    pub email_fp: Option<String>,
    pub email_changed_at: Option<i64>,
    pub language: Option<String>,
    pub wallets: String,
    pub keep: Keep,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EnrolmentRow {
    pub correlation_id: String,
    pub card_ref: Option<String>,
    pub wallet_provider_id: Option<String>,
    pub state: String,
    pub decision: Option<String>,
    pub decision_rule: Option<String>,
    pub decision_signals: Option<String>,
    pub device_language: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MethodRow {
    pub method_id: String,
    pub channel: String,
    pub method_type: String,
    pub masked_value: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CallRow {
    pub operation: String,
    pub card_ref: Option<String>,
    pub response_code: i64,
    pub outcome: String,
    pub detail: Option<String>,
    pub duration_ms: i64,
    pub at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SendRow {
    pub method_id: String,
    pub channel: String,
    pub provider: String,
    pub destination_masked: String,
    pub outcome: String,
    pub response_code: i64,
    pub provider_message_id: Option<String>,
    pub provider_code: Option<String>,
    pub latency_ms: i64,
    pub at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub virtual_card_id: String,
    pub card_ref: String,
    pub wallet_provider_id: String,
    pub token_storage_id: Option<String>,
    pub is_primary: Option<bool>,
    pub state: String,
    pub dpan_last4: Option<String>,
    pub dpan_exp: Option<String>,
    pub correlation_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenEventRow {
    pub correlation_id: String,
    pub action: String,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    pub state_before: Option<String>,
    pub state_after: String,
    pub at: i64,
}

/// One call of an enrolment, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    pub correlation_id: &'a str,
    pub operation: &'a str,
    pub card_ref: Option<&'a str>,
    pub wallet: Option<&'a str>,
    /// The enrolment's new state, if this call changes it.
    pub state: Option<&'a str>,
    pub response_code: i64,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub duration_ms: i64,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct MethodRecord {
    pub method_id: String,
    pub channel: String,
    pub method_type: String,
    pub masked_value: String,
}

/// A digitization decision, with the ID&V methods it offered.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub decision: String,
    pub rule: String,
    pub signals_json: String,
    pub device_language: Option<String>,
    pub methods: Vec<MethodRecord>,
}

/// The provider's answer to a claimed send.
#[derive(Debug, Clone)]
pub struct SendFinish {
    pub outcome: SendOutcome,
    pub provider_message_id: Option<String>,
    pub provider_code: Option<String>,
    pub latency_ms: i64,
}

/// A token notice.
#[derive(Debug, Clone)]
pub struct NoticeRecord {
    pub virtual_card_id: String,
    pub card_ref: String,
    pub wallet_provider_id: String,
    pub token_storage_id: Option<String>,
    pub is_primary: Option<bool>,
    pub action: crate::domain::Action,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    pub dpan_last4: Option<String>,
    pub dpan_exp: Option<String>,
    pub notice_fp: String,
}

/// What an operation writes besides its call record, in the same transaction
/// ([`super::Store::record`]).
#[derive(Debug, Clone)]
pub enum Write {
    /// Only the call record (and the enrolment it belongs to).
    Nothing,
    Decision(DecisionRecord),
    /// The outcome of the claimed send `id`.
    SendFinished {
        id: i64,
        finish: SendFinish,
    },
    Notice(NoticeRecord),
}

/// What a [`Write`] found, where the caller needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Notice(super::NoticeOutcome),
}
