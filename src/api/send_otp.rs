//! `sendOTP`: deliver the network's OTP to the cardholder, exactly as received, on the chosen
//! channel, and answer 200 only once the provider accepted it.

use super::error::{ApiError, Reason};
use super::fields::Fields;
use super::{Audit, Call, Handled};
use crate::controls::{self, Refusal, limits};
use crate::delivery::{DeliveryError, Message, template};
use crate::domain::{
    CardStatus, Channel, Email, Language, LevelOfTrust, Millis, Otp, Phone, SendOutcome,
};
use crate::state::AppState;
use crate::store::{CardRow, Claim, MethodRow, SendClaim, SendFinish, Write};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The checked fields of a `sendOTP` body.
pub struct Request<'a> {
    pub card_ref: &'a str,
    pub otp: Otp,
    pub wallet: Option<&'a str>,
    pub method_id: Option<&'a str>,
    /// Epoch milliseconds.
    pub expires_at: Option<Millis>,
    /// A device-binding code (`deviceBindingReference` present), not a card-adding one.
    pub device_binding: bool,
}

/// Checks every field (before any lookup), in the order the contract's codes are answered.
pub fn parse<'a>(body: &Fields<'a>) -> Result<Request<'a>, ApiError> {
    let card_ref = body.req_id("issuerCardRefId", 1, 48)?;
    let otp_text = body.req_str("otpValue", 1, 32)?;
    let otp = Otp::new(otp_text).map_err(|e| ApiError::new(Reason::BadField, e.to_string()))?;
    let wallet = body.opt_id("walletProviderId", 1, 128)?;
    let method_id = body.opt_id("otpMethodId", 1, 64)?;
    body.opt_id("virtualCardId", 1, 64)?;
    let device_binding = body.opt_str("deviceBindingReference", 1, 128)?.is_some();
    body.opt_obj("tokenRequestor")?;
    let expires_at = expiration(body)?.map(Millis);
    Ok(Request {
        card_ref,
        otp,
        wallet,
        method_id,
        expires_at,
        device_binding,
    })
}

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Handled, ApiError> {
    let request = parse(body)?;
    match send(call, &request).await {
        Ok(handled) => Ok(handled),
        Err(e) if e.reason == Reason::Internal => Err(e),
        // Every refusal after the body was read is recorded with the card the call named.
        Err(e) => Ok(Handled::refused(e, Audit::card(request.card_ref))),
    }
}

