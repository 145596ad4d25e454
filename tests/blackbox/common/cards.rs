//! The test cards: each one a case of the policy (active, blocked, expired, with or without
//! contact details, never imported), the card file that holds them, and the sensitive values
//! they carry, which no log, answer or database may show.

use std::path::{Path, PathBuf};

/// A test card, as in the card file the harness imports.
#[derive(Debug, Clone, Copy)]
pub struct TestCard {
    pub pan: &'static str,
    pub exp: &'static str,
    pub phone: Option<&'static str>,
    pub email: Option<&'static str>,
}

/// Active, phone and e-mail on file.
pub const ALICE: TestCard = TestCard {
    pan: "4111111111111111",
    exp: "1229",
    phone: Some("+447700900123"),
    email: Some("alice.martin@example.com"),
};
/// Active, phone and e-mail, enabled for Apple Pay and Google Pay only.
pub const BOB: TestCard = TestCard {
    pan: "5555555555554444",
    exp: "0630",
    phone: Some("+447700900456"),
    email: Some("bob.b@example.org"),
};
/// Active, e-mail only.
pub const CLAIRE: TestCard = TestCard {
    pan: "4000056655665556",
    exp: "0331",
    phone: None,
    email: Some("claire.dubois@example.fr"),
};
/// Blocked.
pub const DAN: TestCard = TestCard {
    pan: "4242424242424242",
    exp: "1229",
    phone: Some("+447700900789"),
    email: Some("dan@example.com"),
};
/// Expired on record (January 2025).
pub const ERIN: TestCard = TestCard {
    pan: "5200828282828210",
    exp: "0125",
    phone: Some("+447700900321"),
    email: Some("erin@example.com"),
};
/// Active, no contact details.
pub const FRANK: TestCard = TestCard {
    pan: "378282246310005",
    exp: "0930",
    phone: None,
    email: None,
};
/// Valid PAN never imported.
pub const UNKNOWN: TestCard = TestCard {
    pan: "6011111111111117",
    exp: "1229",
    phone: None,
    email: None,
};

/// The card file of the cards above (all but UNKNOWN), as an operator's `cards import` reads it.
pub const CARD_FILE: &str = "pan,exp,status,product_id,phone,email,language,wallets\n\
4111111111111111,1229,active,VISA_PLATINUM,+447700900123,alice.martin@example.com,en,\n\
5555555555554444,0630,active,MC_WORLD,+447700900456,bob.b@example.org,en,APPLE_PAY;GOOGLE_PAY\n\
4000056655665556,0331,active,VISA_CLASSIC,,claire.dubois@example.fr,fr,\n\
4242424242424242,1229,blocked,VISA_CLASSIC,+447700900789,dan@example.com,en,\n\
5200828282828210,0125,active,MC_STANDARD,+447700900321,erin@example.com,en,\n\
378282246310005,0930,active,AMEX_GOLD,,,en,\n";

/// Every sensitive value the harness's cards hold, for log and answer checks.
pub fn sensitive_values() -> Vec<&'static str> {
    let mut v = Vec::new();
    for c in [ALICE, BOB, CLAIRE, DAN, ERIN, FRANK, UNKNOWN] {
        v.push(c.pan);
        v.extend(c.phone.map(|p| p.trim_start_matches('+')));
        v.extend(c.email);
    }
    v
}

/// Writes `csv` as a card file of its own in `dir` (a new name each time, so imports of one
/// fixture never overwrite each other) and returns its path.
pub fn write_card_file(dir: &Path, csv: &str) -> PathBuf {
    let file = dir.join(format!(
        "cards-{}.csv",
        hex::encode(issuer_gateway::data_keys::random_bytes::<4>())
    ));
    std::fs::write(&file, csv).expect("write card file");
    file
}
