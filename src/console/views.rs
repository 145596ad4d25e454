//! What the pages are given: view types built from stored rows, whose text is either a masked
//! value or an identifier made safe. A page cannot be handed a PAN, an OTP or an unmasked
//! destination: the pages take only these types, these types hold only [`Safe`] and [`Masked`]
//! text, and both of those mask any run of digits that could be one.

use crate::clock::format_ms;
use crate::domain::Millis;
use crate::store::{
    AuditRow, CardRow, EnrolmentListRow, EnrolmentSummaryRow, OperationRow, TokenEventRow, TokenRow,
};
use maud::{Markup, Render, html};

/// Text safe to show: any run of digits that may hold a card number (a Luhn-valid window of 12
/// to 19 digits, the rule the gateway applies to every identifier it is given) replaced by its
/// length, so even a mistake upstream cannot put a card number on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Safe(String);

impl Safe {
    pub fn new(s: &str) -> Safe {
        Safe(crate::domain::pan::replace_runs(s, |run, _| {
            run.may_hold_pan()
                .then(|| format!("[{} digits]", run.digits.len()))
        }))
    }
    pub fn opt(s: Option<&str>) -> Option<Safe> {
        s.map(Safe::new)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Render for Safe {
    fn render(&self) -> Markup {
        html! { (self.0) }
    }
}

/// A card's `issuerCardRefId` as stored: the gateway's own random reference, or the issuer's,
/// which the card file refuses when it holds a card number. Shown as it is (it names the card in
/// links), and only ever made from the stored column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef(String);

impl CardRef {
    pub fn new(stored: &str) -> CardRef {
        CardRef(stored.to_owned())
    }
    pub fn opt(stored: Option<&str>) -> Option<CardRef> {
        stored.map(CardRef::new)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Render for CardRef {
    fn render(&self) -> Markup {
        html! { (self.0) }
    }
}

/// A masked value (a destination as stored masked, a DPAN's last 4): every digit but the last
/// four is replaced by `•`, whatever it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked(String);

impl Masked {
    pub fn new(s: &str) -> Masked {
        let digits = s.chars().filter(char::is_ascii_digit).count();
        let mut seen = 0;
        Masked(
            s.chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        seen += 1;
                        if seen + 4 <= digits { '•' } else { c }
                    } else {
                        c
                    }
                })
                .collect(),
        )
    }
}

impl Render for Masked {
    fn render(&self) -> Markup {
        html! { (self.0) }
    }
}

/// A time, as the admin API writes it.
#[derive(Debug, Clone, Copy)]
pub struct At(pub Millis);

impl Render for At {
    fn render(&self) -> Markup {
        html! { time datetime=(format_ms(self.0)) { (format_ms(self.0).replace('T', " ")) } }
    }
}

/// A card: BIN and last 4, masked destinations.
pub struct CardView {
    pub card_ref: CardRef,
    pub bin: Safe,
    pub last4: Safe,
    pub exp: Safe,
    pub status: Safe,
    pub product: Safe,
    pub language: Option<Safe>,
    pub wallets: Vec<Safe>,
    pub phone: Option<Masked>,
    pub phone_changed: Option<At>,
    pub email: Option<Masked>,
    pub email_changed: Option<At>,
    pub updated: At,
}

impl CardView {
    pub fn of(c: &CardRow) -> CardView {
        CardView {
            card_ref: CardRef::new(&c.card_ref),
            // A BIN is at most 8 digits and a last 4 is 4: both shown as they are.
            bin: Safe::new(c.bin.get(..8).unwrap_or(&c.bin)),
            last4: Safe::new(c.last4.get(c.last4.len().saturating_sub(4)..).unwrap_or("")),
            exp: Safe::new(&c.exp),
            status: Safe::new(c.status.as_str()),
            product: Safe::new(&c.product_id),
            language: Safe::opt(c.language.as_deref()),
            wallets: c
                .wallets
                .split(';')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(Safe::new)
                .collect(),
            phone: c.phone_masked.as_deref().map(Masked::new),
            phone_changed: c.phone_changed_at.map(At),
            email: c.email_masked.as_deref().map(Masked::new),
            email_changed: c.email_changed_at.map(At),
            updated: At(c.updated_at),
        }
    }
}

/// One event of a token's history.
pub struct EventView {
    pub action: Safe,
    pub source: Option<Safe>,
    pub before: Option<Safe>,
    pub after: Safe,
    pub at: At,
}

/// A token of a card, with its history.
pub struct TokenView {
    pub virtual_card_id: Safe,
    pub wallet: Safe,
    pub device: Option<Safe>,
    pub state: Safe,
    pub dpan_last4: Option<Masked>,
    pub created: At,
    pub history: Vec<EventView>,
    /// Thales's own state (`getCardInfo`), when it was asked.
    pub thales: Option<Safe>,
}

impl TokenView {
    pub fn of(t: &TokenRow, events: &[TokenEventRow]) -> TokenView {
        TokenView {
            virtual_card_id: Safe::new(&t.virtual_card_id),
            wallet: Safe::new(&t.wallet_provider_id),
            device: Safe::opt(t.token_storage_id.as_deref()),
            state: Safe::new(&t.state),
            dpan_last4: t
                .dpan_last4
                .as_deref()
                .map(|d| Masked::new(d.get(d.len().saturating_sub(4)..).unwrap_or(""))),
            created: At(t.created_at),
            thales: None,
            history: events
                .iter()
                .map(|e| EventView {
                    action: Safe::new(&e.action),
                    source: Safe::opt(e.source.as_deref()),
                    before: Safe::opt(e.state_before.as_deref()),
                    after: Safe::new(&e.state_after),
                    at: At(e.at),
                })
                .collect(),
        }
    }
}

/// An operation of the life-cycle log.
pub struct OperationView {
    pub id: i64,
    pub kind: Safe,
    pub action: Option<Safe>,
    pub card_ref: CardRef,
    pub virtual_card_id: Option<Safe>,
    pub reason: Option<Safe>,
    pub operator: Option<Safe>,
    pub state: Safe,
    pub attempts: i64,
    pub last_error: Option<Safe>,
    pub created: At,
}

impl OperationView {
    pub fn of(o: &OperationRow, unconfirmed_before: Millis) -> OperationView {
        let unconfirmed =
            o.state == "sent" && o.sent_at.is_some_and(|s| s.0 < unconfirmed_before.0);
        OperationView {
            id: o.id,
            kind: Safe::new(&o.kind),
            action: Safe::opt(o.action.as_deref()),
            card_ref: CardRef::new(&o.card_ref),
            virtual_card_id: Safe::opt(o.virtual_card_id.as_deref()),
            reason: Safe::opt(o.reason.as_deref()),
            operator: Safe::opt(o.operator.as_deref()),
            state: Safe::new(if unconfirmed {
                "sent (unconfirmed)"
            } else {
                &o.state
            }),
            attempts: o.attempts,
            last_error: Safe::opt(o.last_error.as_deref()),
            created: At(o.created_at),
        }
    }
}

/// An enrolment in a list.
pub struct EnrolmentLine {
    pub correlation_id: Safe,
    pub card_ref: Option<CardRef>,
    pub wallet: Option<Safe>,
    pub state: Safe,
    pub decision: Option<Safe>,
    pub rule: Option<Safe>,
    pub at: At,
}

impl EnrolmentLine {
    pub fn of_summary(e: &EnrolmentSummaryRow, card_ref: &str) -> EnrolmentLine {
        EnrolmentLine {
            correlation_id: Safe::new(&e.correlation_id),
            card_ref: Some(CardRef::new(card_ref)),
            wallet: Safe::opt(e.wallet_provider_id.as_deref()),
            state: Safe::new(&e.state),
            decision: e.decision.map(|d| Safe::new(&d.to_string())),
            rule: Safe::opt(e.decision_rule.as_deref()),
            at: At(e.created_at),
        }
    }
    pub fn of_list(e: &EnrolmentListRow) -> EnrolmentLine {
        EnrolmentLine {
            correlation_id: Safe::new(&e.correlation_id),
            card_ref: CardRef::opt(e.card_ref.as_deref()),
            wallet: Safe::opt(e.wallet_provider_id.as_deref()),
            state: Safe::new(&e.state),
            decision: e.decision.map(|d| Safe::new(&d.to_string())),
            rule: Safe::opt(e.decision_rule.as_deref()),
            at: At(e.created_at),
        }
    }
}

/// One line of an enrolment's timeline.
pub struct TimelineLine {
    pub at: At,
    pub what: Safe,
    pub detail: Vec<(&'static str, Safe)>,
    /// A masked destination, for a send.
    pub destination: Option<Masked>,
}

/// One entry of the audit log.
pub struct AuditLine {
    pub seq: i64,
    pub at: At,
    pub actor: Safe,
    pub channel: Safe,
    pub action: Safe,
    pub outcome: Safe,
    pub card_ref: Option<CardRef>,
    pub virtual_card_id: Option<Safe>,
    pub operation_id: Option<i64>,
    pub reason: Option<Safe>,
    pub source: Option<Safe>,
}

impl AuditLine {
    pub fn of(r: &AuditRow) -> AuditLine {
        AuditLine {
            seq: r.seq,
            at: At(r.at),
            actor: Safe::new(&r.actor),
            channel: Safe::new(&r.channel),
            action: Safe::new(&r.action),
            outcome: Safe::new(&r.outcome),
            card_ref: CardRef::opt(r.card_ref.as_deref()),
            virtual_card_id: Safe::opt(r.virtual_card_id.as_deref()),
            operation_id: r.operation_id,
            reason: Safe::opt(r.reason.as_deref().or(r.detail.as_deref())),
            source: Safe::opt(r.source.as_deref()),
        }
    }
}

/// A request waiting for a second supervisor.
pub struct ApprovalView {
    pub id: i64,
    pub action: Safe,
    pub reason: Safe,
    pub requested_by: Safe,
    pub at: At,
}

/// A bar of a chart: its label, its count, the list it links to.
pub struct Bar {
    pub label: Safe,
    pub count: i64,
    pub href: String,
    /// A CSS class for its colour (`green`, `yellow`, `red`, `grey`...).
    pub tone: &'static str,
}

#[cfg(test)]
mod tests {
    use super::{Masked, Safe};

    #[test]
    fn masked_shows_at_most_the_last_four_digits() {
        assert_eq!(Masked::new("+44 7700 900123").0, "+•• •••• ••0123");
        assert_eq!(Masked::new("a•••@example.com").0, "a•••@example.com");
        assert_eq!(Masked::new("4111111111111111").0, "••••••••••••1111");
    }

    #[test]
    fn safe_hides_card_numbers() {
        assert!(
            !Safe::new("ref 4111111111111111")
                .as_str()
                .contains("4111111111111111")
        );
        assert_eq!(Safe::new("CARD-123").as_str(), "CARD-123");
        // A long run of digits that cannot hold a card number (no Luhn-valid window) stays.
        assert_eq!(
            Safe::new("ref-0000000000000000").as_str(),
            "ref-0000000000000000"
        );
    }
}
