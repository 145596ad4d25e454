//! Arbitrary bytes as the JSON body of each TSH operation, through the same `parse` function
//! each operation's handler calls before any lookup (`eligibility::parse`,
//! `digitization::parse`, `send_otp::parse`, `notify::parse`), then the decision of the default
//! policy over the signals; and as the decrypted content of `cipheredCardInfo` and `tokenInfo`
//! (`resolve_card::parse_card_info`, `notify::parse_token_info`).
//!
//! Nothing may panic; every refusal is a 4xx of the contract (never 500), and its message
//! never quotes a PAN- or OTP-like number from the body.
#![no_main]

use issuer_gateway::api::error::{ApiError, Reason};
use issuer_gateway::api::fields::Fields;
use issuer_gateway::api::{digitization, eligibility, notify, resolve_card, send_otp};
use issuer_gateway::decision::{self, Policy};
use issuer_gateway::domain::{Action, Expiry, Language, Pan};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

type Checked = Result<(), ApiError>;

fn check_card_eligibility(body: &Fields<'_>) -> Checked {
    eligibility::parse(body).map(|_| ())
}

/// The fields, the signals, and the decision of the default policy over them.
fn request_card_digitization(body: &Fields<'_>) -> Checked {
    let request = digitization::parse(body)?;
    static POLICY: OnceLock<Policy> = OnceLock::new();
    let policy = POLICY.get_or_init(Policy::default_policy);
    let d = decision::decide(policy, &request.signals);
    assert!(!d.rule.is_empty());
    serde_json::to_string(&request.signals).expect("signals serialise");
    Ok(())
}

fn send_otp(body: &Fields<'_>) -> Checked {
    let request = send_otp::parse(body)?;
    let sent = body
        .0
        .get("otpValue")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert_eq!(
        request.otp.expose(),
        sent,
        "the OTP is carried byte for byte"
    );
    Ok(())
}

fn notify_virtual_card_change(body: &Fields<'_>) -> Checked {
    notify::parse(body).map(|_| ())
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
            e.reason,
            Reason::Internal,
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
            let _ = Language::parse(&s);
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
    match resolve_card::parse_card_info(data) {
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
