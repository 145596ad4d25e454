//! OTP delivery: one interface, a chain of providers per channel (a Twilio-compatible or Vonage
//! SMS gateway, an SMTP relay, or the local outbox; then the `[[sms.fallback]]` /
//! `[[email.fallback]]` ones). Every send has a deadline and an honest outcome: accepted only when
//! a provider accepted the message. A fallback is tried only after a *certain* failure of the
//! provider before it (nothing was delivered: a refusal, a 5xx, no connection), never after an
//! unclear one (the message may have gone out), never twice, and only within what is left of the
//! send's deadline. Each provider has a circuit breaker (`breaker`).

pub mod breaker;
mod http;
pub mod outbox;
pub mod smtp;
pub mod template;
pub mod twilio;
pub mod vonage;

use crate::config::{Config, EmailConfig, EmailProvider, SmsConfig, SmsProvider};
use crate::domain::{Channel, Millis};
use breaker::{Breaker, BreakerView};
use std::fmt;
use std::time::Duration;
use zeroize::Zeroizing;

/// A message ready to go. Its destination and text are secret: Debug shows neither.
pub struct Message {
    pub channel: Channel,
    pub to: Zeroizing<String>,
    pub subject: Option<String>,
    pub body: Zeroizing<String>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({}, [redacted])", self.channel)
    }
}

/// What the provider said when it accepted the message.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub provider_message_id: Option<String>,
}

/// Why a message was not delivered. Messages carry no destination and no text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    #[error("provider refused the message ({reason})")]
    Refused {
        code: Option<String>,
        reason: String,
    },
    #[error("provider did not answer within {0} ms")]
    Timeout(u64),
    /// The message went out (or may have) and no clear answer came: a reset after the request
    /// was written, the connection closed after the end of DATA. Like a timeout, it may have
    /// been delivered.
    #[error("no clear answer from the provider ({0})")]
    Unclear(String),
    #[error("channel is disabled")]
    Disabled,
}

enum Provider {
    Outbox(outbox::Outbox),
    Twilio(Box<twilio::Twilio>),
    Vonage(Box<vonage::Vonage>),
    Smtp(Box<smtp::Smtp>),
    Disabled,
}

impl Provider {
    fn kind(&self) -> &'static str {
        match self {
            Provider::Outbox(_) => "outbox",
            Provider::Twilio(_) => "twilio",
            Provider::Vonage(_) => "vonage",
            Provider::Smtp(_) => "smtp",
            Provider::Disabled => "disabled",
        }
    }

    async fn send(&self, msg: &Message) -> Result<Receipt, DeliveryError> {
        match self {
            Provider::Outbox(o) => o.write(msg).await,
            Provider::Twilio(t) => t.send(msg).await,
            Provider::Vonage(v) => v.send(msg).await,
            Provider::Smtp(s) => s.send(msg).await,
            Provider::Disabled => Err(DeliveryError::Disabled),
        }
    }
}

/// One provider of a channel's chain: its name, its deadline, its breaker.
struct Endpoint {
    name: String,
    provider: Provider,
    timeout: Duration,
    breaker: Breaker,
}

/// One attempt of a send (or a provider skipped by its breaker).
#[derive(Debug, Clone)]
pub struct Tried {
    /// The provider's name (`sms.name`, `sms.fallback[].name`).
    pub provider: String,
    /// `accepted`, `refused`, `timeout`, `unclear`, `disabled`, or `skipped` (breaker open).
    pub outcome: &'static str,
    pub elapsed: Duration,
}

/// What became of a send: its outcome (the accepting provider's receipt, else the last
/// failure), and every attempt in order.
#[derive(Debug)]
pub struct Sent {
    pub result: Result<Receipt, DeliveryError>,
    pub attempts: Vec<Tried>,
}

impl Sent {
    /// The name of the provider that accepted the message.
    pub fn accepted_by(&self) -> Option<&str> {
        self.attempts
            .iter()
            .find(|a| a.outcome == "accepted")
            .map(|a| a.provider.as_str())
    }

