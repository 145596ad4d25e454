//! The console's secrets: Argon2id password hashes (at most two computed at once), the password
//! policy, TOTP codes (RFC 6238 over RFC 4226: HMAC-SHA-1, 6 digits, 30-second steps, one step
//! either side accepted), and random session tokens, stored as their SHA-256 digests, with the
//! CSRF token of a session derived from its token (so neither is stored in clear).

use aws_lc_rs::{constant_time, digest, hmac};
use std::sync::LazyLock;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Password hashes computed at once, process-wide: a flood of logins waits here instead of
/// taking the cores (and the memory) that the TSH-facing calls need.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));

/// The shipped list of common passwords (one a line, lower case).
const COMMON: &str = include_str!("common_passwords.txt");

/// The roles, from the least to the most allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Agent,
    Supervisor,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator's name: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        // Never a card number where a name belongs: no run of more than 6 digits.
        && name
            .split(|c: char| !c.is_ascii_digit())
            .all(|run| run.len() <= 6)
}

/// Why a password is refused (never quoting it).
pub fn password_problem(name: &str, password: &str) -> Option<&'static str> {
    let lower = password.to_lowercase();
    if password.chars().count() < 12 {
        return Some("the password must have at least 12 characters");
    }
    if password.chars().count() > 128 {
        return Some("the password must have at most 128 characters");
    }
    if lower.contains(&name.to_lowercase()) {
        return Some("the password must not contain the operator's name");
    }
    if is_common(&lower) {
        return Some("the password is in the list of common passwords");
    }
    None
}

/// In the shipped list, as it is or once the digits and symbols around a word are taken off
/// ("Password123!" is "password").
fn is_common(lower: &str) -> bool {
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    let distinct = lower
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    distinct < 4
        || COMMON
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .any(|l| l == lower || (!core.is_empty() && l == core))
}

/// A generated one-time password: 20 characters from an alphabet without look-alikes.
pub fn one_time_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = crate::data_keys::random_bytes::<20>();
    Zeroizing::new(
        bytes
            .iter()
            .filter_map(|b| ALPHABET.get(usize::from(*b) % ALPHABET.len()).copied())
            .map(char::from)
            .collect(),
    )
}

fn argon2() -> argon2::Argon2<'static> {
    // OWASP's first choice for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// The Argon2id hash (PHC string) of a password, computed off the async threads, at most two at
/// once.
pub async fn hash_password(password: &str) -> Result<String, String> {
    let _permit = HASHING.acquire().await.map_err(|_| "hashing stopped")?;
    let password = Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt_bytes = crate::data_keys::random_bytes::<16>();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "hashing task failed".to_owned())?
}

/// Whether the password matches the hash (Argon2id, at most two at once). A hash that cannot be
/// read matches nothing.
pub async fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    let password = Zeroizing::new(password.to_owned());
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash)
            .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash to verify against when the operator does not exist, so that an unknown name costs
/// as much time as a wrong password.
pub static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&[7u8; 16]).ok();
    salt.and_then(|s| {
        argon2()
            .hash_password(b"no such operator, no such password", &s)
            .ok()
            .map(|h| h.to_string())
    })
    .unwrap_or_default()
});

// ---- TOTP ----

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        buffer = (buffer << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let i = ((buffer >> bits) & 31) as usize;
            out.extend(BASE32.get(i).map(|c| char::from(*c)));
        }
    }
    if bits > 0 {
        let i = ((buffer << (5 - bits)) & 31) as usize;
        out.extend(BASE32.get(i).map(|c| char::from(*c)));
    }
    out
}

