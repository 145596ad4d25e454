//! The card file (CSV) and its import: the issuer's card registry feed.
//! Errors name the line and the column, never the PAN.

use crate::config::Config;
use crate::data_keys::DataKeys;
use crate::domain::{
    CardStatus, Email, Expiry, Millis, Pan, Phone, ProductId, card::valid_card_ref,
};
use crate::fpan_details::FpanSealer;
use crate::store::{ContactUpdate, NewCard, Store, StoreError, UpdateCardSeal, Upserted};
use anyhow::Context;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// One valid line of the card file.
#[derive(Debug, Clone)]
pub struct CardLine {
    pub pan: Pan,
    pub exp: Expiry,
    pub status: CardStatus,
    pub product_id: ProductId,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub language: Option<String>,
    pub card_ref: Option<String>,
    pub wallets: Vec<String>,
    pub phone_changed_at: Option<Millis>,
    pub email_changed_at: Option<Millis>,
    /// Columns the file does not have: a re-import leaves those values as stored.
    pub keep: crate::store::Keep,
    /// The card number this card replaces (column `replaces_pan`).
    pub replaces_pan: Option<Pan>,
}

const REQUIRED: [&str; 4] = ["pan", "exp", "status", "product_id"];
const KNOWN: [&str; 12] = [
    "pan",
    "exp",
    "status",
    "product_id",
    "phone",
    "email",
    "language",
    "issuer_card_ref_id",
    "wallets",
    "phone_changed_at",
    "email_changed_at",
    "replaces_pan",
];

/// A file-level problem (no usable header).
#[derive(Debug, thiserror::Error)]
pub enum CardFileError {
    #[error(
        "line 1: the header is missing column(s): {0} (required: pan, exp, status, product_id)"
    )]
    MissingColumns(String),
    #[error("line 1: the header cannot be read: {0}")]
    Header(String),
    #[error("line 1: column '{0}' appears twice")]
    DuplicateColumn(String),
}

/// Parses a card file: the header, then each line as a card or a reason (with its line number).
/// Unknown columns are reported in `ignored_columns` and otherwise ignored.
pub struct CardFile {
    pub lines: Vec<(u64, Result<CardLine, String>)>,
    pub ignored_columns: Vec<String>,
}

pub fn parse(input: impl Read) -> Result<CardFile, CardFileError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| CardFileError::Header(csv_reason(&e)))?
        .clone();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut ignored = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let name = h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
        if index.insert(name.clone(), i).is_some() {
            return Err(CardFileError::DuplicateColumn(name));
        }
        if !KNOWN.contains(&name.as_str()) {
            ignored.push(name);
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| !index.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return Err(CardFileError::MissingColumns(missing.join(", ")));
    }
    let keep = crate::store::Keep {
        phone: !index.contains_key("phone"),
        email: !index.contains_key("email"),
        language: !index.contains_key("language"),
        wallets: !index.contains_key("wallets"),
    };
    let mut lines = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line_no = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(line_no);
                if record.iter().all(str::is_empty) {
                    continue;
                }
                if record.len() != headers.len() {
                    lines.push((
                        line,
                        Err(format!(
                            "has {} fields, the header has {}",
                            record.len(),
                            headers.len()
                        )),
                    ));
                    continue;
                }
                lines.push((
                    line,
                    parse_line(&Line {
                        index: &index,
                        record: &record,
                    })
                    .map(|mut c| {
                        c.keep = keep;
                        c
                    }),
                ));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line_no);
                lines.push((line, Err(csv_reason(&e))));
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    break;
                }
            }
        }
    }
    Ok(CardFile {
        lines,
        ignored_columns: ignored,
    })
}

/// A csv error as a reason that never quotes the data.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".into(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Io(err) => format!("cannot be read: {}", err.kind()),
        _ => "is not valid CSV".into(),
    }
}

struct Line<'a> {
    index: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl<'a> Line<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.index
            .get(name)
            .and_then(|i| self.record.get(*i))
            .filter(|s| !s.is_empty())
    }
}

