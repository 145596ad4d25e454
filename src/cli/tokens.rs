//! `issuer-gateway tokens suspend|resume|delete|list`: operators' token actions from the command
//! line, on the database of the configuration. An action is an operation in the life-cycle log,
//! exactly as the admin API's `POST /cards/{ref}/token-actions` makes it; a running `serve`
//! sends it.

use crate::config::Config;
use crate::domain::lifecycle::{OpKind, TokenAction, valid_reason};
use crate::store::{NewOperation, Store};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Suspend one token (--token) or every token of the card at TSH.
    Suspend(ActionArgs),
    /// Resume one suspended token (--token is required: a RESUME names its token).
    Resume(ActionArgs),
    /// Delete one token (--token) or every token of the card at TSH.
    Delete(ActionArgs),
    /// List the card's tokens with their state and the card's life-cycle operations.
    ///
    /// With --refresh, asks TSH (getCardInfo, with the tsh section of the configuration) and shows Thales's
    /// own state of each token beside ours, and any token TSH knows that the gateway does not.
    List {
        /// Configuration file (default: ./issuer-gateway.toml when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The card's issuerCardRefId.
        #[arg(long, value_name = "REF")]
        card: String,
        /// Ask TSH (getCardInfo) and show Thales's own state of each token beside ours.
        #[arg(long)]
        refresh: bool,
    },
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// Configuration file (default: ./issuer-gateway.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The card's issuerCardRefId.
    #[arg(long, value_name = "REF")]
    pub card: String,
    /// One token (virtualCardId); without it, every token of the card.
    #[arg(long, value_name = "VCID")]
    pub token: Option<String>,
    /// Why (CUSTOMER_REQUEST, FRAUD_SUSPECTED, ... or free text up to 64 characters).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who acts (recorded with the operation); default: the user running the command.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
}

async fn open(config: &Config) -> anyhow::Result<(Store, crate::data_keys::DataKeys)> {
    let key_file = config
        .keys
        .pan_index_key_file
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("keys.pan_index_key_file: required"))?;
    let keys = crate::data_keys::DataKeys::from_file(key_file)
        .map_err(|e| anyhow::anyhow!("keys.pan_index_key_file: {e}"))?;
    let store = Store::connect(
        &config.database.url,
        config.database.max_connections,
        std::time::Duration::from_millis(config.database.timeout_ms),
    )
    .await
    .map_err(|e| anyhow::anyhow!("database.url: cannot open the database: {e}"))?;
    Ok((store, keys))
}

/// Makes the operation of a token action; returns what to print.
pub async fn action(
    config: &Config,
    action: TokenAction,
    a: &ActionArgs,
) -> anyhow::Result<String> {
    if !valid_reason(&a.reason) {
        anyhow::bail!("--reason: 1 to 64 characters, no card number");
    }
    let operator = a
        .operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    if !valid_reason(&operator) {
        anyhow::bail!("--operator: 1 to 64 characters");
    }
    if action == TokenAction::Resume && a.token.is_none() {
        anyhow::bail!("--token: required with resume (a RESUME names its token)");
    }
    let (store, keys) = open(config).await?;
    if store.card_by_ref(&a.card).await?.is_none() {
        anyhow::bail!("--card: no card with this issuerCardRefId");
    }
    let token = match &a.token {
        None => None,
        Some(t) => {
            let t = keys.safe_identifier(t);
            match store.token(&t).await? {
                Some(row) if row.card_ref == a.card => Some(t),
                _ => anyhow::bail!("--token: no token with this virtualCardId on this card"),
            }
        }
    };
    let op = NewOperation {
        card_ref: a.card.clone(),
        kind: OpKind::UpdateCardState,
        action: Some(action),
        virtual_card_id: token.clone(),
        reason: Some(a.reason.clone()),
        operator: Some(operator.clone()),
        verification: None,
        cause: "operator",
        fpan_details: None,
        new_product_id: None,
    };
    let now = crate::clock::Clock::system().now_ms();
    let ids = store.create_operations(&[op], now).await?;
    let label = format!("token {action}");
    let entry = crate::store::AuditEntry {
        actor: &operator,
        channel: "cli",
        action: &label,
        outcome: "ok",
        card_ref: Some(&a.card),
        virtual_card_id: token.as_deref(),
        operation_id: ids.first().copied(),
        reason: Some(&a.reason),
        ..crate::store::AuditEntry::default()
    };
    store.append_audit(&keys, &entry, now).await?;
    store.close().await;
    let what = token.map_or("every token of the card".to_owned(), |t| {
        format!("token {t}")
    });
    let id = ids.first().copied().unwrap_or_default();
    let mut out =
        format!("operation {id}: updateCardState {action} of {what}, by {operator}: waiting\n");
    if !config.tsh.configured() {
        out.push_str("warning: tsh.base_url is not set: it is sent once [tsh] is configured\n");
    }
    Ok(out)
}

/// `tokens list`.
pub async fn list(config: &Config, card: &str, refresh: bool) -> anyhow::Result<String> {
    let (store, _) = open(config).await?;
    if store.card_by_ref(card).await?.is_none() {
        anyhow::bail!("--card: no card with this issuerCardRefId");
    }
    let tokens = store.tokens_of_card(card).await?;
    let thales: Option<std::collections::BTreeMap<String, String>> = if refresh {
        if !config.tsh.configured() {
            anyhow::bail!("--refresh: tsh.base_url is not set");
        }
        let tokens = crate::tsh::card_tokens(&config.tsh, &config.issuer.id, card)
            .await
            .map_err(|e| anyhow::anyhow!("--refresh: {e}"))?;
        Some(
            tokens
                .into_iter()
                .map(|t| (t.virtual_card_id, t.status))
                .collect(),
        )
    } else {
        None
    };
    let mut out = format!("card {card}: {} token(s)\n", tokens.len());
    for t in &tokens {
        let theirs = thales
            .as_ref()
            .map(|m| {
                format!(
                    "  TSH: {}",
                    m.get(&t.virtual_card_id).map_or("unknown", String::as_str)
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}  {}  {}  device {}{theirs}\n",
            t.virtual_card_id,
            t.wallet_provider_id,
            t.state,
            t.token_storage_id.as_deref().unwrap_or("-"),
        ));
    }
    if let Some(m) = &thales {
        for (id, status) in m {
            if !tokens.iter().any(|t| &t.virtual_card_id == id) {
                out.push_str(&format!("  {id}  (not known here)  TSH: {status}\n"));
            }
        }
    }
    let ops = store.operations_of_card(card).await?;
    out.push_str(&format!("operations: {}\n", ops.len()));
    for o in ops {
        out.push_str(&format!(
            "  {}  {}  {}  {}  {}\n",
            o.id,
            o.label(),
            o.virtual_card_id.as_deref().unwrap_or("(card)"),
            o.state,
            o.reason.as_deref().unwrap_or(""),
        ));
    }
    store.close().await;
    Ok(out)
}