/// The steps of a send: the enrolment and its method, the retry rule, the card, the
/// destination and the fraud controls, the message, the claim (retry rule and rate limits,
/// atomically), the delivery, and what it became.
async fn send(call: &Call<'_>, r: &Request<'_>) -> Result<Handled, ApiError> {
    let state = call.state;
    let enrolment = match state.store.enrolment(call.correlation_id).await? {
        Some(e)
            if e.decision == Some(LevelOfTrust::Yellow)
                && e.card_ref.as_deref() == Some(r.card_ref) =>
        {
            e
        }
        _ => {
            return Err(ApiError::new(
                Reason::UnknownSession,
                "no enrolment in step-up for this correlation id and card",
            ));
        }
    };
    let method = choose_method(call, r.method_id).await?;
    // The bank's app and customer service are offered, but activate outside the OTP.
    let channel = method.channel.channel().ok_or_else(|| {
        ApiError::new(
            Reason::UnknownMethod,
            "otpMethodId names a method that sends no OTP (the bank's app or customer service)",
        )
    })?;
    if !state.delivery.is_enabled(channel) {
        return Err(ApiError::new(
            Reason::UnknownMethod,
            "the method's channel is no longer available",
        ));
    }
    let retry_fp = state.data_keys.fingerprint(
        "send-retry",
        &[
            call.correlation_id.as_bytes(),
            method.method_id.as_bytes(),
            r.otp.expose().as_bytes(),
        ],
    );
    // A retry of a send already accepted answers 200 again, whatever happened since.
    if state.store.send_outcome(&retry_fp).await? == Some(SendOutcome::Accepted) {
        return Ok(already_sent(r.card_ref));
    }
    // An enrolment that ended (activated, or failed) or is too old serves no more OTPs
    // (a retry of one already accepted, above, is still answered 200).
    if matches!(enrolment.state.as_str(), "complete" | "failed") {
        return Err(ApiError::new(
            Reason::UnknownSession,
            "the enrolment is already complete or failed",
        ));
    }
    let max_age = i64::from(state.config.controls.step_up_max_age_minutes) * 60_000;
    if call.at.0.saturating_sub(enrolment.created_at.0) > max_age {
        return Err(ApiError::new(
            Reason::UnknownSession,
            "the enrolment is older than controls.step_up_max_age_minutes",
        ));
    }
    let card = state.store.card_by_ref(r.card_ref).await?.ok_or_else(|| {
        ApiError::new(
            Reason::UnknownSession,
            "the enrolment's card is no longer on file",
        )
    })?;
    if card.status != CardStatus::Active {
        return Err(ApiError::new(Reason::Declined, "card is not active"));
    }
    if r.expires_at.is_some_and(|t| t <= call.at) {
        return Err(ApiError::new(
            Reason::OtpExpired,
            "the OTP expired before it could be sent",
        ));
    }
    let destination = open_destination(state, &card, channel, call.at)?;
    if channel == Channel::Sms {
        check_sim_swap(state, &destination).await?;
    }

    let languages: Vec<Language> = [
        enrolment.device_language.as_deref(),
        card.language.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(Language::parse)
    .collect();
    let about = template::About {
        purpose: if r.device_binding {
            template::Purpose::DeviceBinding
        } else {
            template::Purpose::AddCard
        },
        last4: &card.last4,
        wallet: r.wallet.or(enrolment.wallet_provider_id.as_deref()),
        languages: &languages,
    };
    let message = template::build(
        &state.config.templates,
        channel,
        destination.to,
        &r.otp,
        &about,
    );

    let deadline = state.delivery.deadline(channel);
    let limits = limits::for_send(&state.config.limits, channel);
    let claim = SendClaim {
        correlation_id: call.correlation_id,
        card_ref: r.card_ref,
        method_id: &method.method_id,
        channel,
        provider: state.delivery.provider_name(channel),
        destination_masked: &destination.masked,
        destination_fp: &destination.fingerprint,
        retry_fp: &retry_fp,
        at: call.at,
        // A pending send older than this was interrupted (a crash).
        stale_after: Millis::of(deadline).plus(Millis(60_000)),
        limits: &limits,
    };
    let id = match state.store.claim_send(&claim).await? {
        Claim::Claimed(id) => id,
        Claim::AlreadyAccepted => return Ok(already_sent(r.card_ref)),
        Claim::InFlight => return wait_for_other(call, r.card_ref, &retry_fp, deadline).await,
        Claim::RetriedOnce => {
            return Err(ApiError::new(
                Reason::DeliveryFailed,
                "this OTP was already sent again after an unclear outcome",
            ));
        }
        Claim::Limited(limit) => {
            crate::metrics::record_limit_refusal(limit);
            return Err(ApiError::new(
                Reason::LimitReached,
                format!("rate limit reached: {limit}"),
            ));
        }
    };
    Ok(deliver(call, r.card_ref, id, &message, &destination.masked).await)
}

/// The method `otpMethodId` names, else the first offered in the configured preference order.
async fn choose_method(call: &Call<'_>, method_id: Option<&str>) -> Result<MethodRow, ApiError> {
    let methods = call
        .state
        .store
        .enrolment_methods(call.correlation_id)
        .await?;
    match method_id {
        Some(id) => methods
            .into_iter()
            .find(|m| m.method_id == id)
            .ok_or_else(|| {
                ApiError::new(
                    Reason::UnknownMethod,
                    "otpMethodId was not offered to this enrolment",
                )
            }),
        None => call
            .state
            .config
            .idv
            .channel_preference
            .iter()
            .filter(|k| k.channel().is_some())
            .find_map(|k| methods.iter().find(|m| m.channel == *k).cloned())
            .ok_or_else(|| {
                ApiError::new(
                    Reason::UnknownMethod,
                    "no OTP method was offered to this enrolment",
                )
            }),
    }
}

/// A destination opened for one message: the address, its masked form and its fingerprint.
struct Destination {
    to: Zeroizing<String>,
    masked: String,
    fingerprint: String,
}

/// The channel's destination, opened from its sealed form only now and only for this message,
/// once the fraud controls allow it.
fn open_destination(
    state: &AppState,
    card: &CardRow,
    channel: Channel,
    now_ms: Millis,
) -> Result<Destination, ApiError> {
    let controls = &state.config.controls;
    let fraud = |r: Refusal| ApiError::new(Reason::Declined, r.0);
    match channel {
        Channel::Sms => {
            let sealed = card
                .phone_sealed
                .as_deref()
                .ok_or_else(|| ApiError::new(Reason::Declined, "no phone number on file"))?;
            let phone = state
                .data_keys
                .unseal_for_card("phone", &card.pan_index, sealed)
                .map_err(ApiError::internal)?;
            let phone = Phone::parse(&phone)
                .map_err(|_| ApiError::internal("stored phone number is invalid"))?;
            controls::check_destination_hold(controls, card.phone_changed_at, now_ms)
                .map_err(fraud)?;
            controls::check_sms_country(controls, &phone).map_err(fraud)?;
            Ok(Destination {
                to: Zeroizing::new(phone.expose().to_owned()),
                masked: phone.masked(),
                fingerprint: card.phone_fp.clone().unwrap_or_default(),
            })
        }
        Channel::Email => {
            let sealed = card
                .email_sealed
                .as_deref()
                .ok_or_else(|| ApiError::new(Reason::Declined, "no e-mail address on file"))?;
            let email = state
                .data_keys
                .unseal_for_card("email", &card.pan_index, sealed)
                .map_err(ApiError::internal)?;
            let email = Email::parse(&email)
                .map_err(|_| ApiError::internal("stored e-mail address is invalid"))?;
            controls::check_destination_hold(controls, card.email_changed_at, now_ms)
                .map_err(fraud)?;
            Ok(Destination {
                to: Zeroizing::new(email.expose().to_owned()),
                masked: email.masked(),
                fingerprint: card.email_fp.clone().unwrap_or_default(),
            })
        }
    }
}

/// The SIM-swap check (when `[sim_swap]` is configured): a number whose SIM changed recently is
/// sent nothing.
async fn check_sim_swap(state: &AppState, destination: &Destination) -> Result<(), ApiError> {
    let Some(check) = &state.sim_swap else {
        return Ok(());
    };
    // The number as opened for this message (it parsed as a phone number there).
    let phone = Phone::parse(&destination.to)
        .map_err(|_| ApiError::internal("stored phone number is invalid"))?;
    if check.allows_sms(&phone, &destination.fingerprint).await {
        Ok(())
    } else {
        Err(ApiError::new(
            Reason::Declined,
            "the phone number's SIM changed recently",
        ))
    }
}

/// Sends the claimed message `id` within the channel's deadline; the answer says what became of
/// it, and the send's outcome is written with the call record.
async fn deliver(
    call: &Call<'_>,
    card_ref: &str,
    id: i64,
    message: &Message,
    masked: &str,
) -> Handled {
    let channel = message.channel;
    let sent_at = Instant::now();
    // The provider gets the channel's deadline or what is left of this call's, less a margin to
    // record the outcome, whichever is shorter: the send is never cut off by the call's own
    // deadline, which would leave it pending and answer 500.
    let left = call_time_left(call);
    // The channel's providers in order, a fallback only after a certain failure, all within
    // `left` (with no time left nothing is handed to any provider: a certain failure).
    let sent = call.state.delivery.send_at(message, left, call.at).await;
    for a in &sent.attempts {
        crate::metrics::record_delivery_attempt(channel.as_str(), &a.provider, a.outcome);
    }
    let accepted_by = sent.accepted_by().map(str::to_owned);
    let attempts = sent.summary();
    let result = sent.result;
    let latency_ms = Millis::of(sent_at.elapsed());
    let (outcome, provider_message_id, provider_code, answer) = match result {
        Ok(receipt) => (
            SendOutcome::Accepted,
            receipt.provider_message_id,
            None,
            Ok(json!({})),
        ),
        Err(DeliveryError::Timeout(ms)) => (
            SendOutcome::Timeout,
            None,
            None,
            Err(ApiError::new(
                Reason::DeliveryTimeout,
                format!("the delivery provider did not answer within {ms} ms"),
            )),
        ),
        // Perhaps delivered: counted against the limits like a timeout, and a retry of the
        // same OTP is sent again once.
        Err(DeliveryError::Unclear(_)) => (
            SendOutcome::Timeout,
            None,
            None,
            Err(ApiError::new(
                Reason::DeliveryTimeout,
                "no clear answer from the delivery provider: the message may have been delivered",
            )),
        ),
        Err(DeliveryError::Refused { code, reason: _ }) => (
            SendOutcome::Refused,
            None,
            code,
            Err(ApiError::new(
                Reason::DeliveryFailed,
                "the delivery provider refused or failed",
            )),
        ),
        Err(DeliveryError::Disabled) => (
            SendOutcome::Refused,
            None,
            None,
            Err(ApiError::new(
                Reason::DeliveryFailed,
                "the channel is disabled",
            )),
        ),
    };
    crate::metrics::record_send(channel.as_str(), outcome.as_str(), sent_at.elapsed());
    let audit = Audit {
        outcome: outcome.as_str().to_owned(),
        detail: Some(channel.as_str().to_owned()),
        log: match &accepted_by {
            Some(p) => format!("sent by {channel} ({p}) to {masked}"),
            None => format!("sent by {channel} to {masked}"),
        },
        ..Audit::card(card_ref)
    };
    Handled {
        answer,
        audit,
        write: Write::SendFinished {
            id,
            finish: SendFinish {
                outcome,
                provider_message_id,
                provider_code,
                latency_ms,
                accepted_by,
                attempts,
            },
        },
    }
}

/// What the provider may take of this call: its deadline less [`RECORD_MARGIN`], from now.
fn call_time_left(call: &Call<'_>) -> Duration {
    let request_deadline =
        call.started + Duration::from_millis(call.state.config.server.request_timeout_ms);
    request_deadline
        .checked_sub(RECORD_MARGIN)
        .and_then(|latest| latest.checked_duration_since(Instant::now()))
        .unwrap_or(Duration::ZERO)
}

/// Kept of a call's deadline to record a send's outcome and answer.
const RECORD_MARGIN: Duration = Duration::from_millis(250);

/// A retry of a send that was accepted: nothing is sent again.
fn already_sent(card_ref: &str) -> Handled {
    let audit = Audit {
        outcome: "already-sent".into(),
        detail: Some("retry of an accepted send: nothing sent".into()),
        ..Audit::card(card_ref)
    };
    Handled::ok(json!({}), audit)
}

/// The same send is under way in another call (a concurrent retry): wait for its outcome, up
/// to the channel's deadline, and answer as it did.
async fn wait_for_other(
    call: &Call<'_>,
    card_ref: &str,
    retry_fp: &str,
    deadline: Duration,
) -> Result<Handled, ApiError> {
    // Never past this call's own deadline (the dispatcher answers 500 there): keep a margin to
    // answer and record the outcome.
    let until = Instant::now() + (deadline + Duration::from_secs(1)).min(call_time_left(call));
    loop {
        match call.state.store.send_outcome(retry_fp).await? {
            Some(SendOutcome::Accepted) => return Ok(already_sent(card_ref)),
            Some(SendOutcome::Pending) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Some(SendOutcome::Pending) => {
                return Err(ApiError::new(
                    Reason::DeliveryTimeout,
                    "the same OTP is still being delivered by another call",
                ));
            }
            Some(SendOutcome::Timeout) => {
                return Err(ApiError::new(
                    Reason::DeliveryTimeout,
                    "the delivery provider did not answer in time",
                ));
            }
            Some(SendOutcome::Refused) | None => {
                return Err(ApiError::new(
                    Reason::DeliveryFailed,
                    "the delivery provider refused or failed",
                ));
            }
        }
    }
}

/// `expirationDate`: ISO 8601 / RFC 3339 date-time, or epoch milliseconds (number or digits).
/// Public for the fuzz targets.
pub fn expiration(body: &Fields<'_>) -> Result<Option<i64>, ApiError> {
    let bad = || {
        ApiError::new(
            Reason::BadField,
            "expirationDate must be an ISO 8601 date-time or epoch milliseconds",
        )
    };
    match body.0.get("expirationDate") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => {
            let s = s.trim();
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse::<i64>().map(Some).map_err(|_| bad());
            }
            if s.len() > 64 {
                return Err(bad());
            }
            let t = time::OffsetDateTime::parse(
                s,
                &time::format_description::well_known::Iso8601::DEFAULT,
            )
            .or_else(|_| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            })
            .map_err(|_| bad())?;
            Ok(Some(crate::clock::to_ms(t)))
        }
        Some(_) => Err(bad()),
    }
}