fn parse_line(l: &Line<'_>) -> Result<CardLine, String> {
    let get = |name: &str| l.get(name);
    let pan = Pan::parse(get("pan").ok_or("pan is empty")?).map_err(|e| format!("pan: {e}"))?;
    let exp =
        Expiry::parse_mmyy(get("exp").ok_or("exp is empty")?).map_err(|e| format!("exp: {e}"))?;
    let status_text = get("status").ok_or("status is empty")?;
    let status = CardStatus::parse(status_text).ok_or_else(|| {
        format!(
            "status: '{}' is not one of active, blocked, lost, stolen, closed",
            safe(status_text)
        )
    })?;
    let product_id = ProductId::parse(get("product_id").ok_or("product_id is empty")?)
        .ok_or("product_id: must be 1 to 64 printable characters without spaces")?;
    let phone = get("phone")
        .map(Phone::parse)
        .transpose()
        .map_err(|e| format!("phone: {e}"))?;
    let email = get("email")
        .map(Email::parse)
        .transpose()
        .map_err(|e| format!("email: {e}"))?;
    let language = match get("language") {
        None => None,
        Some(l) => match crate::domain::Language::parse(l) {
            Some(language) => Some(language.to_string()),
            None => {
                return Err(format!(
                    "language: '{}' is not a language code such as en or fr",
                    safe(l)
                ));
            }
        },
    };
    let card_ref = match get("issuer_card_ref_id") {
        None => None,
        Some(r) if crate::domain::pan::contains_pan_like(r) => {
            return Err("issuer_card_ref_id: must not contain a card number".into());
        }
        Some(r) if valid_card_ref(r) => Some(r.to_owned()),
        Some(_) => {
            return Err(
                "issuer_card_ref_id: must be 1 to 48 printable characters without spaces".into(),
            );
        }
    };
    let wallets: Vec<String> = get("wallets")
        .map(|w| {
            w.split(';')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if wallets
        .iter()
        .any(|w| w.len() > 128 || !w.chars().all(|c| c.is_ascii_graphic()))
    {
        return Err("wallets: each wallet id must be 1 to 128 printable characters".into());
    }
    let time = |name: &str| -> Result<Option<i64>, String> {
        match get(name) {
            None => Ok(None),
            Some(t) => {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map(|d| Some(crate::clock::to_ms(d)))
                    .map_err(|_| {
                        format!("{name}: must be an RFC 3339 time such as 2026-01-31T09:00:00Z")
                    })
            }
        }
    };
    let replaces_pan = match get("replaces_pan") {
        None => None,
        Some(p) => {
            let old = Pan::parse(p).map_err(|e| format!("replaces_pan: {e}"))?;
            if old.expose_digits() == pan.expose_digits() {
                return Err("replaces_pan: is the card's own number".into());
            }
            Some(old)
        }
    };
    Ok(CardLine {
        replaces_pan,
        pan,
        exp,
        status,
        product_id,
        phone,
        email,
        language,
        card_ref,
        wallets,
        phone_changed_at: time("phone_changed_at")?.map(Millis),
        email_changed_at: time("email_changed_at")?.map(Millis),
        keep: crate::store::Keep::default(),
    })
}

/// A value quoted in an error, cut short and stripped of digits runs that could be a PAN.
fn safe(s: &str) -> String {
    let cut: String = s.chars().take(24).collect();
    crate::domain::log_safe(&cut)
}

impl CardLine {
    /// The stored form: keyed PAN index, BIN, last 4, sealed and masked contact details.
    pub fn to_new_card(&self, keys: &DataKeys) -> NewCard {
        let pan_index = keys.pan_index(&self.pan);
        let phone = self
            .phone
            .as_ref()
            .map(|p| sealed_phone(keys, &pan_index, p));
        let email = self
            .email
            .as_ref()
            .map(|e| sealed_email(keys, &pan_index, e));
        NewCard {
            card_ref: self.card_ref.clone(),
            pan_index,
            bin: self.pan.bin(),
            last4: self.pan.last4(),
            exp: self.exp.mmyy(),
            status: self.status,
            product_id: self.product_id.as_str().to_owned(),
            phone_sealed: phone.as_ref().map(|c| c.sealed.clone()),
            phone_masked: phone.as_ref().map(|c| c.masked.clone()),
            phone_fp: phone.map(|c| c.fp),
            phone_changed_at: self.phone_changed_at,
            email_sealed: email.as_ref().map(|c| c.sealed.clone()),
            email_masked: email.as_ref().map(|c| c.masked.clone()),
            email_fp: email.map(|c| c.fp),
            email_changed_at: self.email_changed_at,
            language: self.language.clone(),
            wallets: self.wallets.join(";"),
            keep: self.keep,
            update_card: None,
            replaces_index: None,
        }
    }
}

/// A phone number as stored for the card of PAN index `card_key`: sealed (bound to that card),
/// masked, and its keyed fingerprint (rate limits, change detection). The card file and the
/// admin API both store destinations through this.
pub fn sealed_phone(keys: &DataKeys, card_key: &str, p: &Phone) -> ContactUpdate {
    ContactUpdate {
        sealed: keys.seal_for_card("phone", card_key, p.expose()),
        masked: p.masked(),
        fp: keys.fingerprint("destination", &[b"sms", p.expose().as_bytes()]),
    }
}

/// An e-mail address as stored (see [`sealed_phone`]); the fingerprint ignores case.
pub fn sealed_email(keys: &DataKeys, card_key: &str, e: &Email) -> ContactUpdate {
    ContactUpdate {
        sealed: keys.seal_for_card("email", card_key, e.expose()),
        masked: e.masked(),
        fp: keys.fingerprint(
            "destination",
            &[b"email", e.expose().to_ascii_lowercase().as_bytes()],
        ),
    }
}

/// Re-seals, bound to their card, the contact details that earlier releases sealed unbound
/// (associated data: the kind of detail only). A database migration cannot do it (it needs the
/// key), so the gateway does it at start, before serving; it is idempotent and safe to run on
/// several instances at once. Returns how many cards were re-sealed. A detail that does not
/// open with the configured key stops the start.
pub async fn reseal_unbound_contacts(store: &Store, keys: &DataKeys) -> Result<u64, String> {
    let cards = store
        .cards_with_unbound_contacts()
        .await
        .map_err(|e| format!("database.url: cannot read the cards: {e}"))?;
    let mut done = 0;
    for card in cards {
        let reseal = |context: &str, sealed: &Option<String>| -> Result<Option<String>, String> {
            match sealed {
                Some(s) if !DataKeys::is_card_bound(s) => {
                    let plain = keys.unseal_unbound(context, s).map_err(|_| {
                        format!(
                            "keys.pan_index_key_file: a stored {context} cannot be opened with this key (card {})",
                            card.card_ref
                        )
                    })?;
                    Ok(Some(keys.seal_for_card(context, &card.pan_index, &plain)))
                }
                other => Ok(other.clone()),
            }
        };
        let phone = reseal("phone", &card.phone_sealed)?;
        let email = reseal("email", &card.email_sealed)?;
        let changed = store
            .reseal_contacts(
                &card.pan_index,
                (card.phone_sealed.as_deref(), card.email_sealed.as_deref()),
                (phone.as_deref(), email.as_deref()),
            )
            .await
            .map_err(|e| format!("database.url: cannot re-seal contact details: {e}"))?;
        if changed {
            done += 1;
        }
    }
    Ok(done)
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub added: u64,
    pub updated: u64,
    pub rejected: Vec<(u64, String)>,
    pub ignored_columns: Vec<String>,
    /// Lines that renewed a card (new expiry) while `tsh.encryption_cert` is unset: TSH is
    /// not told, the import warns.
    pub renewals_not_told: Vec<u64>,
    /// `--full`: cards closed because the file left them out.
    pub closed: u64,
    /// Life-cycle operations created, by kind (`updateCardState SUSPEND`, ...).
    pub operations: std::collections::BTreeMap<String, u64>,
}

/// The import's line about life-cycle operations: `life-cycle operations created: 0`, or
/// `life-cycle operations created: 3 (updateCardState SUSPEND 2, updateCardState DELETE 1)`.
pub fn operations_line(report: &ImportReport) -> String {
    let total: u64 = report.operations.values().sum();
    if total == 0 {
        return "life-cycle operations created: 0".into();
    }
    let parts: Vec<String> = report
        .operations
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    format!(
        "life-cycle operations created: {total} ({})",
        parts.join(", ")
    )
}

/// The stored form of a line, with the `updateCard` its renewal (same PAN, new expiry) or its
/// replacement (`replaces_pan`) makes, sealed to Thales's certificate. `Err`: why the line is
/// rejected.
async fn prepare(
    store: &Store,
    keys: &DataKeys,
    sealer: Option<&FpanSealer>,
    card: &CardLine,
) -> Result<Result<NewCard, String>, StoreError> {
    let mut new = card.to_new_card(keys);
    let existing = store.card_by_pan_index(&new.pan_index).await?;
    let (old_pan, old_card) = match (&existing, &card.replaces_pan) {
        (Some(e), _) if e.exp != new.exp => (&card.pan, e.clone()),
        (Some(_), _) => return Ok(Ok(new)),
        (None, Some(old_pan)) => {
            let index = keys.pan_index(old_pan);
            let Some(old) = store.card_by_pan_index(&index).await? else {
                return Ok(Err("replaces_pan: no card has this number".into()));
            };
            new.replaces_index = Some(index);
            (old_pan, old)
        }
        (None, None) => return Ok(Ok(new)),
    };
    let Some(sealer) = sealer else {
        if new.replaces_index.is_some() {
            return Ok(Err(
                "replaces_pan: tsh.encryption_cert is required to move the tokens to the new card (updateCard)"
                    .into(),
            ));
        }
        // A renewal with no [tsh]: the card is updated; the import warns that TSH is not told.
        return Ok(Ok(new));
    };
    let Ok(old_exp) = Expiry::parse_mmyy(&old_card.exp) else {
        return Ok(Err("the stored expiry of the card cannot be read".into()));
    };
    match sealer.seal(old_pan, &old_exp, &card.pan, &card.exp) {
        Ok(fpan_details) => {
            new.update_card = Some(UpdateCardSeal {
                expected_old_exp: old_card.exp.clone(),
                fpan_details,
                new_product_id: (old_card.product_id != new.product_id)
                    .then(|| new.product_id.clone()),
            });
            Ok(Ok(new))
        }
        Err(e) => Ok(Err(format!("{e}"))),
    }
}

/// Imports a parsed card file. `progress` is called every 1,000 lines with the lines done.
/// `sealer`: Thales's certificate (`tsh.encryption_cert`), for renewals and replacements.
pub async fn import(
    store: &Store,
    keys: &DataKeys,
    sealer: Option<&FpanSealer>,
    file: CardFile,
    now_ms: Millis,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, StoreError> {
    let total = file.lines.len() as u64;
    let mut report = ImportReport {
        ignored_columns: file.ignored_columns,
        ..ImportReport::default()
    };
    for (i, (line, parsed)) in file.lines.into_iter().enumerate() {
        match parsed {
            Err(reason) => report.rejected.push((line, reason)),
            Ok(card) => match match prepare(store, keys, sealer, &card).await? {
                Ok(new) => {
                    if sealer.is_none() {
                        if let Some(old) = store.card_by_pan_index(&new.pan_index).await? {
                            if old.exp != new.exp {
                                report.renewals_not_told.push(line);
                            }
                        }
                    }
                    store.upsert_card(&new, now_ms).await
                }
                Err(reason) => Err(StoreError::Conflict(reason)),
            } {
                Ok((upserted, _, operations)) => {
                    match upserted {
                        Upserted::Added => report.added += 1,
                        Upserted::Updated => report.updated += 1,
                    }
                    for op in operations {
                        *report.operations.entry(op).or_insert(0) += 1;
                    }
                }
                Err(StoreError::Conflict(reason)) => report.rejected.push((line, reason)),
                Err(e) => return Err(e),
            },
        }
        let done = i as u64 + 1;
        if done % 1000 == 0 {
            progress(done, total);
        }
    }
    Ok(report)
}

/// `cards import`: opens the database and the PAN index key named by the configuration and
/// imports the file, printing progress on standard error for long files.
pub async fn import_cards(config: &Config, file: &Path) -> anyhow::Result<ImportReport> {
    import_cards_at(config, file, crate::clock::Clock::system().now_ms()).await
}

/// `import_cards` at a given time (destination changes are recorded at `now`).
pub async fn import_cards_at(
    config: &Config,
    file: &Path,
    now: Millis,
) -> anyhow::Result<ImportReport> {
    import_cards_with(config, file, now, None).await
}

/// `cards import --full`: the file is the whole registry; cards absent from it are closed
/// (their tokens deleted), unless that would close more than `max_closed` cards (default 1% of
/// the registry, rounded up), in which case nothing at all is changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Full {
    pub max_closed: Option<u64>,
}

/// The cards a full file leaves out: their references. Refuses (changing nothing) beyond the
/// guard.
async fn absent_from_full_file(
    store: &Store,
    keys: &DataKeys,
    file: &CardFile,
    full: Full,
) -> anyhow::Result<Vec<String>> {
    let mut present = std::collections::HashSet::new();
    for (_, line) in &file.lines {
        if let Ok(card) = line {
            present.insert(keys.pan_index(&card.pan));
            if let Some(old) = &card.replaces_pan {
                present.insert(keys.pan_index(old));
            }
        }
    }
    let registry = store
        .card_registry()
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?;
    let total = registry.len() as u64;
    let absent: Vec<String> = registry
        .into_iter()
        .filter(|(_, index, status)| *status != CardStatus::Closed && !present.contains(index))
        .map(|(card_ref, _, _)| card_ref)
        .collect();
    let limit = full.max_closed.unwrap_or(total.div_ceil(100));
    if absent.len() as u64 > limit {
        anyhow::bail!(
            "--full: the file leaves out {} open cards of the {total} in the registry, more than --max-closed {limit}{}; nothing was changed. Check that the file is complete, or give --max-closed {} to close them",
            absent.len(),
            if full.max_closed.is_none() {
                " (1% of the registry)"
            } else {
                ""
            },
            absent.len()
        );
    }
    Ok(absent)
}

/// [`import_cards_at`], or with `full` a full-file import (see [`Full`]).
pub async fn import_cards_with(
    config: &Config,
    file: &Path,
    now: Millis,
    full: Option<Full>,
) -> anyhow::Result<ImportReport> {
    let key_file = config
        .keys
        .pan_index_key_file
        .as_ref()
        .context("keys.pan_index_key_file: required to index the PANs")?;
    let keys = DataKeys::from_file(key_file)
        .map_err(|e| anyhow::anyhow!("keys.pan_index_key_file: {e}"))?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let parsed = parse(std::io::BufReader::new(reader))
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let store = crate::store::Store::connect(
        &config.database.url,
        config.database.max_connections,
        std::time::Duration::from_millis(config.database.timeout_ms),
    )
    .await
    .map_err(|e| anyhow::anyhow!("database.url: cannot open the database: {e}"))?;
    let sealer = match &config.tsh.encryption_cert {
        Some(path) => Some(FpanSealer::from_file(path, config.tsh.fpan_encoding())?),
        None => None,
    };
    let absent = match full {
        Some(full) => Some(absent_from_full_file(&store, &keys, &parsed, full).await?),
        None => None,
    };
    let mut report = import(
        &store,
        &keys,
        sealer.as_ref(),
        parsed,
        now,
        |done, total| {
            eprintln!("  {done} of {total} lines imported");
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("import stopped: {e}"))?;
    for card_ref in absent.unwrap_or_default() {
        let update = crate::store::CardUpdate {
            status: Some(CardStatus::Closed),
            ..crate::store::CardUpdate::default()
        };
        if let Some((_, _, operations)) = store
            .admin_update_card(&card_ref, &update, now)
            .await
            .map_err(|e| anyhow::anyhow!("closing the cards absent from the file stopped: {e}"))?
        {
            report.closed += 1;
            for op in operations {
                *report.operations.entry(op).or_insert(0) += 1;
            }
        }
    }
    store.close().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_bad_line_by_number_without_the_pan() {
        let csv = "product_id,pan,exp,status,phone,email,extra\n\
                   P1,4111111111111111,1229,active,+447700900123,a@example.com,x\n\
                   P1,4111111111111112,1229,active,,,\n\
                   P1,5555555555554444,1329,active,,,\n\
                   P1,4000056655665556,1229,frozen,,,\n\
                   P1,4242424242424242,1229,active,07700,,\n\
                   P1,378282246310005,1229,active\n";
        let f = parse(csv.as_bytes()).unwrap();
        assert_eq!(f.ignored_columns, vec!["extra".to_owned()]);
        let errs: Vec<(u64, String)> = f
            .lines
            .iter()
            .filter_map(|(l, r)| r.as_ref().err().map(|e| (*l, e.clone())))
            .collect();
        assert_eq!(
            errs.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7]
        );
        assert!(errs[0].1.contains("Luhn"));
        assert!(errs[1].1.starts_with("exp"));
        assert!(errs[2].1.contains("frozen"));
        assert!(errs[3].1.starts_with("phone"));
        for (_, e) in &errs {
            for pan in [
                "4111111111111112",
                "5555555555554444",
                "4000056655665556",
                "4242424242424242",
                "378282246310005",
            ] {
                assert!(!e.contains(pan), "{e}");
            }
        }
    }

    #[test]
    fn missing_required_columns_are_named() {
        let e = parse("pan,exp\n".as_bytes()).err().unwrap().to_string();
        assert!(e.contains("status") && e.contains("product_id"), "{e}");
    }
}
