//! The notice sender: delivers the messages to the cardholder that are not OTPs (the activation
//! notice after an ACTIVATE) from their durable queue (`store::cardholder_notices`), in every
//! `serve` instance, the way the life-cycle sender delivers its operations: claims with a lease,
//! the same back-off with jitter, given up after `notices.give_up_after_minutes`.
//!
//! A notice goes to the card's phone by SMS, else to its e-mail address, opened from the card
//! only when it goes. It uses the channel's providers (fallbacks and breakers included) but not
//! the OTP sends: it counts against no OTP limit. A certain failure is retried; an unclear one
//! (the provider may have delivered it) is not, so that nobody gets it twice.

use crate::delivery::{DeliveryError, Message, template};
use crate::domain::lifecycle::backoff_ms;
use crate::domain::{Channel, Email, Language, Millis, Phone};
use crate::state::SharedState;
use crate::store::{CardRow, CardholderNoticeRow, NoticeAttempt};
use std::time::Duration;
use zeroize::Zeroizing;

/// How often the sender looks for due notices.
pub const POLL: Duration = Duration::from_millis(100);
/// Notices claimed at once.
const BATCH: i64 = 50;
/// Beyond the send's deadline, how long a claim keeps others off an attempt.
const LEASE_MARGIN_MS: i64 = 10_000;

/// Starts the sender; the task ends once `stop` turns true (an attempt in flight finishes).
pub fn start(
    state: SharedState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(state, stop))
}

async fn run(state: SharedState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let now = state.clock.now_ms();
        let deadline = state
            .delivery
            .deadline(Channel::Sms)
            .max(state.delivery.deadline(Channel::Email));
        let lease = now.plus(Millis::of(deadline)).plus(Millis(LEASE_MARGIN_MS));
        let claimed = match state
            .store
            .claim_cardholder_notices(now, lease, BATCH)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "notice sender: cannot claim notices");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for n in claimed {
            attempt(&state, &n).await;
        }
    }
}

/// The destination a notice goes to: for the `current` target, the card's phone (SMS) when the
/// SMS channel is on, else its e-mail address; for the `previous` target, the phone or e-mail
/// address the card had before a change made within the destination-change control's window
/// (`controls.destination_change_hold_hours`) of the notice.
async fn destination(
    state: &SharedState,
    n: &CardholderNoticeRow,
    card: &CardRow,
) -> Option<(Channel, Zeroizing<String>, String)> {
    let open = |context: &str, sealed: Option<&str>| {
        sealed.and_then(|s| {
            state
                .data_keys
                .unseal_for_card(context, &card.pan_index, s)
                .ok()
        })
    };
    let (phone, email) = if n.target == "previous" {
        let (phone, email) = state
            .store
            .previous_destinations(&card.card_ref)
            .await
            .ok()?;
        let since = n.created_at.minus(Millis::hours(
            state.config.controls.destination_change_hold_hours,
        ));
        let recent = |changed: Option<Millis>| changed.is_some_and(|t| t > since);
        (
            phone.filter(|_| recent(card.phone_changed_at)),
            email.filter(|_| recent(card.email_changed_at)),
        )
    } else {
        (card.phone_sealed.clone(), card.email_sealed.clone())
    };
    if state.delivery.is_enabled(Channel::Sms) {
        if let Some(phone) = open("phone", phone.as_deref()).and_then(|p| Phone::parse(&p).ok()) {
            return Some((
                Channel::Sms,
                Zeroizing::new(phone.expose().to_owned()),
                phone.masked(),
            ));
        }
    }
    if state.delivery.is_enabled(Channel::Email) {
        if let Some(email) = open("email", email.as_deref()).and_then(|e| Email::parse(&e).ok()) {
            return Some((
                Channel::Email,
                Zeroizing::new(email.expose().to_owned()),
                email.masked(),
            ));
        }
    }
    None
}

