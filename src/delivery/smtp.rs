//! The `smtp` e-mail channel: plain SMTP submission (`email.tls` = `none`, `starttls` or `tls`)
//! with AUTH when `email.username` is set. One text/plain UTF-8 message per OTP; accepted only
//! when the relay answered 250 to the end of DATA.
//!
//! Connections are kept for reuse, but only after a transaction that completed: a send cut off
//! by its deadline drops its connection, so a half-written message can never be continued by
//! the next one. The relay's text is never copied into an error (it may echo the address).

use super::{DeliveryError, Message, Receipt};
use crate::config::{EmailConfig, SmtpTls};
use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;
/// An idle connection older than this is closed rather than reused (relays drop idle clients).
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

enum Security {
    None,
    StartTls(TlsParameters),
    Tls(TlsParameters),
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

pub struct Smtp {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    id_domain: String,
    timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

impl Smtp {
    /// Checks the settings and prepares TLS; connects only when asked (`check`, `send`).
    pub fn new(c: &EmailConfig) -> Result<Smtp, String> {
        let host = c.host.trim().to_owned();
        if host.is_empty() {
            return Err("email.host: required when email.provider = \"smtp\"".into());
        }
        if c.port == 0 {
            return Err("email.port: must be above 0".into());
        }
        if c.timeout_ms == 0 {
            return Err("email.timeout_ms: must be above 0".into());
        }
        let from: Mailbox = c.from.trim().parse().map_err(|e| {
            format!(
                "email.from: must be a mailbox such as Card Services <no-reply@bank.example> ({e})"
            )
        })?;
        let tls_params = || {
            crate::install_crypto_provider();
            TlsParameters::new(host.clone())
                .map_err(|e| format!("email.tls: cannot set up TLS for {host}: {e}"))
        };
        let security = match c.tls {
            SmtpTls::None => Security::None,
            SmtpTls::Starttls => Security::StartTls(tls_params()?),
            SmtpTls::Tls => Security::Tls(tls_params()?),
        };
        let credentials = if c.username.is_empty() {
            None
        } else {
            Some(Credentials::new(
                c.username.clone(),
                c.password.expose().to_owned(),
            ))
        };
        let id_domain = from.email.domain().to_owned();
        Ok(Smtp {
            host,
            port: c.port,
            security,
            credentials,
            hello: ClientId::default(),
            from,
            id_domain,
            timeout: Duration::from_millis(c.timeout_ms),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// Connects, reads the greeting, says EHLO, upgrades (STARTTLS) and authenticates, then
    /// quits: every setting that only the relay can judge is judged at start.
    pub async fn check(&self) -> Result<(), String> {
        let (host, port, ms) = (&self.host, self.port, self.ms());
        if matches!(self.security, Security::None) && self.credentials.is_some() {
            tracing::warn!(
                "email.tls = \"none\" with email.username set: the password travels unencrypted"
            );
        }
        match tokio::time::timeout(self.timeout, self.connect()).await {
            Err(_) => Err(format!(
                "email.host: {host}:{port} did not answer within {ms} ms (email.timeout_ms)"
            )),
            Ok(Err(e)) => Err(self.describe(&e)),
            Ok(Ok(mut conn)) => {
                let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
                Ok(())
            }
        }
    }

    /// One line naming the setting at fault, for start-up errors.
    fn describe(&self, e: &SmtpError) -> String {
        let (host, port) = (&self.host, self.port);
        if let Some(code) = e.status() {
            let code = u16::from(code);
            return match code {
                530 | 534 | 535 | 538 => {
                    format!("email.username: {host}:{port} refused the credentials (SMTP {code})")
                }
                _ => format!("email.host: {host}:{port} answered SMTP {code} while connecting"),
            };
        }
        if e.is_tls() {
            return format!("email.tls: TLS with {host}:{port} failed: {}", cause(e));
        }
        if e.is_client() {
            // lettre's own words, e.g. STARTTLS or AUTH not offered by the relay.
            return format!("email.tls / email.username: {host}:{port}: {}", cause(e));
        }
        if e.is_timeout() {
            return format!(
                "email.host: {host}:{port} did not answer within {} ms (email.timeout_ms)",
                self.ms()
            );
        }
        if e.is_response() {
            return format!("email.host: {host}:{port} does not speak SMTP as expected");
        }
        format!("email.host: cannot connect to {host}:{port}: {}", cause(e))
    }

    /// A new connection, ready for MAIL FROM.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let wrapper = match &self.security {
            Security::Tls(p) => Some(p.clone()),
            Security::None | Security::StartTls(_) => None,
        };
        // Plain and STARTTLS connections use a socket of our own with TCP_NODELAY: lettre
        // writes the message and its final "\r\n.\r\n" separately, and with Nagle's algorithm
        // the second write waits for the relay's delayed ACK (about 40 ms per message).
        let own_socket = match wrapper {
            None => tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .ok(),
            Some(_) => None,
        };
        let mut conn = match own_socket {
            Some(tcp) => {
                let _ = tcp.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?
            }
            // Implicit TLS, or a connection that failed: lettre connects (and, on failure,
            // says why in its own error type).
            None => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    wrapper,
                    None,
                )
                .await?
            }
        };
        if let Security::StartTls(p) = &self.security {
            conn.starttls(p.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(conn)
    }

    /// A kept connection that still answers NOOP, else a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let probe = self.timeout / 4;
        loop {
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain(|i| i.since.elapsed() < MAX_IDLE_AGE);
                idle.pop()
            };
            let Some(Idle { mut conn, .. }) = idle else {
                return self.connect().await;
            };
            if let Ok(true) = tokio::time::timeout(probe, conn.test_connected()).await {
                return Ok(conn);
            }
        }
    }

