//! Arbitrary bytes as a recipient certificate (the simulator's and the demo's
//! `Recipient::from_certificate_pem/der`) and as the PEM documents of the key configuration
//! (`KeyRing::add_certificate_pem`, `KeyRing::add_private_key_pem`).
//!
//! Nothing may panic, and a certificate that is accepted holds an RSA key of 2048 to 8192 bits.
#![no_main]

use issuer_gateway::envelope::{KeyRing, Recipient};
use libfuzzer_sys::fuzz_target;

fn check(r: &Recipient) {
    assert!((2048..=8192).contains(&r.bits()), "{} bits", r.bits());
    assert!(!r.ski_hex().is_empty());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Recipient::from_certificate_der(data) {
        check(&r);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = Recipient::from_certificate_pem(text) {
            check(&r);
        }
        // No key in the ring: every CERTIFICATE block is parsed, none can be bound.
        assert!(KeyRing::new().add_certificate_pem(text).is_err());
        let mut ring = KeyRing::new();
        if let Ok(info) = ring.add_private_key_pem(text) {
            assert!((2048..=8192).contains(&info.bits), "{} bits", info.bits);
            assert_eq!(ring.len(), 1);
        }
    }
});
