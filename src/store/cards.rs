//! The card registry.

use super::operations::BeginWrite;
use super::{Backend, LockKey, Store, StoreError};
use crate::domain::{Card, CardStatus, Expiry, Millis};
use sqlx::Row;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardRow {
    pub card_ref: String,
    pub pan_index: String,
    pub bin: String,
    pub last4: String,
    pub exp: String,
    pub status: CardStatus,
    pub product_id: String,
    pub phone_sealed: Option<String>,
    pub phone_masked: Option<String>,
    pub phone_fp: Option<String>,
    pub phone_changed_at: Option<Millis>,
    pub email_sealed: Option<String>,
    pub email_masked: Option<String>,
    pub email_fp: Option<String>,
    pub email_changed_at: Option<Millis>,
    pub language: Option<String>,
    pub wallets: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl CardRow {
    /// The card as the decision sees it.
    pub fn card(&self) -> Card {
        Card {
            card_ref: self.card_ref.clone(),
            bin: self.bin.clone(),
            last4: self.last4.clone(),
            expiry: Expiry::parse_mmyy(&self.exp).ok(),
            status: self.status,
            product_id: self.product_id.clone(),
            phone_changed_at: self.phone_changed_at,
            email_changed_at: self.email_changed_at,
        }
    }

    /// True when the card may be used in `wallet` (an empty list allows every wallet).
    pub fn allows_wallet(&self, wallet: &str) -> bool {
        let list: Vec<&str> = self
            .wallets
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        list.is_empty() || list.iter().any(|w| w.eq_ignore_ascii_case(wallet))
    }
}

/// What an update leaves as stored because its input did not carry it (a card file without
/// that column, an admin call without that field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    pub phone: bool,
    pub email: bool,
    pub language: bool,
    pub wallets: bool,
}

/// A card to insert or update (from the card file or the admin API).
#[derive(Debug, Clone)]
pub struct NewCard {
    pub card_ref: Option<String>,
    pub pan_index: String,
    pub bin: String,
    pub last4: String,
    pub exp: String,
    pub status: CardStatus,
    pub product_id: String,
    pub phone_sealed: Option<String>,
    pub phone_masked: Option<String>,
    pub phone_fp: Option<String>,
    pub phone_changed_at: Option<Millis>,
    pub email_sealed: Option<String>,
    pub email_masked: Option<String>,
    pub email_fp: Option<String>,
    pub email_changed_at: Option<Millis>,
    pub language: Option<String>,
    pub wallets: String,
    pub keep: Keep,
    /// Renewal or replacement: the `updateCard` to create with the change.
    pub update_card: Option<UpdateCardSeal>,
    /// Replacement: the keyed index of the PAN this card replaces (`replaces_pan`).
    pub replaces_index: Option<String>,
}

/// The `updateCard` of a renewal or a replacement, sealed before the transaction: it is made
/// only if the stored expiry it was sealed with (the old card's, for a replacement) is still
/// the stored one.
#[derive(Debug, Clone)]
pub struct UpdateCardSeal {
    pub expected_old_exp: String,
    pub fpan_details: String,
    pub new_product_id: Option<String>,
}

/// The updateCard operation of a renewal or replacement.
fn update_card_op(
    card_ref: &str,
    seal: &UpdateCardSeal,
    cause: &'static str,
) -> super::NewOperation {
    super::NewOperation {
        card_ref: card_ref.to_owned(),
        kind: crate::domain::lifecycle::OpKind::UpdateCard,
        action: None,
        virtual_card_id: None,
        reason: None,
        operator: None,
        verification: None,
        cause,
        fpan_details: Some(seal.fpan_details.clone()),
        new_product_id: seal.new_product_id.clone(),
    }
}

const CHANGED_MEANWHILE: &str =
    "the card changed while this line was read (another import?): import the file again";

/// Outcome of a card upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Added,
    Updated,
}

