//! OTP delivery: one interface, one provider per channel (outbox here; the SMS gateway and SMTP
//! providers plug in the same way). Every send has a deadline and an honest outcome: accepted
//! only when the provider accepted the message.

pub mod outbox;
pub mod template;

use crate::config::Config;
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
    #[error("channel is disabled")]
    Disabled,
}

enum Provider {
    Outbox(outbox::Outbox),
    Disabled,
}

impl Provider {
    fn name(&self) -> &'static str {
        match self {
            Provider::Outbox(_) => "outbox",
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
    /// Builds the providers; `outbox` ones create their folder.
    pub fn from_config(c: &Config) -> anyhow::Result<Delivery> {
        let make = |kind: &str, channel: &str| -> anyhow::Result<Provider> {
            Ok(match kind {
                "outbox" => Provider::Outbox(outbox::Outbox::new(&c.outbox.dir).map_err(|e| {
                    anyhow::anyhow!("outbox.dir: cannot create {}: {e}", c.outbox.dir.display())
                })?),
                "disabled" => Provider::Disabled,
                other => {
                    anyhow::bail!("{channel}.provider: '{other}' is not available in this build")
                }
            })
        };
        Ok(Delivery {
            sms: make(&c.sms.provider, "sms")?,
            sms_timeout: Duration::from_millis(c.sms.timeout_ms),
            email: make(&c.email.provider, "email")?,
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

    pub fn provider_name(&self, channel: Channel) -> &'static str {
        self.provider(channel).0.name()
    }

    /// Sends within the channel's deadline.
    pub async fn send(&self, msg: &Message) -> Result<Receipt, DeliveryError> {
        let (provider, deadline) = self.provider(msg.channel);
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        let attempt = async {
            match provider {
                Provider::Outbox(o) => o.write(msg).await,
                Provider::Disabled => Err(DeliveryError::Disabled),
            }
        };
        match tokio::time::timeout(deadline, attempt).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Timeout(ms)),
        }
    }
}
