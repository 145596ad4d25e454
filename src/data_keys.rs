//! The issuer's data keys, derived from the pan-index key file:
//! - the PAN index: HMAC-SHA256 with the key itself (what the operator spec calls the pan-index key);
//! - contact sealing: AES-256-GCM with a key derived by HKDF, so phone numbers and e-mail addresses
//!   are never in the database in clear;
//! - fingerprints: HMAC-SHA256 with another derived key, for destination hashes (rate limits),
//!   send-retry fingerprints (never the OTP itself) and opaque ID&V method ids.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// Why the pan-index key file is unusable. Never carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: must hold at least 32 random bytes as hex or base64 (see 'issuer-gateway keys generate')"
    )]
    Format { path: String },
    #[error("{path}: readable by other users (mode {mode:o}); run: chmod 600 {path}")]
    Permissions { path: String, mode: u32 },
}

pub struct DataKeys {
    pan_index: hmac::Key,
    fingerprint: hmac::Key,
    contact: LessSafeKey,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKeys([redacted])")
    }
}

/// A value sealed with the contact key: base64 of nonce, ciphertext and tag.
pub type Sealed = String;

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("stored contact detail cannot be opened with the configured pan-index key")]
pub struct UnsealError;

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl DataKeys {
    /// Reads the key file (hex or base64 of at least 32 bytes). On Unix, a file readable by
    /// group or others is refused.
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        check_private_file(path).map_err(|e| match e {
            PermError::Io(source) => KeyFileError::Read {
                path: shown.clone(),
                source,
            },
            PermError::Mode(mode) => KeyFileError::Permissions {
                path: shown.clone(),
                mode,
            },
        })?;
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
                    path: shown.clone(),
                    source,
                })?,
            );
        let bytes = decode_key_text(text.trim()).ok_or(KeyFileError::Format {
            path: shown.clone(),
        })?;
        Self::from_bytes(&bytes).ok_or(KeyFileError::Format { path: shown })
    }

    /// Builds the keys from secret material (at least 32 bytes).
    pub fn from_bytes(secret: &[u8]) -> Option<Self> {
        if secret.len() < 32 {
            return None;
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"issuer-gateway data keys v1");
        let prk = salt.extract(secret);
        let derive = |info: &'static [u8]| -> Option<Zeroizing<Vec<u8>>> {
            let mut out = Zeroizing::new(vec![0u8; 32]);
            prk.expand(&[info], Len(32)).ok()?.fill(&mut out).ok()?;
            Some(out)
        };
        let contact = derive(b"contact sealing")?;
        let fingerprint = derive(b"fingerprints")?;
        Some(DataKeys {
            pan_index: hmac::Key::new(hmac::HMAC_SHA256, secret),
            fingerprint: hmac::Key::new(hmac::HMAC_SHA256, &fingerprint),
            contact: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &contact).ok()?),
        })
    }

    /// The keyed index of a PAN (hex HMAC-SHA256), the only form of the PAN the database holds.
    pub fn pan_index(&self, pan: &crate::domain::Pan) -> String {
        hex::encode(hmac::sign(&self.pan_index, pan.expose_digits().as_bytes()))
    }

    /// A keyed fingerprint of labelled parts (hex), e.g. a destination or a send's retry key.
    pub fn fingerprint(&self, label: &str, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.fingerprint);
        ctx.update(label.as_bytes());
        for p in parts {
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        hex::encode(ctx.sign())
    }

    /// An identifier TSH sent (a correlation id, a virtual card id...) in the form that may be
    /// stored and logged: each run of digits (spaces or dashes between them allowed) holding a
    /// Luhn-valid window of 12 to 19 digits (a PAN where an identifier belongs, alone or glued
    /// to other digits) is replaced, whole, by a keyed fingerprint of it, `pan#` and 16 hex
    /// digits. The same input always gives the same output, so calls of one enrolment still
    /// link and the admin API finds them; anything else is unchanged.
    pub fn safe_identifier(&self, id: &str) -> String {
        crate::domain::pan::replace_runs(id, |run, text| {
            run.may_hold_pan().then(|| {
                let fp = self.fingerprint("identifier-pan", &[text.as_bytes()]);
                format!("pan#{}", fp.get(..16).unwrap_or(&fp))
            })
        })
    }

    /// Seals a contact detail of one card: `context` (e.g. "phone") and `card_key` (the card's
    /// PAN index, its row's unique key, which never changes) are bound as associated data, so
    /// the sealed value opens only as that detail of that card: a database writer who moves it
    /// to another card's row gets nothing. The form is `v2:` and base64 of nonce, ciphertext
    /// and tag.
    pub fn seal_for_card(&self, context: &str, card_key: &str, plaintext: &str) -> Sealed {
        format!(
            "{CARD_BOUND}{}",
            self.seal_with(&card_aad(context, card_key), plaintext)
        )
    }

    /// Opens what [`DataKeys::seal_for_card`] sealed for this card; anything else (another
    /// card's, another context's, the unbound form of earlier releases) is refused.
    pub fn unseal_for_card(
        &self,
        context: &str,
        card_key: &str,
        sealed: &str,
    ) -> Result<Zeroizing<String>, UnsealError> {
        let body = sealed.strip_prefix(CARD_BOUND).ok_or(UnsealError)?;
        self.unseal_with(&card_aad(context, card_key), body)
    }

    /// True for the card-bound form (what [`DataKeys::seal_for_card`] writes).
    pub fn is_card_bound(sealed: &str) -> bool {
        sealed.starts_with(CARD_BOUND)
    }

    /// The form of releases before contact details were bound to their card (associated data:
    /// the context alone). Only the start-up re-seal reads it, and its tests write it.
    pub fn seal_unbound(&self, context: &str, plaintext: &str) -> Sealed {
        self.seal_with(context.as_bytes(), plaintext)
    }

    /// Opens the unbound form of earlier releases (see [`DataKeys::seal_unbound`]).
    pub fn unseal_unbound(
        &self,
        context: &str,
        sealed: &str,
    ) -> Result<Zeroizing<String>, UnsealError> {
        if Self::is_card_bound(sealed) {
            return Err(UnsealError);
        }
        self.unseal_with(context.as_bytes(), sealed)
    }

    fn seal_with(&self, aad: &[u8], plaintext: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        if rand::fill(&mut nonce).is_err() {
            // The system RNG failing is not recoverable; a fixed nonce must never be used.
            std::process::abort();
        }
        let mut buf = Zeroizing::new(plaintext.as_bytes().to_vec());
        let sealed = self.contact.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut *buf,
        );
        if sealed.is_err() {
            std::process::abort();
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        B64.encode(out)
    }

    fn unseal_with(&self, aad: &[u8], sealed: &str) -> Result<Zeroizing<String>, UnsealError> {
        let raw = B64.decode(sealed).map_err(|_| UnsealError)?;
        if raw.len() < NONCE_LEN {
            return Err(UnsealError);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| UnsealError)?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain = self
            .contact
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| UnsealError)?;
        let s = std::str::from_utf8(plain).map_err(|_| UnsealError)?;
        Ok(Zeroizing::new(s.to_owned()))
    }
}