    /// The attempts as stored with the send: `twilio:refused vonage:accepted`.
    pub fn summary(&self) -> String {
        self.attempts
            .iter()
            .map(|a| format!("{}:{}", a.provider, a.outcome))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A provider's breaker as `/health` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealth {
    pub channel: Channel,
    pub provider: String,
    pub kind: &'static str,
    /// 0 for the section's own provider, then 1, 2... for its fallbacks.
    pub position: usize,
    #[serde(flatten)]
    pub breaker: BreakerView,
}

/// The configured channels.
pub struct Delivery {
    sms: Vec<Endpoint>,
    email: Vec<Endpoint>,
}

/// `sms.*` in a problem about the `position`th provider of the chain becomes its own key.
fn rekey(e: String, section: &str, position: usize) -> anyhow::Error {
    if position == 0 {
        anyhow::anyhow!(e)
    } else {
        let i = position - 1;
        anyhow::anyhow!(e.replace(&format!("{section}."), &format!("{section}.fallback[{i}].")))
    }
}

impl Delivery {
    /// Builds the providers: `outbox` ones create their folder, `twilio` builds its pooled HTTP
    /// client, `smtp` prepares TLS. Nothing is contacted here (see [`Delivery::check`]).
    pub fn from_config(c: &Config) -> anyhow::Result<Delivery> {
        let outbox = || -> anyhow::Result<Provider> {
            Ok(Provider::Outbox(
                outbox::Outbox::new(&c.outbox.dir).map_err(|e| {
                    anyhow::anyhow!("outbox.dir: cannot create {}: {e}", c.outbox.dir.display())
                })?,
            ))
        };
        let sms_provider = |s: &SmsConfig, i: usize| -> anyhow::Result<Provider> {
            Ok(match s.provider {
                SmsProvider::Outbox => outbox()?,
                SmsProvider::Disabled => Provider::Disabled,
                SmsProvider::Twilio => Provider::Twilio(Box::new(
                    twilio::Twilio::new(s).map_err(|e| rekey(e, "sms", i))?,
                )),
                SmsProvider::Vonage => Provider::Vonage(Box::new(
                    vonage::Vonage::new(s).map_err(|e| rekey(e, "sms", i))?,
                )),
            })
        };
        let email_provider = |m: &EmailConfig, i: usize| -> anyhow::Result<Provider> {
            Ok(match m.provider {
                EmailProvider::Outbox => outbox()?,
                EmailProvider::Disabled => Provider::Disabled,
                EmailProvider::Smtp => Provider::Smtp(Box::new(
                    smtp::Smtp::new(m).map_err(|e| rekey(e, "email", i))?,
                )),
            })
        };
        let mut sms = Vec::new();
        for ((i, s), name) in c.sms.chain().enumerate().zip(c.sms.provider_names()) {
            sms.push(Endpoint {
                name,
                provider: sms_provider(s, i)?,
                timeout: Duration::from_millis(s.timeout_ms),
                breaker: Breaker::new(s.breaker_failures, s.breaker_open_seconds),
            });
        }
        let mut email = Vec::new();
        for ((i, m), name) in c.email.chain().enumerate().zip(c.email.provider_names()) {
            email.push(Endpoint {
                name,
                provider: email_provider(m, i)?,
                timeout: Duration::from_millis(m.timeout_ms),
                breaker: Breaker::new(m.breaker_failures, m.breaker_open_seconds),
            });
        }
        Ok(Delivery { sms, email })
    }

    fn chain(&self, channel: Channel) -> &[Endpoint] {
        match channel {
            Channel::Sms => &self.sms,
            Channel::Email => &self.email,
        }
    }

    fn primary(&self, channel: Channel) -> Option<&Endpoint> {
        self.chain(channel).first()
    }

    /// True when the channel can deliver (configured, not disabled).
    pub fn is_enabled(&self, channel: Channel) -> bool {
        self.primary(channel)
            .is_some_and(|e| !matches!(e.provider, Provider::Disabled))
    }

    /// The longest a send on the channel can take: every provider's deadline, one after the
    /// other (a send is also bounded by what is left of its call).
    pub fn deadline(&self, channel: Channel) -> Duration {
        self.chain(channel)
            .iter()
            .fold(Duration::ZERO, |sum, e| sum.saturating_add(e.timeout))
    }

    /// The channels on the `outbox` provider (development: nothing is delivered).
    pub fn outbox_channels(&self) -> Vec<Channel> {
        [Channel::Sms, Channel::Email]
            .into_iter()
            .filter(|c| {
                self.primary(*c)
                    .is_some_and(|e| matches!(e.provider, Provider::Outbox(_)))
            })
            .collect()
    }

    /// The name of the channel's first provider.
    pub fn provider_name(&self, channel: Channel) -> &str {
        self.primary(channel)
            .map_or("disabled", |e| e.name.as_str())
    }

    /// Every provider's breaker at `now`, SMS first, each chain in order.
    pub fn providers_health(&self, now: Millis) -> Vec<ProviderHealth> {
        [Channel::Sms, Channel::Email]
            .into_iter()
            .flat_map(|channel| {
                self.chain(channel)
                    .iter()
                    .enumerate()
                    .map(move |(position, e)| ProviderHealth {
                        channel,
                        provider: e.name.clone(),
                        kind: e.provider.kind(),
                        position,
                        breaker: e.breaker.view(now),
                    })
            })
            .collect()
    }

