//! OTP delivery: one interface, one provider per channel (a Twilio-compatible SMS gateway, an
//! SMTP relay, or the local outbox). Every send has a deadline and an honest outcome: accepted
//! only when the provider accepted the message.

mod http;
pub mod outbox;
pub mod smtp;
pub mod template;
pub mod twilio;
pub mod vonage;

use crate::config::{Config, EmailProvider, SmsProvider};
use crate::domain::Channel;
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
    fn name(&self) -> &'static str {
        match self {
            Provider::Outbox(_) => "outbox",
            Provider::Twilio(_) => "twilio",
            Provider::Vonage(_) => "vonage",
            Provider::Smtp(_) => "smtp",
            Provider::Disabled => "disabled",
        }
    }
}

/// The configured channels.
pub struct Delivery {
    sms: Provider,
    sms_timeout: Duration,
    email: Provider,
    email_timeout: Duration,
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
        let sms = match c.sms.provider {
            SmsProvider::Outbox => outbox()?,
            SmsProvider::Disabled => Provider::Disabled,
            SmsProvider::Twilio => Provider::Twilio(Box::new(
                twilio::Twilio::new(&c.sms).map_err(|e| anyhow::anyhow!(e))?,
            )),
            SmsProvider::Vonage => Provider::Vonage(Box::new(
                vonage::Vonage::new(&c.sms).map_err(|e| anyhow::anyhow!(e))?,
            )),
        };
        let email = match c.email.provider {
            EmailProvider::Outbox => outbox()?,
            EmailProvider::Disabled => Provider::Disabled,
            EmailProvider::Smtp => Provider::Smtp(Box::new(
                smtp::Smtp::new(&c.email).map_err(|e| anyhow::anyhow!(e))?,
            )),
        };
        Ok(Delivery {
            sms,
            sms_timeout: Duration::from_millis(c.sms.timeout_ms),
            email,
            email_timeout: Duration::from_millis(c.email.timeout_ms),
        })
    }

    fn provider(&self, channel: Channel) -> (&Provider, Duration) {
        match channel {
            Channel::Sms => (&self.sms, self.sms_timeout),
            Channel::Email => (&self.email, self.email_timeout),
        }
    }

    /// True when the channel can deliver (configured, not disabled).
    pub fn is_enabled(&self, channel: Channel) -> bool {
        !matches!(self.provider(channel).0, Provider::Disabled)
    }

    /// The channel's deadline for the provider's answer.
    pub fn deadline(&self, channel: Channel) -> Duration {
        self.provider(channel).1
    }

    /// The channels on the `outbox` provider (development: nothing is delivered).
    pub fn outbox_channels(&self) -> Vec<Channel> {
        [Channel::Sms, Channel::Email]
            .into_iter()
            .filter(|c| matches!(self.provider(*c).0, Provider::Outbox(_)))
            .collect()
    }

    pub fn provider_name(&self, channel: Channel) -> &'static str {
        self.provider(channel).0.name()
    }

    /// Checks at start that each configured provider is usable: the SMTP relay is reached
    /// (greeting, EHLO, STARTTLS, AUTH) within `email.timeout_ms`; the SMS gateway's endpoint
    /// and credentials are set. The error names the setting at fault.
    pub async fn check(&self) -> Result<(), String> {
        for provider in [&self.sms, &self.email] {
            match provider {
                Provider::Twilio(t) => {
                    t.check()?;
                    tracing::info!(endpoint = t.endpoint(), "sms: twilio gateway configured");
                }
                Provider::Vonage(v) => {
                    v.check()?;
                    tracing::info!(endpoint = v.endpoint(), "sms: vonage API configured");
                }
                Provider::Smtp(s) => {
                    s.check().await?;
                    tracing::info!("email: smtp relay reached");
                }
                Provider::Outbox(_) | Provider::Disabled => {}
            }
        }
        Ok(())
    }

    /// Sends within the channel's deadline.
    pub async fn send(&self, msg: &Message) -> Result<Receipt, DeliveryError> {
        self.send_within(msg, Duration::MAX).await
    }

    /// Sends within the channel's deadline or `limit`, whichever is shorter (what is left of
    /// the call that sends).
    pub async fn send_within(
        &self,
        msg: &Message,
        limit: Duration,
    ) -> Result<Receipt, DeliveryError> {
        let (provider, channel_deadline) = self.provider(msg.channel);
        let deadline = channel_deadline.min(limit);
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        let attempt = async {
            match provider {
                Provider::Outbox(o) => o.write(msg).await,
                Provider::Twilio(t) => t.send(msg).await,
                Provider::Vonage(v) => v.send(msg).await,
                Provider::Smtp(s) => s.send(msg).await,
                Provider::Disabled => Err(DeliveryError::Disabled),
            }
        };
        let result = match tokio::time::timeout(deadline, attempt).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Timeout(ms)),
        };
        // Why a message was not delivered, for the operator: codes and local causes only (the
        // reasons never hold a destination, an OTP or the provider's own text).
        match &result {
            Err(DeliveryError::Refused { code, reason }) => tracing::warn!(
                channel = %msg.channel,
                provider = provider.name(),
                provider_code = code.as_deref().unwrap_or(""),
                reason = %reason,
                "OTP not delivered: the provider refused or failed"
            ),
            Err(DeliveryError::Timeout(ms)) => tracing::warn!(
                channel = %msg.channel,
                provider = provider.name(),
                timeout_ms = ms,
                "OTP not delivered: the provider did not answer in time"
            ),
            Err(DeliveryError::Unclear(reason)) => tracing::warn!(
                channel = %msg.channel,
                provider = provider.name(),
                reason = %reason,
                "OTP perhaps delivered: no clear answer from the provider"
            ),
            Ok(_) | Err(DeliveryError::Disabled) => {}
        }
        result
    }
}