/// The prefix of the card-bound sealed form.
const CARD_BOUND: &str = "v2:";

/// The associated data of a card's contact detail: its kind and the card, unambiguously
/// separated (a PAN index is hex).
fn card_aad(context: &str, card_key: &str) -> Vec<u8> {
    format!("issuer-gateway contact v2\0{context}\0{card_key}").into_bytes()
}

/// Fresh random bytes from the system RNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if rand::fill(&mut out).is_err() {
        std::process::abort();
    }
    out
}

/// A new pan-index key as written by `keys generate`: 32 random bytes, hex.
pub fn new_key_text() -> Zeroizing<String> {
    let bytes = Zeroizing::new(random_bytes::<32>());
    Zeroizing::new(format!("{}\n", hex::encode(*bytes)))
}

fn decode_key_text(t: &str) -> Option<Zeroizing<Vec<u8>>> {
    if t.len() % 2 == 0 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(t).ok().map(Zeroizing::new);
    }
    B64.decode(t).ok().map(Zeroizing::new)
}

pub enum PermError {
    Io(std::io::Error),
    Mode(u32),
}

/// Refuses a secret file that group or others can read (Unix).
pub fn check_private_file(path: &Path) -> Result<(), PermError> {
    let meta = std::fs::metadata(path).map_err(PermError::Io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PermError::Mode(mode));
        }
    }
    let _ = meta;
    Ok(())
}