/// Decodes RFC 4648 base32 (no padding, case-insensitive); `None` on another character.
pub fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.trim_end_matches('=').chars() {
        let v = BASE32
            .iter()
            .position(|b| char::from(*b) == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A new TOTP secret: 20 random bytes, base32.
pub fn new_totp_secret() -> Zeroizing<String> {
    Zeroizing::new(base32(&crate::data_keys::random_bytes::<20>()))
}

/// The `otpauth://` URI an authenticator app reads (shown once, by `operators add`).
pub fn otpauth_uri(issuer: &str, name: &str, secret: &str) -> Zeroizing<String> {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(name),
        enc(issuer)
    ))
}

/// The 6-digit code of one 30-second step (RFC 4226 dynamic truncation).
pub fn totp_code(secret: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
    let word = mac
        .get(offset..offset + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, u32::from_be_bytes);
    (word & 0x7fff_ffff) % 1_000_000
}

/// The step a code matches, at `now_ms` give or take one step; `None` when none does.
pub fn totp_check(secret: &[u8], code: &str, now_ms: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = now_ms.div_euclid(30_000);
    let mut found = None;
    for s in [step - 1, step, step + 1] {
        let expected = format!("{:06}", totp_code(secret, s));
        if constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok() {
            found = Some(s);
        }
    }
    found
}

// ---- session and CSRF tokens ----

/// A new session token (32 random bytes, hex): given to the browser once, stored as its digest.
pub fn new_session_token() -> Zeroizing<String> {
    Zeroizing::new(hex::encode(crate::data_keys::random_bytes::<32>()))
}

/// The digest under which a session token is stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The CSRF token of a session: an HMAC of a label under the session token, which only the
/// holder of the session cookie (and the gateway, while it is presented) can compute.
pub fn csrf_token(session_token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    hex::encode(hmac::sign(&key, b"issuer-gateway console csrf"))
}

/// Whether a form's CSRF token is the session's.
pub fn csrf_matches(session_token: &str, given: &str) -> bool {
    constant_time::verify_slices_are_equal(csrf_token(session_token).as_bytes(), given.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1, key "12345678901234567890", 8 digits there: the last 6.
        let key = b"12345678901234567890";
        assert_eq!(totp_code(key, 59 / 30), 287_082);
        assert_eq!(totp_code(key, 1_111_111_109 / 30), 81_804);
        assert_eq!(totp_code(key, 1_234_567_890 / 30), 5_924);
        assert_eq!(totp_code(key, 2_000_000_000 / 30), 279_037);
        let now = 1_111_111_109_000;
        assert_eq!(totp_check(key, "081804", now), Some(1_111_111_109 / 30));
        assert_eq!(
            totp_check(key, "081804", now + 30_000),
            Some(1_111_111_109 / 30)
        );
        assert_eq!(totp_check(key, "081804", now + 61_000), None);
        assert_eq!(totp_check(key, "81804", now), None);
        assert_eq!(totp_check(key, "08180a", now), None);
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(unbase32("MZXW6YTBOI").unwrap(), b"foobar");
        let s = new_totp_secret();
        assert_eq!(unbase32(&s).unwrap().len(), 20);
        assert!(unbase32("MZ1W").is_none());
    }

    #[test]
    fn password_policy() {
        assert!(password_problem("alice", "short").is_some());
        assert!(password_problem("alice", "alice-is-here-2024").is_some());
        assert!(password_problem("bob", "Password1234!").is_some());
        assert!(password_problem("bob", "qwertyuiop12").is_some());
        assert!(password_problem("bob", "aaaaaaaaaaaaaaaa").is_some());
        assert!(password_problem("bob", "correct horse battery staple").is_none());
    }

    #[test]
    fn csrf_is_bound_to_the_session() {
        let a = new_session_token();
        let b = new_session_token();
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&b, &csrf_token(&a)));
        assert!(!csrf_matches(&a, ""));
    }

    #[tokio::test]
    async fn hashes_verify() {
        let h = hash_password("correct horse battery staple").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery staple", &h).await);
        assert!(!verify_password("correct horse battery stapl", &h).await);
        assert!(!verify_password("x", "not a hash").await);
    }
}
