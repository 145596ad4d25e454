//! Arbitrary bytes as the JSON body of each TSH operation, read by the same functions the
//! operations use (`Fields`, `Signals::from_request`, `send_otp::expiration`, the domain parsers),
//! and as the decrypted content of `cipheredCardInfo` and `tokenInfo` (`card::parse_card_info`,
//! `notify::parse_token_info`).
//!
//! The handlers interleave their field checks with database calls, so the checks of each
//! operation are repeated here in the handler's order, with the handler's names and limits:
//! keep them in step with `src/api/{eligibility,digitization,send_otp,notify,card}.rs`.
//!
//! Nothing may panic; every refusal is a 4xx of the contract (never 500), and its message
//! never quotes a PAN- or OTP-like number from the body.
#![no_main]

use issuer_gateway::api::error::{ApiError, Code};
use issuer_gateway::api::fields::Fields;
use issuer_gateway::api::{card, digitization, notify, send_otp};
use issuer_gateway::decision::{self, Policy, Signals};
use issuer_gateway::domain::{Action, Expiry, Otp, Pan};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

type Checked = Result<(), ApiError>;

/// `card::resolve`, up to the point where it needs the key ring and the store.
fn card_fields(body: &Fields<'_>) -> Checked {
    body.opt_str("cipheredCardInfo", 1, 8196)?;
    body.opt_id("issuerCardRefId", 1, 48)?;
    Ok(())
}

/// `eligibility::handle`.
fn check_card_eligibility(body: &Fields<'_>) -> Checked {
    body.opt_id("walletProviderId", 1, 128)?;
    body.opt_obj("tokenRequestor")?;
    body.opt_str("captureMethod", 0, 64)?;
    card_fields(body)
}

/// `digitization::handle`: the fields, the signals, the decision of the default policy.
fn request_card_digitization(body: &Fields<'_>) -> Checked {
    body.opt_id("walletProviderId", 1, 128)?;
    for name in [
        "walletCardRefId",
        "publicKeyIdentifier",
        "tokenType",
        "tncAcceptedDate",
    ] {
        body.opt_str(name, 0, 128)?;
    }
    body.opt_str("authenticationValue", 1, 8196)?;
    body.opt_obj("tokenRequestor")?;
    let signals = Signals::from_request(body)?;
    card_fields(body)?;
    static POLICY: OnceLock<Policy> = OnceLock::new();
    let policy = POLICY.get_or_init(Policy::default_policy);
    let d = decision::decide(policy, &signals);
    assert!(!d.rule.is_empty());
    let _ = body
        .opt_obj("deviceInformation")?
        .and_then(|d| d.signal("language"))
        .map(|l| digitization::normalise_language(&l));
    serde_json::to_string(&signals).expect("signals serialise");
    Ok(())
}

/// `send_otp::handle`.
fn send_otp(body: &Fields<'_>) -> Checked {
    body.req_id("issuerCardRefId", 1, 48)?;
    let otp_text = body.req_str("otpValue", 1, 32)?;
    let otp = Otp::new(otp_text).map_err(|e| ApiError::new(Code::BadField, e.to_string()))?;
    assert_eq!(otp.expose(), otp_text, "the OTP is carried byte for byte");
    body.opt_id("walletProviderId", 1, 128)?;
    body.opt_id("otpMethodId", 1, 64)?;
    body.opt_id("virtualCardId", 1, 64)?;
    body.opt_str("deviceBindingReference", 1, 128)?;
    body.opt_obj("tokenRequestor")?;
    send_otp::expiration(body)?;
    Ok(())
}

/// `notify::handle`.
fn notify_virtual_card_change(body: &Fields<'_>) -> Checked {
    body.req_id("issuerCardRefId", 1, 48)?;
    body.req_id("virtualCardId", 1, 64)?;
    body.req_id("walletProviderId", 1, 128)?;
    Action::parse(body.req_id("action", 1, 64)?);
    body.opt_str("tokenStorageId", 1, 128)?;
    body.opt_bool("isPrimary")?;
    for name in [
        "walletCardRefId",
        "walletVirtualCardId",
        "primaryWalletVirtualCardId",
    ] {
        body.opt_str(name, 1, 128)?;
    }
    body.opt_id("source", 1, 32)?;
    body.opt_int("errorCode")?;
    body.opt_obj("tokenRequestor")?;
    body.opt_str("deviceBindingReference", 1, 128)?;
    body.opt_str("tokenInfo", 1, 8196)?;
    Ok(())
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// A refusal of hostile input is a 4xx of the contract, and says nothing of the values.
fn refusal_is_clean(r: Checked) {
    if let Err(e) = r {
        assert_ne!(
            e.code,
            Code::Internal,
            "hostile input gave a 500: {}",
            e.message
        );
        assert!(e.status().is_client_error());
        assert!(
            longest_digit_run(&e.message) < 6,
            "a refusal quotes a number from the body: {}",
            e.message
        );
    }
}

/// Every reader of `Fields` over every member, nested objects included (a few levels deep).
fn walk(body: &Fields<'_>, depth: usize) {
    for name in body.0.keys() {
        let _ = body.opt_str(name, 0, usize::MAX);
        let _ = body.opt_id(name, 1, 64);
        let _ = body.opt_bool(name);
        let _ = body.opt_int(name);
        let _ = body.opt_array(name);
        let _ = body.signal_num(name);
        if let Some(s) = body.signal(name) {
            let _ = Pan::parse(&s);
            let _ = Expiry::parse_mmyy(&s);
            let _ = Action::parse(&s);
            let _ = digitization::normalise_language(&s);
        }
        if depth < 4 {
            if let Ok(Some(inner)) = body.opt_obj(name) {
                walk(&inner, depth + 1);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The decrypted content of the envelopes.
    match card::parse_card_info(data) {
        Ok(info) => assert!((12..=19).contains(&info.pan.expose_digits().len())),
        Err(e) => refusal_is_clean(Err(e)),
    }
    match notify::parse_token_info(data) {
        Ok(token) => {
            assert_eq!(token.last4.len(), 4);
            assert!(token.last4.bytes().all(|b| b.is_ascii_digit()));
        }
        Err(e) => refusal_is_clean(Err(e)),
    }

    // The request body: a JSON object, as the dispatcher requires.
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let body = Fields(&map);
    refusal_is_clean(check_card_eligibility(&body));
    refusal_is_clean(request_card_digitization(&body));
    refusal_is_clean(send_otp(&body));
    refusal_is_clean(notify_virtual_card_change(&body));
    walk(&body, 0);
});
