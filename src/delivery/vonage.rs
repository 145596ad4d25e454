//! The `vonage` SMS channel: the Vonage (Nexmo) SMS API. `POST {base_url}/sms/json` with a
//! form-encoded `api_key`, `api_secret`, `from`, `to` (E.164 without its `+`), `text`, and
//! `type=unicode` when the text is not GSM-7.
//!
//! Accepted = HTTP 200 whose JSON `messages` are all `status` `"0"` (a long text is split into
//! several messages); the first `message-id` is kept. Any other status is a refusal reported
//! with that status (Vonage's own code: 1 throttled, 4 invalid credentials, ...), never with its
//! `error-text`, which may echo the number.

use super::http::{self, is_token};
use super::{DeliveryError, Message, Receipt};
use crate::config::SmsConfig;
use std::time::Duration;
use zeroize::Zeroizing;

pub struct Vonage {
    client: reqwest::Client,
    url: reqwest::Url,
    api_key: String,
    api_secret: Zeroizing<String>,
    from: String,
    timeout: Duration,
}

impl Vonage {
    /// Checks the settings and builds the channel's one pooled HTTP client.
    pub fn new(c: &SmsConfig) -> Result<Vonage, String> {
        for (key, value) in [("sms.api_key", &c.api_key), ("sms.from", &c.from)] {
            if value.trim().is_empty() {
                return Err(format!("{key}: required when sms.provider = \"vonage\""));
            }
        }
        if c.api_secret.is_empty() {
            return Err("sms.api_secret: required when sms.provider = \"vonage\"".into());
        }
        if c.timeout_ms == 0 {
            return Err("sms.timeout_ms: must be above 0".into());
        }
        let url = sms_url(&c.base_url)?;
        let timeout = Duration::from_millis(c.timeout_ms);
        Ok(Vonage {
            client: http::client(timeout)?,
            url,
            api_key: c.api_key.trim().to_owned(),
            api_secret: Zeroizing::new(c.api_secret.expose().to_owned()),
            from: c.from.trim().to_owned(),
            timeout,
        })
    }

    /// Warns when the API is reached over plain HTTP on another host.
    pub fn check(&self) -> Result<(), String> {
        if self.url.scheme() == "http" && !http::is_loopback_host(&self.url) {
            tracing::warn!(
                host = self.url.host_str().unwrap_or(""),
                "sms.base_url uses plain http: credentials and OTPs travel unencrypted"
            );
        }
        Ok(())
    }

    /// The endpoint messages are posted to (shown in start-up logs; holds no secret).
    pub fn endpoint(&self) -> &str {
        self.url.as_str()
    }

    pub async fn send(&self, msg: &Message) -> Result<Receipt, DeliveryError> {
        let to = msg.to.trim_start_matches('+');
        let unicode = super::template::sms_length(&msg.body).0 != "GSM-7";
        let mut fields = vec![
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.as_str()),
            ("from", self.from.as_str()),
            ("to", to),
            ("text", msg.body.as_str()),
        ];
        if unicode {
            fields.push(("type", "unicode"));
        }
        let form = super::twilio::form_encode(&fields);
        let (status, answer) =
            http::post_form(self.client.post(self.url.clone()), &form, self.timeout).await?;
        interpret(status, &answer)
    }
}

/// `{base_url}/sms/json`.
fn sms_url(base_url: &str) -> Result<reqwest::Url, String> {
    let base = base_url.trim();
    if base.is_empty() {
        return Err("sms.base_url: required when sms.provider = \"vonage\"".into());
    }
    let mut url = reqwest::Url::parse(base)
        .map_err(|_| "sms.base_url: not a URL such as https://rest.nexmo.com".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("sms.base_url: must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(
            "sms.base_url: must not carry a query, a fragment or credentials (use sms.api_key and sms.api_secret)"
                .into(),
        );
    }
    url.path_segments_mut()
        .map_err(|()| "sms.base_url: cannot take a path".to_owned())?
        .pop_if_empty()
        .extend(["sms", "json"]);
    Ok(url)
}

