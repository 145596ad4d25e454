//! The `twilio` SMS channel: the Twilio Programmable Messaging REST shape, which many SMS
//! gateways also accept. `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with
//! HTTP basic auth (`account_sid:auth_token`) and a form-encoded `To`, `From`, `Body`.
//!
//! Accepted = HTTP 201 (or 200) with a JSON body carrying `sid`; anything else is a refusal
//! reported with the provider's JSON `code` (or the HTTP status). The gateway's text is never
//! copied into an error: it may echo the phone number.

use super::http::{self, is_token};
use super::{DeliveryError, Message, Receipt};
use crate::config::SmsConfig;
use std::time::Duration;
use zeroize::Zeroizing;

pub struct Twilio {
    client: reqwest::Client,
    url: reqwest::Url,
    account_sid: String,
    auth_token: Zeroizing<String>,
    from: String,
    timeout: Duration,
}

impl Twilio {
    /// Checks the settings and builds the one pooled HTTP client of the channel.
    pub fn new(c: &SmsConfig) -> Result<Twilio, String> {
        if c.account_sid.trim().is_empty() {
            return Err("sms.account_sid: required when sms.provider = \"twilio\"".into());
        }
        if c.auth_token.is_empty() {
            return Err("sms.auth_token: required when sms.provider = \"twilio\"".into());
        }
        if c.from.trim().is_empty() {
            return Err("sms.from: required when sms.provider = \"twilio\"".into());
        }
        if c.timeout_ms == 0 {
            return Err("sms.timeout_ms: must be above 0".into());
        }
        let url = messages_url(&c.base_url, &c.account_sid)?;
        crate::install_crypto_provider();
        let timeout = Duration::from_millis(c.timeout_ms);
        let client = http::client(timeout)?;
        Ok(Twilio {
            client,
            url,
            account_sid: c.account_sid.trim().to_owned(),
            auth_token: Zeroizing::new(c.auth_token.expose().to_owned()),
            from: c.from.trim().to_owned(),
            timeout,
        })
    }

    /// What can be checked without sending: the endpoint and the credentials (both checked by
    /// `new`). Warns when the gateway is reached over plain HTTP on another host.
    pub fn check(&self) -> Result<(), String> {
        if self.account_sid.is_empty() || self.auth_token.is_empty() {
            return Err("sms.account_sid / sms.auth_token: required".into());
        }
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
        let form = form_encode(&[
            ("To", msg.to.as_str()),
            ("From", self.from.as_str()),
            ("Body", msg.body.as_str()),
        ]);
        let (status, answer) = http::post_form(
            self.client
                .post(self.url.clone())
                .basic_auth(&self.account_sid, Some(self.auth_token.as_str())),
            &form,
            self.timeout,
        )
        .await?;
        interpret(status, &answer)
    }
}

/// `{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, the account id encoded as one
/// path segment.
fn messages_url(base_url: &str, account_sid: &str) -> Result<reqwest::Url, String> {
    let base = base_url.trim();
    if base.is_empty() {
        return Err("sms.base_url: required when sms.provider = \"twilio\"".into());
    }
    // The URL is never echoed: a mistyped one may carry credentials.
    let mut url = reqwest::Url::parse(base)
        .map_err(|e| format!("sms.base_url: must be a URL such as https://api.twilio.com ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("sms.base_url: must be an http:// or https:// URL with a host".to_string());
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("sms.base_url: must not carry a query, a fragment or credentials (use sms.account_sid and sms.auth_token)".to_string());
    }
    url.path_segments_mut()
        .map_err(|()| "sms.base_url: cannot take a path".to_owned())?
        .pop_if_empty()
        .extend([
            "2010-04-01",
            "Accounts",
            account_sid.trim(),
            "Messages.json",
        ]);
    Ok(url)
}

/// `application/x-www-form-urlencoded`: ASCII letters, digits and `*-._` stay, space becomes
/// `+`, every other byte of the UTF-8 text becomes `%XX`. Decoding gives the text back exactly.
pub fn form_encode(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    use std::fmt::Write;
    let mut out = Zeroizing::new(String::new());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, text) in [name, value].into_iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            for b in text.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                        out.push(char::from(b));
                    }
                    b' ' => out.push('+'),
                    _ => {
                        let _ = write!(out, "%{b:02X}");
                    }
                }
            }
        }
    }
    out
}