    /// Checks at start that each configured provider is usable: the SMTP relay is reached
    /// (greeting, EHLO, STARTTLS, AUTH) within `email.timeout_ms`; the SMS gateway's endpoint
    /// and credentials are set. The error names the setting at fault.
    pub async fn check(&self) -> Result<(), String> {
        for (channel, section) in [(Channel::Sms, "sms"), (Channel::Email, "email")] {
            for (i, e) in self.chain(channel).iter().enumerate() {
                let named = |m: String| rekey(m, section, i).to_string();
                match &e.provider {
                    Provider::Twilio(t) => {
                        t.check().map_err(named)?;
                        tracing::info!(provider = %e.name, endpoint = t.endpoint(), "sms: twilio gateway configured");
                    }
                    Provider::Vonage(v) => {
                        v.check().map_err(named)?;
                        tracing::info!(provider = %e.name, endpoint = v.endpoint(), "sms: vonage API configured");
                    }
                    Provider::Smtp(s) => {
                        s.check().await.map_err(named)?;
                        tracing::info!(provider = %e.name, "email: smtp relay reached");
                    }
                    Provider::Outbox(_) | Provider::Disabled => {}
                }
            }
        }
        Ok(())
    }

    /// Sends within `limit` (what is left of the call that sends), each provider within its own
    /// deadline too, trying the channel's providers in order after certain failures; `now` is
    /// the gateway's clock, for the breakers.
    pub async fn send_at(&self, msg: &Message, limit: Duration, now: Millis) -> Sent {
        let started = std::time::Instant::now();
        let chain = self.chain(msg.channel);
        let mut attempts = Vec::new();
        let mut last: Option<Result<Receipt, DeliveryError>> = None;
        // When every provider is open, the first is tried anyway: a cardholder is never failed
        // without an attempt.
        let all_open = chain
            .iter()
            .all(|e| e.breaker.state(now) == breaker::BreakerState::Open);
        for (i, e) in chain.iter().enumerate() {
            let allowed = (all_open && i == 0) || e.breaker.try_acquire(now);
            if !allowed {
                attempts.push(Tried {
                    provider: e.name.clone(),
                    outcome: "skipped",
                    elapsed: Duration::ZERO,
                });
                tracing::info!(channel = %msg.channel, provider = %e.name, "provider skipped: its circuit breaker is open");
                continue;
            }
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let at = std::time::Instant::now();
            let result = self.attempt(e, msg, left).await;
            let outcome = match &result {
                Ok(_) => "accepted",
                Err(DeliveryError::Refused { .. }) => "refused",
                Err(DeliveryError::Timeout(_)) => "timeout",
                Err(DeliveryError::Unclear(_)) => "unclear",
                Err(DeliveryError::Disabled) => "disabled",
            };
            if !matches!(result, Err(DeliveryError::Disabled)) {
                e.breaker.record(result.is_ok(), now);
            }
            attempts.push(Tried {
                provider: e.name.clone(),
                outcome,
                elapsed: at.elapsed(),
            });
            // Only a certain failure lets the next provider try: nothing was delivered.
            let certain = matches!(result, Err(DeliveryError::Refused { .. }));
            last = Some(result);
            if !certain {
                break;
            }
        }
        let result = last.unwrap_or_else(|| {
            // Nothing was handed to any provider: a certain failure, for the limits too.
            Err(DeliveryError::Refused {
                code: None,
                reason: "no time left in the call to deliver".into(),
            })
        });
        Sent { result, attempts }
    }

    /// One provider's attempt, within its deadline or `limit`, whichever is shorter.
    async fn attempt(
        &self,
        e: &Endpoint,
        msg: &Message,
        limit: Duration,
    ) -> Result<Receipt, DeliveryError> {
        let deadline = e.timeout.min(limit);
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        let result = match tokio::time::timeout(deadline, e.provider.send(msg)).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Timeout(ms)),
        };
        // Why a message was not delivered, for the operator: codes and local causes only (the
        // reasons never hold a destination, an OTP or the provider's own text).
        let provider = e.name.as_str();
        match &result {
            Err(DeliveryError::Refused { code, reason }) => tracing::warn!(
                channel = %msg.channel,
                provider,
                provider_code = code.as_deref().unwrap_or(""),
                reason = %reason,
                "message not delivered by this provider: it refused or failed"
            ),
            Err(DeliveryError::Timeout(ms)) => tracing::warn!(
                channel = %msg.channel,
                provider,
                timeout_ms = ms,
                "message not delivered: the provider did not answer in time"
            ),
            Err(DeliveryError::Unclear(reason)) => tracing::warn!(
                channel = %msg.channel,
                provider,
                reason = %reason,
                "message perhaps delivered: no clear answer from the provider"
            ),
            Ok(_) | Err(DeliveryError::Disabled) => {}
        }
        result
    }
}
