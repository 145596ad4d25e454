//! `sendOTP`: deliver the network's OTP to the cardholder, exactly as received, on the chosen
//! channel, and answer 200 only once the provider accepted it.

use super::error::{ApiError, Code};
use super::fields::Fields;
use super::{Call, Operation, Success};
use crate::controls::{self, Refusal};
use crate::delivery::DeliveryError;
use crate::delivery::template;
use crate::domain::{CardStatus, Channel, Email, Language, Otp, Phone};
use crate::store::{Claim, MethodRow, SendClaim, SendFinish};
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
    pub expires_at: Option<i64>,
}

/// Checks every field (before any lookup), in the order the contract's codes are answered.
pub fn parse<'a>(body: &Fields<'a>) -> Result<Request<'a>, ApiError> {
    let card_ref = body.req_id("issuerCardRefId", 1, 48)?;
    let otp_text = body.req_str("otpValue", 1, 32)?;
    let otp = Otp::new(otp_text).map_err(|e| ApiError::new(Code::BadField, e.to_string()))?;
    let wallet = body.opt_id("walletProviderId", 1, 128)?;
    let method_id = body.opt_id("otpMethodId", 1, 64)?;
    body.opt_id("virtualCardId", 1, 64)?;
    body.opt_str("deviceBindingReference", 1, 128)?;
    body.opt_obj("tokenRequestor")?;
    let expires_at = expiration(body)?;
    Ok(Request {
        card_ref,
        otp,
        wallet,
        method_id,
        expires_at,
    })
}

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Success, ApiError> {
    let state = call.state;
    let Request {
        card_ref,
        otp,
        wallet,
        method_id,
        expires_at,
    } = parse(body)?;

    let refuse = |code: Code, msg: &str| ApiError::new(code, msg).with_card(card_ref);
    let enrolment = state.store.enrolment(call.correlation_id).await?;
    let enrolment = match enrolment {
        Some(e)
            if e.decision.as_deref() == Some("yellow")
                && e.card_ref.as_deref() == Some(card_ref) =>
        {
            e
        }
        _ => {
            return Err(refuse(
                Code::NoStepUp,
                "no enrolment in step-up for this correlation id and card",
            ));
        }
    };
    let methods = state.store.enrolment_methods(call.correlation_id).await?;
    let method: MethodRow = match method_id {
        Some(id) => methods
            .into_iter()
            .find(|m| m.method_id == id)
            .ok_or_else(|| {
                refuse(
                    Code::UnknownMethod,
                    "otpMethodId was not offered to this enrolment",
                )
            })?,
        None => state
            .config
            .idv
            .channel_preference
            .iter()
            .find_map(|c| methods.iter().find(|m| m.channel == c.as_str()).cloned())
            .ok_or_else(|| {
                refuse(
                    Code::UnknownMethod,
                    "no ID&V method was offered to this enrolment",
                )
            })?,
    };
    let channel = Channel::parse(&method.channel)
        .ok_or_else(|| ApiError::internal("stored method has an unknown channel"))?;
    if !state.delivery.is_enabled(channel) {
        return Err(refuse(
            Code::UnknownMethod,
            "the method's channel is no longer available",
        ));
    }
    let retry_fp = state.data_keys.fingerprint(
        "send-retry",
        &[
            call.correlation_id.as_bytes(),
            method.method_id.as_bytes(),
            otp.expose().as_bytes(),
        ],
    );
    // A retry of a send already accepted answers 200 again, whatever happened since.
    if state.store.send_outcome(&retry_fp).await?.as_deref() == Some("accepted") {
        return already_sent(call, card_ref).await;
    }
    let card = state
        .store
        .card_by_ref(card_ref)
        .await?
        .ok_or_else(|| refuse(Code::NoStepUp, "the enrolment's card is no longer on file"))?;
    if card.status != CardStatus::Active {
        return Err(refuse(Code::FraudRefused, "card is not active"));
    }
    if expires_at.is_some_and(|t| t <= call.at) {
        return Err(refuse(
            Code::OtpExpired,
            "the OTP expired before it could be sent",
        ));
    }
    let controls = &state.config.controls;
    let fraud = |r: Refusal| refuse(Code::FraudRefused, r.0);

    // The destination, opened from its sealed form only now, and only for this message.
    let (to, masked, dest_fp) = match channel {
        Channel::Sms => {
            let sealed = card
                .phone_sealed
                .as_deref()
                .ok_or_else(|| refuse(Code::NoDestination, "no phone number on file"))?;
            let phone = state
                .data_keys
                .unseal("phone", sealed)
                .map_err(ApiError::internal)?;
            let phone = Phone::parse(&phone)
                .map_err(|_| ApiError::internal("stored phone number is invalid"))?;
            controls::check_destination_hold(controls, card.phone_changed_at, call.at)
                .map_err(fraud)?;
            controls::check_sms_country(controls, &phone).map_err(fraud)?;
            (
                Zeroizing::new(phone.expose().to_owned()),
                phone.masked(),
                card.phone_fp.clone().unwrap_or_default(),
            )
        }
        Channel::Email => {
            let sealed = card
                .email_sealed
                .as_deref()
                .ok_or_else(|| refuse(Code::NoDestination, "no e-mail address on file"))?;
            let email = state
                .data_keys
                .unseal("email", sealed)
                .map_err(ApiError::internal)?;
            let email = Email::parse(&email)
                .map_err(|_| ApiError::internal("stored e-mail address is invalid"))?;
            controls::check_destination_hold(controls, card.email_changed_at, call.at)
                .map_err(fraud)?;
            (
                Zeroizing::new(email.expose().to_owned()),
                email.masked(),
                card.email_fp.clone().unwrap_or_default(),
            )
        }
    };
    let languages: Vec<Language> = [
        enrolment.device_language.as_deref(),
        card.language.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(Language::parse)
    .collect();
    let about = template::About {
        last4: &card.last4,
        wallet: wallet.or(enrolment.wallet_provider_id.as_deref()),
        languages: &languages,
    };
    let message = template::build(&state.config.templates, channel, to, &otp, &about);

    let deadline = state.delivery.deadline(channel);
    let claim = SendClaim {
        correlation_id: call.correlation_id,
        card_ref,
        method_id: &method.method_id,
        channel: channel.as_str(),
        provider: state.delivery.provider_name(channel),
        destination_masked: &masked,
        destination_fp: &dest_fp,
        retry_fp: &retry_fp,
        at: call.at,
        stale_after_ms: i64::try_from(deadline.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(60_000),
        limits: controls::limits(&state.config, channel),
    };
    let id = match state.store.claim_send(&claim).await? {
        Claim::Claimed(id) => id,
        Claim::AlreadyAccepted => return already_sent(call, card_ref).await,
        Claim::InFlight => return wait_for_other(call, card_ref, &retry_fp, deadline).await,
        Claim::Limited(limit) => {
            crate::metrics::record_limit_refusal(limit);
            return Err(refuse(
                Code::RateLimited,
                &format!("rate limit reached: {limit}"),
            ));
        }
    };

    let sent_at = Instant::now();
    let result = state.delivery.send(&message).await;
    let latency_ms = i64::try_from(sent_at.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (outcome, code, provider_message_id, provider_code, err) = match result {
        Ok(receipt) => ("accepted", 200i64, receipt.provider_message_id, None, None),
        Err(DeliveryError::Timeout(ms)) => (
            "timeout",
            i64::from(Code::ProviderTimeout.number()),
            None,
            None,
            Some(ApiError::new(
                Code::ProviderTimeout,
                format!("the delivery provider did not answer within {ms} ms"),
            )),
        ),
        Err(DeliveryError::Refused { code, reason: _ }) => (
            "refused",
            i64::from(Code::ProviderFailed.number()),
            None,
            code,
            Some(ApiError::new(
                Code::ProviderFailed,
                "the delivery provider refused or failed",
            )),
        ),
        Err(DeliveryError::Disabled) => (
            "refused",
            i64::from(Code::ProviderFailed.number()),
            None,
            None,
            Some(ApiError::new(
                Code::ProviderFailed,
                "the channel is disabled",
            )),
        ),
    };
    crate::metrics::record_send(channel.as_str(), outcome, sent_at.elapsed());
    let mut rec = call.record(Operation::SendOtp, code, outcome);
    rec.card_ref = Some(card_ref);
    rec.detail = Some(channel.as_str());
    state
        .store
        .finish_send(
            id,
            &rec,
            &SendFinish {
                outcome,
                provider_message_id: provider_message_id.as_deref(),
                provider_code: provider_code.as_deref(),
                latency_ms,
            },
        )
        .await?;
    match err {
        // Already recorded with the send: the dispatcher must not record it again.
        Some(mut e) => {
            e.recorded = true;
            Err(e)
        }
        None => Ok(Success {
            body: json!({}),
            outcome: format!("sent by {channel} to {masked}"),
        }),
    }
}

async fn already_sent(call: &Call<'_>, card_ref: &str) -> Result<Success, ApiError> {
    let mut rec = call.record(Operation::SendOtp, 200, "already-sent");
    rec.card_ref = Some(card_ref);
    rec.detail = Some("retry of an accepted send: nothing sent");
    call.state.store.record_call(&rec).await?;
    Ok(Success {
        body: json!({}),
        outcome: "already-sent".into(),
    })
}

/// The same send is under way in another call (a concurrent retry): wait for its outcome, up
/// to the channel's deadline, and answer as it did.
async fn wait_for_other(
    call: &Call<'_>,
    card_ref: &str,
    retry_fp: &str,
    deadline: Duration,
) -> Result<Success, ApiError> {
    // Never past this call's own deadline (the dispatcher answers 500 there): keep a margin to
    // answer and record the outcome.
    let request_deadline =
        call.started + Duration::from_millis(call.state.config.server.request_timeout_ms);
    let latest = request_deadline
        .checked_sub(Duration::from_millis(250))
        .unwrap_or(request_deadline);
    let until = (Instant::now() + deadline + Duration::from_secs(1)).min(latest);
    loop {
        match call.state.store.send_outcome(retry_fp).await?.as_deref() {
            Some("accepted") => return already_sent(call, card_ref).await,
            Some("pending") if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Some("pending") => {
                return Err(ApiError::new(
                    Code::ProviderTimeout,
                    "the same OTP is still being delivered by another call",
                )
                .with_card(card_ref));
            }
            Some("timeout") => {
                return Err(ApiError::new(
                    Code::ProviderTimeout,
                    "the delivery provider did not answer in time",
                )
                .with_card(card_ref));
            }
            _ => {
                return Err(ApiError::new(
                    Code::ProviderFailed,
                    "the delivery provider refused or failed",
                )
                .with_card(card_ref));
            }
        }
    }
}

/// `expirationDate`: ISO 8601 / RFC 3339 date-time, or epoch milliseconds (number or digits).
/// Public for the fuzz targets.
pub fn expiration(body: &Fields<'_>) -> Result<Option<i64>, ApiError> {
    let bad = || {
        ApiError::new(
            Code::BadField,
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