/// One attempt of a claimed notice, recorded.
async fn attempt(state: &SharedState, n: &CardholderNoticeRow) {
    let now = state.clock.now_ms();
    let done = |state_: &'static str, error: Option<String>| NoticeAttempt {
        at: now,
        state: state_,
        next: now,
        error,
        channel: None,
        provider: None,
        destination_masked: None,
    };
    let card = match state.store.card_by_ref(&n.card_ref).await {
        Ok(c) => c,
        Err(e) => {
            // The lease runs out and the notice is claimed again.
            tracing::error!(notice_id = n.id, error = %e, "notice sender: cannot read the card");
            return;
        }
    };
    let result = match card {
        None => done("skipped", Some("the card is no longer on file".into())),
        Some(card) => {
            match destination(state, n, &card).await {
                None => done(
                    "skipped",
                    Some("no phone number or e-mail address on file for an enabled channel".into()),
                ),
                Some((channel, to, masked)) => {
                    let message = build(state, n, &card, channel, to).await;
                    let sent = state
                        .delivery
                        .send_at(&message, state.delivery.deadline(channel), now)
                        .await;
                    for a in &sent.attempts {
                        crate::metrics::record_delivery_attempt(
                            channel.as_str(),
                            &a.provider,
                            a.outcome,
                        );
                    }
                    let provider = sent.accepted_by().map(str::to_owned);
                    let mut a = match sent.result {
                    Ok(_) => done("sent", None),
                    Err(DeliveryError::Refused { code, .. }) => {
                        let attempt_no = u32::try_from(n.attempts).unwrap_or(u32::MAX);
                        let give_up = now.0 - n.created_at.0
                            >= i64::from(state.config.notices.give_up_after_minutes) * 60_000;
                        let error = Some(format!(
                            "the providers refused or failed ({})",
                            code.as_deref().unwrap_or("no code")
                        ));
                        if give_up {
                            done("failed", error)
                        } else {
                            NoticeAttempt {
                                state: "waiting",
                                next: now.plus(Millis(with_jitter(backoff_ms(attempt_no)))),
                                ..done("waiting", error)
                            }
                        }
                    }
                    Err(DeliveryError::Timeout(_) | DeliveryError::Unclear(_)) => done(
                        "unclear",
                        Some("no clear answer from the provider: perhaps delivered, not sent again".into()),
                    ),
                    Err(DeliveryError::Disabled) => done("skipped", Some("the channel is disabled".into())),
                };
                    a.channel = Some(channel.as_str());
                    a.provider = provider;
                    a.destination_masked = Some(masked);
                    a
                }
            }
        }
    };
    let outcome = match result.state {
        "waiting" => "retry",
        "sent" => "sent",
        "failed" => "failed",
        "unclear" => "unclear",
        _ => "skipped",
    };
    crate::metrics::record_cardholder_notice(&n.kind, outcome);
    tracing::info!(
        notice_id = n.id,
        kind = %n.kind,
        card_ref = %n.card_ref,
        virtual_card_id = %n.virtual_card_id,
        attempt = n.attempts,
        channel = result.channel.unwrap_or(""),
        provider = result.provider.as_deref().unwrap_or(""),
        to = result.destination_masked.as_deref().unwrap_or(""),
        state = result.state,
        error = result.error.as_deref().unwrap_or(""),
        "cardholder notice attempt"
    );
    if let Err(e) = state
        .store
        .finish_cardholder_notice(n.id, n.attempts, &result)
        .await
    {
        tracing::error!(notice_id = n.id, error = %e, "notice sender: cannot record an attempt");
    }
}

/// The notice's message, in the enrolment's device language, else the card's, else the default.
async fn build(
    state: &SharedState,
    n: &CardholderNoticeRow,
    card: &CardRow,
    channel: Channel,
    to: Zeroizing<String>,
) -> Message {
    let enrolment = state
        .store
        .enrolment(&n.correlation_id)
        .await
        .ok()
        .flatten();
    let device_language = enrolment.as_ref().and_then(|e| e.device_language.clone());
    let device_name = enrolment.and_then(|e| e.device_name);
    let languages: Vec<Language> = [device_language.as_deref(), card.language.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(Language::parse)
        .collect();
    template::token_activated(
        &state.config.templates,
        channel,
        to,
        &template::Activated {
            last4: &card.last4,
            wallet: &n.wallet_provider_id,
            device: device_name.as_deref(),
            support_phone: &state.config.notices.support_phone,
            languages: &languages,
        },
    )
}

/// The back-off plus up to a fifth more, at random (as the life-cycle sender does).
fn with_jitter(ms: i64) -> i64 {
    let r = crate::data_keys::random_bytes::<2>();
    let unit = i64::from(u16::from_le_bytes(r));
    ms + ms / 5 * unit / 65_535
}