/// The outcome from the API's status and answer.
fn interpret(status: u16, answer: &[u8]) -> Result<Receipt, DeliveryError> {
    let refused = |code: String, reason: String| DeliveryError::Refused {
        code: Some(code),
        reason,
    };
    if status != 200 {
        return Err(refused(
            status.to_string(),
            format!("the SMS API answered HTTP {status}"),
        ));
    }
    // HTTP 200 that cannot be read: the API may have taken the message. Not a certain failure
    // (no fallback may send it again).
    let json: serde_json::Value = serde_json::from_slice(answer)
        .map_err(|_| DeliveryError::Unclear("the SMS API answered HTTP 200 with no JSON".into()))?;
    let messages = json
        .get("messages")
        .and_then(serde_json::Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            DeliveryError::Unclear("the SMS API answered HTTP 200 with no messages".into())
        })?;
    // A text sent in several parts, some taken and some not: the cardholder may have part of it.
    // Not a certain failure (no fallback may send it again).
    let taken = messages
        .iter()
        .filter(|m| {
            m.get("status").and_then(serde_json::Value::as_str) == Some("0")
                || m.get("status").and_then(serde_json::Value::as_i64) == Some(0)
        })
        .count();
    if taken > 0 && taken < messages.len() {
        return Err(DeliveryError::Unclear(format!(
            "the SMS API took {taken} of the {} parts of the message",
            messages.len()
        )));
    }
    for m in messages {
        let code = match m.get("status") {
            Some(serde_json::Value::String(s)) if is_token(s, 8) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => "?".into(),
        };
        if code != "0" {
            return Err(refused(
                code.clone(),
                format!("the SMS API refused the message (status {code})"),
            ));
        }
    }
    let id = messages
        .first()
        .and_then(|m| m.get("message-id"))
        .and_then(serde_json::Value::as_str)
        .filter(|id| is_token(id, 128))
        .map(str::to_owned);
    Ok(Receipt {
        provider_message_id: id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_only_when_every_message_has_status_0() {
        let ok = br#"{"message-count":"2","messages":[{"status":"0","message-id":"0A0000001"},{"status":"0","message-id":"0A0000002"}]}"#;
        let r = interpret(200, ok).unwrap();
        assert_eq!(r.provider_message_id.as_deref(), Some("0A0000001"));
        let refused = br#"{"messages":[{"status":"1","error-text":"Throttled +447700900123"}]}"#;
        match interpret(200, refused) {
            Err(DeliveryError::Refused { code, reason }) => {
                assert_eq!(code.as_deref(), Some("1"));
                assert!(!reason.contains("447700900123"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Part of a long text taken, or a 200 that cannot be read: perhaps delivered.
        let part = br#"{"messages":[{"status":"0"},{"status":"1","error-text":"Throttled +447700900123"}]}"#;
        match interpret(200, part) {
            Err(DeliveryError::Unclear(reason)) => {
                assert!(!reason.contains("447700900123"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        for body in [&br#"{"messages":[]}"#[..], b"not json"] {
            assert!(matches!(
                interpret(200, body),
                Err(DeliveryError::Unclear(_))
            ));
        }
        assert!(matches!(
            interpret(500, b"oops"),
            Err(DeliveryError::Refused { code: Some(c), .. }) if c == "500"
        ));
    }

    #[test]
    fn the_endpoint_is_under_the_base_path() {
        assert_eq!(
            sms_url("https://rest.nexmo.com").unwrap().as_str(),
            "https://rest.nexmo.com/sms/json"
        );
        assert_eq!(
            sms_url("http://127.0.0.1:9/gw/").unwrap().as_str(),
            "http://127.0.0.1:9/gw/sms/json"
        );
        let e = sms_url("https://user:s3cret@host").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