/// Writes a secret file readable by its owner only, refusing to overwrite.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_context_binding() {
        let k = DataKeys::from_bytes(&[7u8; 32]).unwrap();
        let s = k.seal_for_card("phone", "card-a", "+447700900123");
        assert!(!s.contains("447700900123"));
        assert_eq!(
            k.unseal_for_card("phone", "card-a", &s).unwrap().as_str(),
            "+447700900123"
        );
        assert!(k.unseal_for_card("email", "card-a", &s).is_err());
        // Bound to its card: moved to another card's row, it does not open.
        assert!(k.unseal_for_card("phone", "card-b", &s).is_err());
        let other = DataKeys::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.unseal_for_card("phone", "card-a", &s).is_err());
        assert_ne!(
            k.seal_for_card("phone", "card-a", "x"),
            k.seal_for_card("phone", "card-a", "x"),
            "nonce must be fresh"
        );
        // The unbound form of earlier releases opens only through the re-seal's door.
        let old = k.seal_unbound("phone", "+447700900123");
        assert!(k.unseal_for_card("phone", "card-a", &old).is_err());
        assert_eq!(
            k.unseal_unbound("phone", &old).unwrap().as_str(),
            "+447700900123"
        );
        assert!(k.unseal_unbound("phone", &s).is_err());
    }

    #[test]
    fn identifiers_never_carry_a_pan() {
        let k = DataKeys::from_bytes(&[3u8; 32]).unwrap();
        let safe = k.safe_identifier("enrol-4111111111111111-x7");
        assert!(!safe.contains("4111111111111111"), "{safe}");
        assert!(
            safe.starts_with("enrol-pan#") && safe.ends_with("-x7"),
            "{safe}"
        );
        assert_eq!(
            safe,
            k.safe_identifier("enrol-4111111111111111-x7"),
            "stable, so calls still link"
        );
        // No Luhn-valid window of 12 to 19 digits (too short): unchanged.
        assert_eq!(k.safe_identifier("41111111111"), "41111111111");
        assert_eq!(k.safe_identifier("c-20261128-x"), "c-20261128-x");
        // Glued to other digits, or broken by spaces or dashes: still replaced.
        for id in [
            "c-14111111111111111",
            "c-41111111111111119",
            "tok 4111 1111 1111 1111 x",
            "4111-1111-1111-1111",
        ] {
            let safe = k.safe_identifier(id);
            assert!(!crate::domain::contains_pan_like(&safe), "{id}: {safe}");
            assert!(safe.contains("pan#"), "{id}: {safe}");
            assert_eq!(safe, k.safe_identifier(id), "stable");
        }
    }

    #[test]
    fn pan_index_is_keyed_and_stable() {
        let pan = crate::domain::Pan::parse("4111111111111111").unwrap();
        let a = DataKeys::from_bytes(&[1u8; 32]).unwrap();
        let b = DataKeys::from_bytes(&[2u8; 32]).unwrap();
        assert_eq!(a.pan_index(&pan), a.pan_index(&pan));
        assert_ne!(a.pan_index(&pan), b.pan_index(&pan));
        assert!(!a.pan_index(&pan).contains("4111111111111111"));
        assert!(DataKeys::from_bytes(&[1u8; 16]).is_none());
    }

    #[test]
    fn key_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pan-index.key");
        write_private_file(&p, new_key_text().as_bytes()).unwrap();
        assert!(DataKeys::from_file(&p).is_ok());
        assert!(
            write_private_file(&p, b"again").is_err(),
            "must not overwrite"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = DataKeys::from_file(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
