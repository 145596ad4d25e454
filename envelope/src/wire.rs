//! Wire text → envelope bytes.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::OpenError;

/// Largest envelope (binary BER/DER) accepted.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
/// Largest wire text accepted (hex doubles the size; leave room for whitespace).
pub const MAX_WIRE_TEXT_BYTES: usize = 3 * MAX_ENVELOPE_BYTES;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decode the textual form of an envelope into BER/DER bytes.
///
/// Accepted: base64 (standard alphabet, padded or not; URL-safe also
/// tolerated), hexadecimal (either case), or PEM armour (`-----BEGIN CMS-----`
/// or `PKCS7`); ASCII whitespace anywhere is ignored. A string made only of an
/// even number of hex digits is decoded as hex when the result starts with a
/// SEQUENCE tag (0x30); otherwise base64 is tried. (Base64 of DER always starts
/// with `M`, which is not a hex digit, so there is no real ambiguity.)
pub fn decode_wire(text: &str) -> Result<Vec<u8>, OpenError> {
    if text.len() > MAX_WIRE_TEXT_BYTES {
        return Err(OpenError::TooLarge);
    }
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN") {
        let block = pem::parse(trimmed).map_err(|_| OpenError::Encoding)?;
        return check(block.into_contents());
    }
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(OpenError::Encoding);
    }
    if compact.len() % 2 == 0 && compact.iter().all(u8::is_ascii_hexdigit) {
        if let Ok(bytes) = hex::decode(&compact) {
            if bytes.first() == Some(&0x30) {
                return check(bytes);
            }
        }
    }
    if let Ok(bytes) = STANDARD_LENIENT.decode(&compact) {
        return check(bytes);
    }
    if let Ok(bytes) = URL_SAFE_LENIENT.decode(&compact) {
        return check(bytes);
    }
    Err(OpenError::Encoding)
}

fn check(bytes: Vec<u8>) -> Result<Vec<u8>, OpenError> {
    if bytes.is_empty() {
        Err(OpenError::Encoding)
    } else if bytes.len() > MAX_ENVELOPE_BYTES {
        Err(OpenError::TooLarge)
    } else {
        Ok(bytes)
    }
}