/// The outcome from the gateway's status and answer.
fn interpret(status: u16, answer: &[u8]) -> Result<Receipt, DeliveryError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(answer).ok();
    let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
    if status == 200 || status == 201 {
        return match field("sid").and_then(serde_json::Value::as_str) {
            Some(sid) if is_token(sid, 128) => Ok(Receipt {
                provider_message_id: Some(sid.to_owned()),
            }),
            // A success without the message's id: the gateway may have taken it. Not a certain
            // failure (no fallback may send it again).
            _ => Err(DeliveryError::Unclear(format!(
                "gateway answered HTTP {status} without a message sid"
            ))),
        };
    }
    if (200..300).contains(&status) {
        return Err(DeliveryError::Unclear(format!(
            "gateway answered HTTP {status}, not 200 or 201 with a message sid"
        )));
    }
    let code = match field("code") {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) if is_token(s, 32) => Some(s.clone()),
        _ => None,
    }
    .unwrap_or_else(|| status.to_string());
    Err(DeliveryError::Refused {
        code: Some(code),
        reason: format!("gateway answered HTTP {status}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mistyped gateway URL may carry credentials: the error names the setting, never the URL.
    #[test]
    fn a_bad_base_url_is_not_echoed() {
        for url in [
            "https://AC1:tw-S3CRET-7@api.example.com",
            "https://api.example.com/?key=tw-S3CRET-8",
            "api.example.com/tw-S3CRET-9",
            "ftp://tw-S3CRET-10@example.com",
            "https://[tw-S3CRET-11",
        ] {
            let e = messages_url(url, "AC1").unwrap_err();
            assert!(
                e.starts_with("sms.base_url:") && !e.contains("S3CRET"),
                "{e}"
            );
        }
    }

    fn decode(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                let dec = |t: &str| {
                    let t = t.replace('+', " ");
                    let bytes = t.as_bytes();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while i < bytes.len() {
                        if bytes[i] == b'%' {
                            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                            out.push(u8::from_str_radix(h, 16).unwrap());
                            i += 3;
                        } else {
                            out.push(bytes[i]);
                            i += 1;
                        }
                    }
                    String::from_utf8(out).unwrap()
                };
                (dec(k), dec(v))
            })
            .collect()
    }

    #[test]
    fn form_encoding_round_trips_exactly() {
        let body = "0042 is your code: A+b&c=d %20 é€ 😀\nnext line";
        let enc = form_encode(&[("To", "+447700900123"), ("From", "Bank"), ("Body", body)]);
        assert!(enc.starts_with(
            "To=%2B447700900123&From=Bank&Body=0042+is+your+code%3A+A%2Bb%26c%3Dd+%2520+"
        ));
        assert!(enc.is_ascii());
        assert_eq!(
            decode(&enc),
            vec![
                ("To".into(), "+447700900123".into()),
                ("From".into(), "Bank".into()),
                ("Body".into(), body.into()),
            ]
        );
    }

    #[test]
    fn url_is_built_under_the_base_path() {
        let u = messages_url("https://api.twilio.com", "AC123").unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        let u = messages_url("http://127.0.0.1:8080/sms/", "AC 1/x").unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/sms/2010-04-01/Accounts/AC%201%2Fx/Messages.json"
        );
        for bad in [
            "",
            "api.twilio.com",
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=1",
        ] {
            let e = messages_url(bad, "AC1").unwrap_err();
            assert!(e.starts_with("sms.base_url:"), "{e}");
        }
    }

    #[test]
    fn accepted_only_with_2xx_and_a_sid() {
        let r = interpret(201, br#"{"sid":"SM0123456789abcdef","status":"queued"}"#).unwrap();
        assert_eq!(r.provider_message_id.as_deref(), Some("SM0123456789abcdef"));
        assert!(interpret(200, br#"{"sid":"SMx"}"#).is_ok());
        // A success without a usable sid may hide a message taken: unclear, not refused (a
        // fallback must not send it again).
        for (status, body) in [
            (201, &b"{}"[..]),
            (200, b"not json"),
            (201, br#"{"sid":""}"#),
            (201, br#"{"sid":"<script>"}"#),
            (202, br#"{"sid":"SMx"}"#),
        ] {
            match interpret(status, body) {
                Err(DeliveryError::Unclear(reason)) => {
                    assert!(reason.contains(&status.to_string()))
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn refusals_keep_the_provider_code_but_not_its_text() {
        let body = br#"{"code":21211,"message":"The 'To' number +447700900123 is not valid.","status":400}"#;
        match interpret(400, body) {
            Err(DeliveryError::Refused { code, reason }) => {
                assert_eq!(code.as_deref(), Some("21211"));
                assert!(!reason.contains("447700900123"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match interpret(500, b"<html>oops +447700900123</html>") {
            Err(DeliveryError::Refused { code, reason }) => {
                assert_eq!(code.as_deref(), Some("500"));
                assert!(!reason.contains("447700900123"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match interpret(429, br#"{"code":"rate limited +4477"}"#) {
            Err(DeliveryError::Refused { code, .. }) => assert_eq!(code.as_deref(), Some("429")),
            other => panic!("{other:?}"),
        }
    }
}
