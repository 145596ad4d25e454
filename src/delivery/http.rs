//! What the HTTP SMS providers (`twilio`, `vonage`) share: one pooled client per provider, the
//! form post with its answer read up to a bound, and how a failed exchange is classified: only a
//! failure to connect is certain (nothing was sent); a reset after the request was written, or
//! an answer cut off after a 2xx, may hide a delivered message (`Unclear`).

use super::DeliveryError;
use std::time::Duration;
use zeroize::Zeroizing;

/// At most this much of the gateway's answer is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Idle keep-alive connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The provider's pooled client: every stage within `timeout`, no redirect (it would resend
/// the credentials and the message elsewhere).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("issuer-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(64)
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("sms.base_url: cannot set up the HTTP client: {e}"))
}

/// Posts the form (already encoded) and reads the answer: its status and at most 64 KiB of it.
pub async fn post_form(
    request: reqwest::RequestBuilder,
    form: &str,
    timeout: Duration,
) -> Result<(u16, Zeroizing<Vec<u8>>), DeliveryError> {
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let request = request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .body(form.as_bytes().to_vec());
    let mut response = request.send().await.map_err(|e| request_error(&e, ms))?;
    let status = response.status().as_u16();
    let mut answer = Zeroizing::new(Vec::new());
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES.saturating_sub(answer.len());
                answer.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&[]));
                if answer.len() >= MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            // The gateway answered a status, then the answer broke off: accepted (and
            // perhaps delivered) or not, nobody knows for a 2xx.
            Err(e) if (200..300).contains(&status) => return Err(request_error(&e, ms)),
            Err(_) => {
                return Err(DeliveryError::Refused {
                    code: Some(status.to_string()),
                    reason: format!("gateway answered HTTP {status}"),
                });
            }
        }
    }
    Ok((status, answer))
}

pub fn is_loopback_host(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// A provider identifier safe to store and show: 1..=max characters of `[A-Za-z0-9_.:-]`.
pub fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// A failed exchange: its kind and local cause only (no URL, nothing the gateway said).
pub fn request_error(e: &reqwest::Error, ms: u64) -> DeliveryError {
    if e.is_timeout() {
        return DeliveryError::Timeout(ms);
    }
    let what = if e.is_connect() {
        "cannot connect to the gateway"
    } else if e.is_body() || e.is_decode() {
        "the gateway's answer could not be read"
    } else {
        "the request to the gateway failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let reason = if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    };
    // Only a failure to connect is certain: nothing was sent. Any later failure (a reset after
    // the request was written, an answer cut off) may hide a delivered message.
    if e.is_connect() {
        DeliveryError::Refused { code: None, reason }
    } else {
        DeliveryError::Unclear(reason)
    }
}
