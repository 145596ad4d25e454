//! When the configured certificates expire: the TLS server's, the PKCS#7 ones, the TSH client
//! certificate and Thales's encryption certificate. The start-up log and `/health` warn
//! [`WARN_DAYS`] days before any of them expires.

use crate::config::Config;
use crate::domain::Millis;
use std::path::Path;

/// How many days ahead an expiry is warned about.
pub const WARN_DAYS: i64 = 30;

/// One certificate file of the configuration and when its first certificate expires.
#[derive(Debug, Clone)]
pub struct Expiry {
    pub setting: &'static str,
    pub not_after: Option<Millis>,
}

/// Every configured certificate file, with its expiry (`None`: unreadable).
pub fn configured(config: &Config) -> Vec<Expiry> {
    let mut files: Vec<(&'static str, &Path)> = Vec::new();
    if let Some(tls) = &config.server.tls {
        files.push(("server.tls.cert_chain", &tls.cert_chain));
    }
    if let Some(tls) = &config.admin.tls {
        files.push(("admin.tls.cert_chain", &tls.cert_chain));
    }
    if let Some(tls) = config.app.as_ref().and_then(|a| a.tls.as_ref()) {
        files.push(("app.tls.cert_chain", &tls.cert_chain));
    }
    for c in &config.keys.pkcs7_certificates {
        files.push(("keys.pkcs7_certificates", c));
    }
    if let Some(c) = &config.tsh.client_cert {
        files.push(("tsh.client_cert", c));
    }
    if let Some(c) = &config.tsh.encryption_cert {
        files.push(("tsh.encryption_cert", c));
    }
    files
        .into_iter()
        .map(|(setting, path)| Expiry {
            setting,
            not_after: std::fs::read(path).ok().and_then(|b| first_not_after(&b)),
        })
        .collect()
}

/// The expiries within [`WARN_DAYS`] of `now` (or past).
pub fn soon(list: &[Expiry], now: Millis) -> Vec<&Expiry> {
    list.iter()
        .filter(|e| {
            e.not_after
                .is_some_and(|t| t.0 - now.0 <= WARN_DAYS * 86_400_000)
        })
        .collect()
}

/// Logs a warning per certificate expiring soon.
pub fn warn_at_start(config: &Config, now: Millis) {
    let list = configured(config);
    for e in soon(&list, now) {
        let days = e.not_after.map(|t| (t.0 - now.0) / 86_400_000).unwrap_or(0);
        tracing::warn!(
            setting = e.setting,
            expires = %e.not_after.map(crate::clock::format_ms).unwrap_or_default(),
            days_left = days,
            "a configured certificate expires within {WARN_DAYS} days: renew it"
        );
    }
}

/// The notAfter of the first certificate of a PEM file.
fn first_not_after(pem_text: &[u8]) -> Option<Millis> {
    let block = pem::parse_many(pem_text)
        .ok()?
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")?;
    not_after(block.contents())
}

/// One DER element: (tag, contents, rest).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// Certificate -> tbsCertificate -> [version] serial sigAlg issuer validity -> notAfter.
fn not_after(der: &[u8]) -> Option<Millis> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = element(rest)?;
    if tag == 0xa0 {
        rest = r; // version
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serial, signature algorithm, issuer
    }
    let (_, validity, _) = element(rest)?;
    let (_, _, after) = element(validity)?; // notBefore
    let (tag, time, _) = element(after)?;
    let text = std::str::from_utf8(time).ok()?;
    let full = match tag {
        0x17 => {
            // UTCTime YYMMDDHHMMSSZ: 50..99 are 19xx.
            let yy: i32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 => text.to_owned(),
        _ => return None,
    };
    let fmt = time::macros::format_description!("[year][month][day][hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(&full, &fmt)
        .ok()?
        .assume_utc();
    Some(Millis(crate::clock::to_ms(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_of_a_generated_certificate() {
        let pair = crate::envelope::generate_key_pair(2048, "expiry test").unwrap();
        let after = first_not_after(pair.certificate_pem.as_bytes()).unwrap();
        let now = crate::clock::Clock::system().now_ms();
        assert!(after.0 > now.0, "a fresh certificate expires in the future");
        let list = [Expiry {
            setting: "tsh.client_cert",
            not_after: Some(after),
        }];
        assert!(soon(&list, now).is_empty());
        assert_eq!(soon(&list, Millis(after.0 - 86_400_000)).len(), 1);
        assert_eq!(first_not_after(b"not a certificate"), None);
    }

    /// The admin and app listeners' certificates are watched like the TSH-facing one's.
    #[test]
    fn lists_every_listener_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pair = crate::envelope::generate_key_pair(2048, "listener").unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, &pair.certificate_pem).unwrap();
        let file = dir.path().join("gateway.toml");
        let c = cert.display();
        std::fs::write(
            &file,
            format!(
                "[admin.tls]\ncert_chain = \"{c}\"\nprivate_key = \"{c}\"\n\
                 [app]\ntoken = \"0123456789abcdef0123\"\n\
                 [app.tls]\ncert_chain = \"{c}\"\nprivate_key = \"{c}\"\n"
            ),
        )
        .unwrap();
        let config = Config::load(Some(&file), Vec::new()).unwrap();
        let list = configured(&config);
        for setting in ["admin.tls.cert_chain", "app.tls.cert_chain"] {
            let e = list.iter().find(|e| e.setting == setting);
            assert!(
                e.is_some_and(|e| e.not_after.is_some()),
                "{setting} in {:?}",
                list.iter().map(|e| e.setting).collect::<Vec<_>>()
            );
        }
    }
}
