//! The SIM-swap check (CAMARA SIM Swap API): a phone number whose SIM changed within
//! `sim_swap.max_age_hours` is how wallet-enrolment fraud is done (the fraudster receives the
//! OTP), so such a number is neither offered as an SMS method nor sent an OTP.
//!
//! `POST {base_url}/check` `{"phoneNumber": "+E164", "maxAge": hours}` -> `{"swapped": bool}`,
//! with a bearer token from OAuth 2.0 client credentials (`token_url`, HTTP Basic client
//! authentication), cached until shortly before it expires. Answers are cached per number (by
//! its keyed fingerprint, never the number) for `cache_ttl_seconds`. A check that cannot be
//! answered within `timeout_ms` (token included) counts as `on_error` says. Nothing logged or
//! counted carries the number.

use crate::config::{SimSwapConfig, SimSwapOnError};
use crate::domain::Phone;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many numbers' answers are remembered (the cache is safe to lose).
const CACHE_CAPACITY: usize = 100_000;

/// What the operator said of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimSwapVerdict {
    NotSwapped,
    Swapped,
    /// No answer in time, or an error: `on_error` decides.
    Unknown,
}

struct Token {
    value: String,
    until: Instant,
}

/// The configured check.
pub struct SimSwap {
    http: reqwest::Client,
    check_url: String,
    token_url: String,
    client_id: String,
    client_secret: crate::config::Secret,
    max_age_hours: u32,
    timeout: Duration,
    on_error: SimSwapOnError,
    cache_ttl: Duration,
    token: tokio::sync::Mutex<Option<Token>>,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl SimSwap {
    /// The check of the configuration, or `None` when `sim_swap.base_url` is not set.
    pub fn from_config(c: &SimSwapConfig) -> Result<Option<SimSwap>, String> {
        if !c.enabled() {
            return Ok(None);
        }
        crate::install_crypto_provider();
        let timeout = Duration::from_millis(c.timeout_ms);
        let http = reqwest::Client::builder()
            .user_agent(concat!("issuer-gateway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("sim_swap.base_url: cannot set up the HTTP client: {e}"))?;
        Ok(Some(SimSwap {
            http,
            check_url: format!("{}/check", c.base_url.trim_end_matches('/')),
            token_url: c.token_url.clone(),
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.clone(),
            max_age_hours: c.max_age_hours,
            timeout,
            on_error: c.on_error,
            cache_ttl: Duration::from_secs(u64::from(c.cache_ttl_seconds)),
            token: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// True when SMS may be used for `phone` (`fingerprint`: its keyed fingerprint, the cache
    /// key): not swapped, or unknown and `on_error = "allow"`.
    pub async fn allows_sms(&self, phone: &Phone, fingerprint: &str) -> bool {
        match self.verdict(phone, fingerprint).await {
            SimSwapVerdict::NotSwapped => true,
            SimSwapVerdict::Swapped => false,
            SimSwapVerdict::Unknown => self.on_error == SimSwapOnError::Allow,
        }
    }

    /// The operator's answer for `phone`, from the cache when fresh.
    pub async fn verdict(&self, phone: &Phone, fingerprint: &str) -> SimSwapVerdict {
        if let Some(swapped) = self.cached(fingerprint) {
            crate::metrics::record_sim_swap_check("cached");
            return if swapped {
                SimSwapVerdict::Swapped
            } else {
                SimSwapVerdict::NotSwapped
            };
        }
        let verdict = match tokio::time::timeout(self.timeout, self.ask(phone)).await {
            Ok(Ok(true)) => SimSwapVerdict::Swapped,
            Ok(Ok(false)) => SimSwapVerdict::NotSwapped,
            Ok(Err(reason)) => {
                tracing::warn!(reason = %reason, "sim_swap: the check failed");
                SimSwapVerdict::Unknown
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "sim_swap: the check did not answer in time"
                );
                SimSwapVerdict::Unknown
            }
        };
        crate::metrics::record_sim_swap_check(match verdict {
            SimSwapVerdict::NotSwapped => "not_swapped",
            SimSwapVerdict::Swapped => "swapped",
            SimSwapVerdict::Unknown => "unknown",
        });
        if verdict != SimSwapVerdict::Unknown {
            self.remember(fingerprint, verdict == SimSwapVerdict::Swapped);
        }
        verdict
    }

    fn cached(&self, fingerprint: &str) -> Option<bool> {
        if self.cache_ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().ok()?;
        cache
            .get(fingerprint)
            .filter(|(_, at)| at.elapsed() < self.cache_ttl)
            .map(|(swapped, _)| *swapped)
    }

    fn remember(&self, fingerprint: &str, swapped: bool) {
        if self.cache_ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                let ttl = self.cache_ttl;
                cache.retain(|_, (_, at)| at.elapsed() < ttl);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(fingerprint.to_owned(), (swapped, Instant::now()));
        }
    }

    /// One check: with the cached token, and once more with a new one if the API says the
    /// token is no longer good (401).
    async fn ask(&self, phone: &Phone) -> Result<bool, String> {
        for fresh in [false, true] {
            let token = self.token(fresh).await?;
            let resp = self
                .http
                .post(&self.check_url)
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "phoneNumber": phone.expose(),
                    "maxAge": self.max_age_hours,
                }))
                .send()
                .await
                .map_err(|e| format!("cannot reach the SIM swap API: {}", e.without_url()))?;
            let status = resp.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && !fresh {
                continue;
            }
            if !status.is_success() {
                return Err(format!(
                    "the SIM swap API answered HTTP {}",
                    status.as_u16()
                ));
            }
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|_| "the SIM swap API's answer is not JSON".to_owned())?;
            return body
                .get("swapped")
                .and_then(serde_json::Value::as_bool)
                .ok_or_else(|| "the SIM swap API's answer has no boolean 'swapped'".to_owned());
        }
        Err("the SIM swap API refused a new token".into())
    }

    /// The bearer token: the cached one while it is good for another 30 s, else a new one.
    async fn token(&self, fresh: bool) -> Result<String, String> {
        let mut held = self.token.lock().await;
        if let Some(t) = held.as_ref() {
            if !fresh && Instant::now() + Duration::from_secs(30) < t.until {
                return Ok(t.value.clone());
            }
        }
        let resp = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| format!("cannot reach sim_swap.token_url: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!(
                "sim_swap.token_url answered HTTP {} (check sim_swap.client_id and sim_swap.client_secret)",
                resp.status().as_u16()
            ));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|_| "sim_swap.token_url's answer is not JSON".to_owned())?;
        let value = body
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| "sim_swap.token_url's answer has no access_token".to_owned())?
            .to_owned();
        let lifetime = body
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(300);
        *held = Some(Token {
            value: value.clone(),
            until: Instant::now() + Duration::from_secs(lifetime),
        });
        Ok(value)
    }
}