/// A replacement in transaction `$tx`: the card of `$c.replaces_index` is retired (closed,
/// `replaced_by` its reference, a reference of its own that nothing uses) and the new card takes
/// over its reference, its tokens, and its contact details where the file has none; then the
/// updateCard, and the operations of the status change from the old card's to the new one's.
/// No DELETE: the tokens move to the new card.
macro_rules! replace_card {
    ($tx:ident, $c:expr, $now:expr) => {{
        let c: &NewCard = $c;
        let now: Millis = $now;
        let old_index = c.replaces_index.clone().unwrap_or_default();
        let old: Option<CardRow> = sqlx::query_as(CARD_SELECT_BY_INDEX)
            .bind(&old_index)
            .fetch_optional(&mut *$tx)
            .await?;
        let Some(old) = old else {
            return Err(StoreError::Conflict("replaces_pan: no card has this number".into()));
        };
        let replaced_by: Option<(Option<String>,)> =
            sqlx::query_as("SELECT replaced_by FROM cards WHERE card_ref = $1")
                .bind(&old.card_ref)
                .fetch_optional(&mut *$tx)
                .await?;
        if replaced_by.and_then(|(r,)| r).is_some() {
            return Err(StoreError::Conflict(
                "replaces_pan: that card was already replaced".into(),
            ));
        }
        if c.card_ref.as_ref().is_some_and(|r| *r != old.card_ref) {
            return Err(StoreError::Conflict(
                "issuer_card_ref_id: a replacement keeps the reference of the card it replaces".into(),
            ));
        }
        let seal = match &c.update_card {
            Some(seal) if seal.expected_old_exp == old.exp => seal,
            _ => return Err(StoreError::Conflict(CHANGED_MEANWHILE.into())),
        };
        let card_ref = old.card_ref.clone();
        $tx.lock_key(&format!("card-ref:{card_ref}")).await?;
        sqlx::query(
            "UPDATE cards SET card_ref = $2, status = 'closed', replaced_by = $1, updated_at = $3 WHERE card_ref = $1",
        )
        .bind(&card_ref)
        .bind(new_card_ref())
        .bind(now)
        .execute(&mut *$tx)
        .await?;
        let mut merged = keep_stored(c, &old);
        merged.card_ref = Some(card_ref.clone());
        let c = &merged;
        sqlx::query(
            "INSERT INTO cards (card_ref, pan_index, bin, last4, exp, status, product_id, phone_sealed, \
             phone_masked, phone_fp, phone_changed_at, email_sealed, email_masked, email_fp, email_changed_at, \
             language, wallets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)",
        )
        .bind(&card_ref)
        .bind(&c.pan_index)
        .bind(&c.bin)
        .bind(&c.last4)
        .bind(&c.exp)
        .bind(c.status.as_str())
        .bind(&c.product_id)
        .bind(&c.phone_sealed)
        .bind(&c.phone_masked)
        .bind(&c.phone_fp)
        .bind(c.phone_changed_at.or(old.phone_changed_at))
        .bind(&c.email_sealed)
        .bind(&c.email_masked)
        .bind(&c.email_fp)
        .bind(c.email_changed_at.or(old.email_changed_at))
        .bind(&c.language)
        .bind(&c.wallets)
        .bind(now)
        .execute(&mut *$tx)
        .await?;
        let op = update_card_op(&card_ref, seal, "replacement");
        insert_operation!($tx, &op, now);
        let mut ops = vec![op.label()];
        ops.extend(status_change_operations!($tx, &card_ref, old.status, c.status, now));
        (Upserted::Added, card_ref, ops)
    }};
}

