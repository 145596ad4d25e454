//! Arbitrary bytes as a `cipheredCardInfo` / `tokenInfo` envelope, opened with a fixed key ring
//! (the public test key of `fuzz/keys/` and its certificate):
//! * as wire text (base64, hex or PEM) through `decode_wire` and `KeyRing::open`;
//! * as BER/DER bytes through `KeyRing::open_der`.
//!
//! Nothing may panic, and `KeyRing::open` must be exactly `decode_wire` then `open_der`.
#![no_main]

use issuer_gateway::envelope::{KeyRing, decode_wire};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const KEY_PEM: &str = include_str!("../keys/test-key.pem");
const CERT_PEM: &str = include_str!("../keys/test-cert.pem");

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut ring = KeyRing::new();
        ring.add_private_key_pem(KEY_PEM)
            .expect("the fuzz test key loads");
        ring.add_certificate_pem(CERT_PEM)
            .expect("the fuzz test certificate belongs to the fuzz test key");
        ring
    })
}

fuzz_target!(|data: &[u8]| {
    let ring = ring();
    if let Ok(text) = std::str::from_utf8(data) {
        let opened = ring.open(text);
        match decode_wire(text) {
            Err(e) => assert_eq!(opened.err(), Some(e)),
            Ok(der) => {
                assert!(!der.is_empty());
                // Opening is deterministic for a given input (a failed RSA step decrypts under a
                // random key, but its result is always discarded).
                assert_eq!(ring.open_der(&der).ok(), opened.ok());
            }
        }
    }
    let _ = ring.open_der(data);
});