    fn keep(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    pub async fn send(&self, msg: &Message) -> Result<Receipt, DeliveryError> {
        let ms = self.ms();
        let (email, envelope, message_id) = self.build(msg)?;
        let attempt = async {
            // A failure to set up the connection is certain (no message went out); a failure
            // without an SMTP code once the transaction started may hide a delivered message.
            let mut conn = self.connection().await.map_err(|e| send_error(&e, ms))?;
            let response =
                conn.send(&envelope, &email)
                    .await
                    .map_err(|e| match send_error(&e, ms) {
                        DeliveryError::Refused { code: None, reason } => {
                            DeliveryError::Unclear(reason)
                        }
                        other => other,
                    })?;
            Ok::<_, DeliveryError>((conn, response))
        };
        // On timeout the attempt is dropped, and its connection closed with it.
        match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => Err(DeliveryError::Timeout(ms)),
            Ok(Err(e)) => Err(e),
            Ok(Ok((conn, response))) => {
                let code = u16::from(response.code());
                if code == 250 {
                    self.keep(conn);
                    Ok(Receipt {
                        provider_message_id: Some(message_id),
                    })
                } else {
                    Err(DeliveryError::Refused {
                        code: Some(code.to_string()),
                        reason: format!("relay answered {code} to the end of DATA"),
                    })
                }
            }
        }
    }

    /// The message as sent: headers Date, Message-ID, MIME-Version, From, To, Subject,
    /// Content-Type text/plain; charset=utf-8, Content-Transfer-Encoding base64 (see
    /// [`text_body`]).
    fn build(
        &self,
        msg: &Message,
    ) -> Result<(Zeroizing<Vec<u8>>, Envelope, String), DeliveryError> {
        let to: Address = msg.to.parse().map_err(|_| DeliveryError::Refused {
            code: None,
            reason: "the card's e-mail address cannot be used over SMTP".into(),
        })?;
        let message_id = format!(
            "<{}.{}@{}>",
            hex::encode(crate::data_keys::random_bytes::<12>()),
            time::OffsetDateTime::now_utc().unix_timestamp(),
            self.id_domain
        );
        let part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text_body(&msg.body));
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(msg.subject.clone().unwrap_or_default())
            .message_id(Some(message_id.clone()))
            .date_now()
            .singlepart(part)
            .map_err(|e| DeliveryError::Refused {
                code: None,
                reason: format!("cannot build the e-mail: {e}"),
            })?;
        let envelope = email.envelope().clone();
        Ok((Zeroizing::new(email.formatted()), envelope, message_id))
    }
}

/// The body in base64: whatever the text (any script, any line length, lines starting with a
/// dot), what the recipient decodes is the rendered text, line ends as CRLF, and nothing can
/// split or alter the OTP on the way (no quoted-printable soft line breaks, no line folding).
pub fn text_body(text: &str) -> Body {
    Body::new_with_encoding(text.to_owned(), ContentTransferEncoding::Base64)
        .unwrap_or_else(Body::new)
}