impl Store {
    /// Inserts a card, or updates the card with the same PAN index (keeping its reference).
    /// A destination whose fingerprint changed gets `*_changed_at` = `now` unless the card file
    /// gave a time.
    ///
    /// Two imports of one card at once (two instances, or an import while another runs) are
    /// applied one after the other: the card's lock, then the requested reference's, are taken
    /// before anything is read, so neither can insert a card the other is inserting (a
    /// constraint error) nor overwrite what it did not see.
    pub async fn upsert_card(
        &self,
        c: &NewCard,
        now: Millis,
    ) -> Result<(Upserted, String, Vec<String>), StoreError> {
        let mut card_locks = vec![format!("card-pan:{}", c.pan_index)];
        if let Some(old) = &c.replaces_index {
            card_locks.push(format!("card-pan:{old}"));
            card_locks.sort();
        }
        let ref_lock = c.card_ref.as_ref().map(|r| format!("card-ref:{r}"));
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            for key in &card_locks {
                tx.lock_key(key).await?;
            }
            if let Some(key) = &ref_lock {
                tx.lock_key(key).await?;
            }
            let mut existing: Option<CardRow> = sqlx::query_as(CARD_SELECT_BY_INDEX)
                .bind(&c.pan_index)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(found) = existing.as_ref().filter(|_| ref_lock.is_none()) {
                // The reference's lock too (admin updates take it), then the card as it is now.
                tx.lock_key(&format!("card-ref:{}", found.card_ref)).await?;
                existing = sqlx::query_as(CARD_SELECT_BY_INDEX)
                    .bind(&c.pan_index)
                    .fetch_optional(&mut *tx)
                    .await?;
            }
            if let Some(requested) = &c.card_ref {
                let owner: Option<(String,)> =
                    sqlx::query_as("SELECT pan_index FROM cards WHERE card_ref = $1")
                        .bind(requested)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((owner_index,)) = owner {
                    if owner_index != c.pan_index {
                        return Err(StoreError::Conflict(
                            "issuer_card_ref_id already belongs to another card".into(),
                        ));
                    }
                }
            }
            let result = match existing {
                Some(old) => {
                    if c.card_ref.as_ref().is_some_and(|r| *r != old.card_ref) {
                        return Err(StoreError::Conflict(
                            "issuer_card_ref_id differs from the reference this card already has; a card's reference never changes"
                                .into(),
                        ));
                    }
                    let merged;
                    let c = if c.keep == Keep::default() {
                        c
                    } else {
                        merged = keep_stored(c, &old);
                        &merged
                    };
                    let phone_changed_at = c.phone_changed_at.or(if old.phone_fp == c.phone_fp {
                        old.phone_changed_at
                    } else {
                        Some(now)
                    });
                    let email_changed_at = c.email_changed_at.or(if old.email_fp == c.email_fp {
                        old.email_changed_at
                    } else {
                        Some(now)
                    });
                    sqlx::query(
                        "UPDATE cards SET exp = $2, status = $3, product_id = $4, phone_sealed = $5, phone_masked = $6, \
                         phone_fp = $7, phone_changed_at = $8, email_sealed = $9, email_masked = $10, email_fp = $11, \
                         email_changed_at = $12, language = $13, wallets = $14, updated_at = $15 WHERE card_ref = $1",
                    )
                    .bind(&old.card_ref)
                    .bind(&c.exp)
                    .bind(c.status.as_str())
                    .bind(&c.product_id)
                    .bind(&c.phone_sealed)
                    .bind(&c.phone_masked)
                    .bind(&c.phone_fp)
                    .bind(phone_changed_at)
                    .bind(&c.email_sealed)
                    .bind(&c.email_masked)
                    .bind(&c.email_fp)
                    .bind(email_changed_at)
                    .bind(&c.language)
                    .bind(&c.wallets)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let mut ops = Vec::new();
                    // Renewal: the same PAN with a new expiry.
                    // (No seal: tsh.encryption_cert is unset, the card file warns.)
                    if old.exp != c.exp {
                        match &c.update_card {
                            Some(seal) if seal.expected_old_exp == old.exp => {
                                let op = update_card_op(&old.card_ref, seal, "renewal");
                                insert_operation!(tx, &op, now);
                                ops.push(op.label());
                            }
                            Some(_) => return Err(StoreError::Conflict(CHANGED_MEANWHILE.into())),
                            None => {}
                        }
                    }
                    // The life-cycle operations of a status change, in the same transaction.
                    ops.extend(status_change_operations!(
                        tx,
                        &old.card_ref,
                        old.status,
                        c.status,
                        now
                    ));
                    (Upserted::Updated, old.card_ref, ops)
                }
                None if c.replaces_index.is_some() => replace_card!(tx, c, now),
                None => {
                    let card_ref = c.card_ref.clone().unwrap_or_else(new_card_ref);
                    sqlx::query(
                        "INSERT INTO cards (card_ref, pan_index, bin, last4, exp, status, product_id, phone_sealed, \
                         phone_masked, phone_fp, phone_changed_at, email_sealed, email_masked, email_fp, email_changed_at, \
                         language, wallets, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)",
                    )
                    .bind(&card_ref)
                    .bind(&c.pan_index)
                    .bind(&c.bin)
                    .bind(&c.last4)
                    .bind(&c.exp)
                    .bind(c.status.as_str())
                    .bind(&c.product_id)
                    .bind(&c.phone_sealed)
                    .bind(&c.phone_masked)
                    .bind(&c.phone_fp)
                    .bind(c.phone_changed_at)
                    .bind(&c.email_sealed)
                    .bind(&c.email_masked)
                    .bind(&c.email_fp)
                    .bind(c.email_changed_at)
                    .bind(&c.language)
                    .bind(&c.wallets)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (Upserted::Added, card_ref, Vec::new())
                }
            };
            tx.commit().await?;
            Ok(result)
        })
    }

    pub async fn card_by_pan_index(&self, pan_index: &str) -> Result<Option<CardRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(CARD_SELECT_BY_INDEX)
                .bind(pan_index)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn card_by_ref(&self, card_ref: &str) -> Result<Option<CardRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(CARD_SELECT_BY_REF)
                .bind(card_ref)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Every card not retired by a replacement: reference, PAN index, status.
    pub async fn card_registry(&self) -> Result<Vec<(String, String, CardStatus)>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT card_ref, pan_index, status FROM cards WHERE replaced_by IS NULL ORDER BY card_ref",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Cards holding a contact detail in the unbound sealed form of earlier releases (not
    /// `v2:`): what the start-up re-seal converts.
    pub async fn cards_with_unbound_contacts(&self) -> Result<Vec<CardRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT * FROM cards WHERE (phone_sealed IS NOT NULL AND phone_sealed NOT LIKE 'v2:%') \
                 OR (email_sealed IS NOT NULL AND email_sealed NOT LIKE 'v2:%')",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Replaces a card's sealed contact details with their re-sealed form, only if they are
    /// still the ones read (`old`): a concurrent update wins. True when the row was changed.
    pub async fn reseal_contacts(
        &self,
        pan_index: &str,
        old: (Option<&str>, Option<&str>),
        new: (Option<&str>, Option<&str>),
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let done = sqlx::query(
                "UPDATE cards SET phone_sealed = $2, email_sealed = $3 WHERE pan_index = $1 \
                 AND phone_sealed IS NOT DISTINCT FROM $4 AND email_sealed IS NOT DISTINCT FROM $5",
            )
            .bind(pan_index)
            .bind(new.0)
            .bind(new.1)
            .bind(old.0)
            .bind(old.1)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(done == 1)
        })
    }

    pub async fn count_cards(&self) -> Result<i64, StoreError> {
        with_pool!(self, read, |pool| {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM cards")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>("n")?)
        })
    }
}

const CARD_SELECT_BY_INDEX: &str = "SELECT * FROM cards WHERE pan_index = $1";
const CARD_SELECT_BY_REF: &str = "SELECT * FROM cards WHERE card_ref = $1";

/// A new opaque card reference: 128 random bits, hex. It says nothing about the PAN.
pub fn new_card_ref() -> String {
    hex::encode(crate::data_keys::random_bytes::<16>())
}

/// `c` with the fields it does not carry taken from the stored card.
fn keep_stored(c: &NewCard, old: &CardRow) -> NewCard {
    let mut m = c.clone();
    if c.keep.phone {
        m.phone_sealed = old.phone_sealed.clone();
        m.phone_masked = old.phone_masked.clone();
        m.phone_fp = old.phone_fp.clone();
        m.phone_changed_at = c.phone_changed_at.or(old.phone_changed_at);
    }
    if c.keep.email {
        m.email_sealed = old.email_sealed.clone();
        m.email_masked = old.email_masked.clone();
        m.email_fp = old.email_fp.clone();
        m.email_changed_at = c.email_changed_at.or(old.email_changed_at);
    }
    if c.keep.language {
        m.language = old.language.clone();
    }
    if c.keep.wallets {
        m.wallets = old.wallets.clone();
    }
    m
}
