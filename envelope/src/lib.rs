//! PKCS#7 / CMS `EnvelopedData` (RFC 5652): open (gateway side) and seal
//! (simulator, demo and tests).
//!
//! * Content encryption: AES-256-CBC (AES-128/192-CBC also accepted when
//!   opening) with PKCS#7 padding.
//! * Key transport: RSAES-OAEP (SHA-256/MGF1-SHA-256, and the other matched
//!   SHA-1/384/512 pairs) or RSAES-PKCS1-v1_5, RSA 2048 to 8192 bits.
//! * Recipient named by issuerAndSerialNumber or subjectKeyIdentifier.
//! * DER or BER (indefinite lengths, constructed OCTET STRINGs as produced by
//!   `openssl cms -encrypt -stream`), with or without the ContentInfo wrapper.
//! * Wire text: base64 (padded or not, whitespace tolerated), hexadecimal, or
//!   PEM armour; see [`decode_wire`].
//!
//! Errors are small enums with fixed messages: no key material, content
//! encryption key or plaintext ever appears in a `Display`/`Debug` output.
//!
//! A crate of its own (the gateway's workspace member `issuer-gateway-envelope`): it imports
//! nothing of the gateway, so the gateway and its simulator share it and the compiler keeps it
//! that way.
//!
//! Why the BER reader (`ber`) is our own rather than RustCrypto's `der`/`cms`: those read DER
//! only, and TSH's and banks' tooling send BER: indefinite lengths and constructed OCTET STRINGs
//! (`openssl cms -encrypt -stream` writes both), which `der` rejects. The reader is small,
//! bounds-checked at every access, depth-limited, and fuzzed (`fuzz/`, docs/fuzzing.md).
//!
//! Security note for callers: AES-CBC content is malleable and unauthenticated.
//! Do not let an API client distinguish "envelope could not be opened" from
//! "opened but the plaintext was not valid JSON", or the combination becomes a
//! padding oracle.

mod ber;
mod der;
mod keys;
mod oids;
mod open;
mod seal;
mod wire;
mod x509;

#[cfg(test)]
mod tests;

// The module's public API; a binary may not use every item (e.g. `seal_hex`,
// `KeyRing::key_infos`), hence the allowances.
#[allow(unused_imports)]
pub use keys::{GeneratedKeyPair, KeyInfo, KeyRing, generate_key_pair};
#[allow(unused_imports)]
pub use seal::{KeyTransport, Recipient, RecipientIdKind, seal, seal_base64, seal_hex};
#[allow(unused_imports)]
pub use wire::{MAX_ENVELOPE_BYTES, MAX_WIRE_TEXT_BYTES, decode_wire};

/// Why an envelope could not be opened. Messages are fixed and secret-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The wire text is neither base64 nor hexadecimal (nor PEM).
    #[error("envelope is not valid base64 or hex")]
    Encoding,
    /// The envelope exceeds [`MAX_WIRE_TEXT_BYTES`] / [`MAX_ENVELOPE_BYTES`].
    #[error("envelope is too large")]
    TooLarge,
    /// The BER/DER structure is not a well-formed CMS EnvelopedData.
    #[error("envelope structure is malformed")]
    Malformed,
    /// Content type, content cipher or every key transport algorithm is unsupported.
    #[error("unsupported algorithm")]
    Unsupported,
    /// No configured key could recover the content-encryption key and decrypt
    /// the content (unknown recipient, wrong key, or tampered envelope).
    #[error("no configured key can open this envelope")]
    NoMatchingKey,
    /// The encrypted content is absent, empty or not a whole number of cipher
    /// blocks (truncated or corrupted), so no key can decrypt it.
    #[error("content decryption failed")]
    ContentDecryption,
}

/// Problems loading, parsing or generating keys and certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid PEM document")]
    Pem,
    #[error("no RSA private key found in the PEM document")]
    NoPrivateKey,
    #[error("encrypted private keys are not supported")]
    EncryptedKey,
    #[error("invalid or unsupported RSA private key (2048 to 8192 bits required)")]
    InvalidKey,
    #[error("certificate is malformed or does not hold an RSA key")]
    InvalidCertificate,
    #[error("no configured private key matches the certificate")]
    NoKeyForCertificate,
    #[error("unsupported key size (2048 or 4096 bits)")]
    UnsupportedKeySize,
    #[error("key generation failed")]
    Generation,
}

/// Problems sealing an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("plaintext is too large")]
    TooLarge,
    #[error("encryption failed")]
    Crypto,
}