/// The innermost cause of a local failure (I/O, TLS, lettre's own checks).
fn cause(e: &SmtpError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

/// A failed send: the SMTP code when the relay answered one, else the local cause. Nothing the
/// relay wrote is kept.
fn send_error(e: &SmtpError, ms: u64) -> DeliveryError {
    if let Some(code) = e.status() {
        let code = u16::from(code);
        return DeliveryError::Refused {
            code: Some(code.to_string()),
            reason: format!("relay answered {code}"),
        };
    }
    if e.is_timeout() {
        return DeliveryError::Timeout(ms);
    }
    let reason = if e.is_response() {
        "the relay's answer is not SMTP".to_owned()
    } else if e.is_tls() {
        format!("TLS with the relay failed: {}", cause(e))
    } else if e.is_client() {
        format!("the relay cannot take this message: {}", cause(e))
    } else {
        format!("connection to the relay failed: {}", cause(e))
    };
    DeliveryError::Refused { code: None, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::domain::Channel;

    fn config() -> EmailConfig {
        EmailConfig {
            provider: crate::config::EmailProvider::Smtp,
            host: "127.0.0.1".into(),
            port: 2525,
            tls: SmtpTls::None,
            username: String::new(),
            password: Secret::default(),
            from: "Card Services <no-reply@bank.example>".into(),
            timeout_ms: 1000,
            name: "smtp".into(),
            breaker_failures: 5,
            breaker_open_seconds: 30,
            fallback: Vec::new(),
        }
    }

    fn message(body: &str) -> Message {
        Message {
            channel: Channel::Email,
            to: Zeroizing::new("jo@example.com".into()),
            subject: Some("Your code for Apple Pay".into()),
            body: Zeroizing::new(body.into()),
        }
    }

    fn decoded_body(raw: &str) -> (String, String) {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let cte = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Transfer-Encoding: "))
            .unwrap()
            .to_owned();
        let text = match cte.as_str() {
            "7bit" => body.to_owned(),
            "base64" => {
                use base64::Engine;
                let joined: String = body.split_whitespace().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(joined)
                        .unwrap(),
                )
                .unwrap()
            }
            other => panic!("unexpected encoding {other}"),
        };
        (cte, text)
    }

    #[test]
    fn the_body_is_never_quoted_printable_and_decodes_exactly() {
        let smtp = Smtp::new(&config()).unwrap();
        let long_ascii = format!("{}0042{}", "x".repeat(74), "y".repeat(200));
        for body in [
            "Your code is:\n\n0042\n".to_owned(),
            "Votre code : é-0042-ß\n.\n".to_owned(),
            long_ascii.clone(),
        ] {
            let (raw, envelope, id) = smtp.build(&message(&body)).unwrap();
            let raw = String::from_utf8(raw.to_vec()).unwrap();
            assert!(raw.is_ascii());
            for h in [
                "Date: ",
                "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8",
                "From: \"Card Services\" <no-reply@bank.example>",
                "To: jo@example.com",
                "Subject: Your code for Apple Pay",
            ] {
                assert!(raw.contains(h), "{h} missing from {raw}");
            }
            assert!(raw.contains(&format!("Message-ID: {id}")), "{raw}");
            assert!(id.ends_with("@bank.example>"));
            assert_eq!(envelope.to().len(), 1);
            let (cte, text) = decoded_body(&raw);
            assert_eq!(cte, "base64");
            assert_eq!(text.replace("\r\n", "\n"), body);
            assert!(raw.lines().all(|l| l.len() <= 78), "{raw}");
        }
    }

    #[test]
    fn settings_are_checked_with_their_names() {
        let mut c = config();
        c.from = "not a mailbox".into();
        assert!(Smtp::new(&c).err().unwrap().starts_with("email.from:"));
        let mut c = config();
        c.host = " ".into();
        assert!(Smtp::new(&c).err().unwrap().starts_with("email.host:"));
        let mut c = config();
        c.tls = SmtpTls::Starttls;
        assert!(Smtp::new(&c).is_ok());
    }

    #[tokio::test]
    async fn check_names_the_host_when_nothing_listens() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut c = config();
        c.port = port;
        let e = Smtp::new(&c).unwrap().check().await.unwrap_err();
        assert!(
            e.starts_with(&format!("email.host: cannot connect to 127.0.0.1:{port}")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn check_times_out_on_a_silent_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let mut c = config();
        c.port = port;
        c.timeout_ms = 300;
        let e = Smtp::new(&c).unwrap().check().await.unwrap_err();
        assert!(e.contains("did not answer within 300 ms"), "{e}");
        held.abort();
    }
}
