//! Standard Webhooks signatures: `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`,
//! keyed with the secret's decoded bytes; during a rotation one signature per secret, separated
//! by spaces, in one `webhook-signature` header.

use crate::config::SigningKey;
use base64::Engine;

/// The `webhook-signature` header for one message, signed with every key.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .map(|k| sign(k.bytes(), id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One signature, `v1,<base64>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let content = format!("{id}.{timestamp}.{body}");
    let tag = aws_lc_rs::hmac::sign(&key, content.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries: this secret,
    /// id, timestamp and body sign to this value.
    #[test]
    fn matches_the_reference_signature() {
        let key = crate::config::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
