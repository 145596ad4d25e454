//! Arbitrary bytes as a card file (`card_file::parse`), and every line it accepts turned into its
//! stored form (`CardLine::to_new_card`).
//!
//! Nothing may panic; no reason given for a refused line holds a run of 12 or more digits (a
//! PAN); sealed contact details open to what was sealed.
#![no_main]

use issuer_gateway::card_file;
use issuer_gateway::data_keys::DataKeys;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static DataKeys {
    static KEYS: OnceLock<DataKeys> = OnceLock::new();
    KEYS.get_or_init(|| DataKeys::from_bytes(&[0x5a; 32]).expect("32 bytes make data keys"))
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = card_file::parse(data) else {
        return;
    };
    let mut last_line = 0;
    for (line, parsed) in &file.lines {
        assert!(*line >= last_line, "line numbers go forward");
        last_line = *line;
        match parsed {
            Err(reason) => assert!(
                longest_digit_run(reason) < 12,
                "a refusal quotes a PAN-like number: {reason}"
            ),
            Ok(card) => {
                let keys = keys();
                let stored = card.to_new_card(keys);
                assert_eq!(stored.last4, card.pan.last4());
                assert_eq!(stored.exp, card.exp.mmyy());
                if let (Some(phone), Some(sealed)) = (&card.phone, &stored.phone_sealed) {
                    let opened = keys
                        .unseal_for_card("phone", &stored.pan_index, sealed)
                        .expect("a sealed phone opens");
                    assert_eq!(opened.as_str(), phone.expose());
                }
                if let (Some(email), Some(sealed)) = (&card.email, &stored.email_sealed) {
                    let opened = keys
                        .unseal_for_card("email", &stored.pan_index, sealed)
                        .expect("a sealed e-mail opens");
                    assert_eq!(opened.as_str(), email.expose());
                }
            }
        }
    }
});
