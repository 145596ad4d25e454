//! `issuer-gateway operators add|list|disable|enable|set-role|reset-password|audit-export`: the
//! console's accounts, on the database of the configuration. Every change is written to the
//! audit log (channel `cli`); `audit-export` prints that log as JSON lines and checks its chain.

use crate::config::Config;
use crate::console::auth::{self, Role};
use crate::store::{AuditEntry, NewOperator, Store};
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Add an operator of the console.
    ///
    /// The password is read from standard input (its first line) when it is not a terminal;
    /// otherwise, or when that line is empty, a one-time password is generated, printed once,
    /// and must be changed at the first login. A TOTP secret is made too: its otpauth:// URI
    /// (for an authenticator app) is printed once.
    Add {
        #[command(flatten)]
        db: Db,
        /// The operator's name (1 to 64 letters, digits, '.', '_', '-', '@').
        name: String,
        /// viewer (reads), agent (also suspends, resumes, activates, blocks) or supervisor
        /// (also deletes tokens, retries or cancels operations, reads the audit log).
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// List the operators: role, state (active, disabled, locked), last login.
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Disable an operator (its sessions end at once).
    Disable {
        #[command(flatten)]
        db: Db,
        name: String,
    },
    /// Enable a disabled operator again (its lockout is cleared).
    Enable {
        #[command(flatten)]
        db: Db,
        name: String,
    },
    /// Change an operator's role (its sessions end: the next login has the new role).
    SetRole {
        #[command(flatten)]
        db: Db,
        name: String,
        /// viewer, agent or supervisor.
        role: String,
    },
    /// Give an operator a new one-time password (printed once, to be changed at the next
    /// login); clears its lockout and ends its sessions.
    ResetPassword {
        #[command(flatten)]
        db: Db,
        name: String,
        /// Also make a new TOTP secret (a lost phone): its otpauth:// URI is printed once.
        #[arg(long)]
        new_totp: bool,
    },
    /// Print the audit log as JSON lines (oldest first) for a SIEM, and check its chain.
    ///
    /// Each line is one entry: seq, at (ms since the epoch), actor, channel (console,
    /// admin-api, cli), action, outcome, cardRef, virtualCardId, operationId, reason, detail,
    /// source, prevHash, hash. The chain's check goes to standard error; exits 1 when an entry
    /// was changed, removed or inserted after it was written.
    AuditExport {
        #[command(flatten)]
        db: Db,
        /// Only the entries after this sequence number (for an incremental export).
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: i64,
    },
}

#[derive(Debug, Args)]
pub struct Db {
    /// Configuration file (default: ./issuer-gateway.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl OperatorsCommand {
    pub fn config(&self) -> Option<&std::path::Path> {
        let db = match self {
            Self::Add { db, .. }
            | Self::List { db }
            | Self::Disable { db, .. }
            | Self::Enable { db, .. }
            | Self::SetRole { db, .. }
            | Self::ResetPassword { db, .. }
            | Self::AuditExport { db, .. } => db,
        };
        db.config.as_deref()
    }
}

async fn open(config: &Config) -> anyhow::Result<(Store, crate::data_keys::DataKeys)> {
    let key_file = config.keys.pan_index_key_file.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "keys.pan_index_key_file: required (it keys the TOTP seal and the audit chain)"
        )
    })?;
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

fn role_of(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow::anyhow!("role: must be viewer, agent or supervisor"))
}

fn name_ok(name: &str) -> anyhow::Result<()> {
    if auth::valid_name(name) {
        Ok(())
    } else {
        anyhow::bail!(
            "NAME: 1 to 64 letters, digits, '.', '_', '-' or '@' (and no run of more than 6 digits)"
        )
    }
}

/// Who runs the command, for the audit log.
fn actor() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| auth::valid_name(u))
        .unwrap_or_else(|| "cli".into())
}

/// The password given on standard input, if any (never echoed back).
fn password_from_stdin() -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    stdin
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("standard input: cannot read the password: {e}"))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    Ok((!line.is_empty()).then(|| zeroize::Zeroizing::new(line.to_owned())))
}

/// Runs one command; returns what to print, or an error naming the input at fault.
pub async fn run(config: &Config, cmd: OperatorsCommand) -> anyhow::Result<String> {
    let now = crate::clock::Clock::system().now_ms();
    let me = actor();
    match cmd {
        OperatorsCommand::Add { name, role, .. } => {
            name_ok(&name)?;
            let role = role_of(&role)?;
            let given = password_from_stdin()?;
            if let Some(p) = &given {
                if let Some(problem) = auth::password_problem(&name, p) {
                    anyhow::bail!("password (standard input): {problem}");
                }
            }
            let (store, keys) = open(config).await?;
            let one_time = given.is_none();
            let password = given.unwrap_or_else(auth::one_time_password);
            let hash = auth::hash_password(&password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            let secret = auth::new_totp_secret();
            let sealed = keys.seal_for_card("operator-totp", &name, &secret);
            let added = store
                .add_operator(
                    &NewOperator {
                        name: &name,
                        role: role.as_str(),
                        password_hash: &hash,
                        must_change: one_time,
                        totp_sealed: Some(&sealed),
                    },
                    now,
                )
                .await?;
            if !added {
                anyhow::bail!("NAME: an operator named {name} exists already");
            }
            let detail = format!("role {role}");
            store
                .append_audit(
                    &keys,
                    &AuditEntry {
                        actor: &me,
                        channel: "cli",
                        action: "operator add",
                        outcome: "ok",
                        detail: Some(&detail),
                        reason: Some(&name),
                        ..AuditEntry::default()
                    },
                    now,
                )
                .await?;
            store.close().await;
            let mut out = format!("operator {name} added (role {role})\n");
            if one_time {
                out.push_str(&format!(
                    "one-time password (shown once, to be changed at the first login): {}\n",
                    password.as_str()
                ));
            }
            out.push_str(&format!(
                "TOTP (shown once): add it to an authenticator app: {}\n",
                auth::otpauth_uri("issuer-gateway", &name, &secret).as_str()
            ));
            Ok(out)
        }
        OperatorsCommand::List { .. } => {
            let (store, _) = open(config).await?;
            let list = store.operators().await?;
            store.close().await;
            let mut out = format!(
                "{:<24} {:<11} {:<9} {:<12} {}\n",
                "NAME", "ROLE", "STATE", "PASSWORD", "LAST LOGIN"
            );
            for o in &list {
                let state = if o.disabled {
                    "disabled"
                } else if o.locked_until.is_some_and(|t| t.0 > now.0) {
                    "locked"
                } else {
                    "active"
                };
                out.push_str(&format!(
                    "{:<24} {:<11} {:<9} {:<12} {}\n",
                    o.name,
                    o.role,
                    state,
                    if o.must_change { "one-time" } else { "set" },
                    o.last_login_at
                        .map_or("never".to_owned(), crate::clock::format_ms)
                ));
            }
            if list.is_empty() {
                out.push_str(
                    "(no operator: add one with `issuer-gateway operators add NAME --role ROLE`)\n",
                );
            }
            Ok(out)
        }
        OperatorsCommand::Disable { name, .. } => set_disabled(config, &name, true, &me).await,
        OperatorsCommand::Enable { name, .. } => set_disabled(config, &name, false, &me).await,
        OperatorsCommand::SetRole { name, role, .. } => {
            name_ok(&name)?;
            let role = role_of(&role)?;
            let (store, keys) = open(config).await?;
            if !store.set_operator_role(&name, role.as_str(), now).await? {
                anyhow::bail!("NAME: no operator named {name}");
            }
            let detail = format!("role {role}");
            store
                .append_audit(
                    &keys,
                    &AuditEntry {
                        actor: &me,
                        channel: "cli",
                        action: "operator set-role",
                        outcome: "ok",
                        reason: Some(&name),
                        detail: Some(&detail),
                        ..AuditEntry::default()
                    },
                    now,
                )
                .await?;
            store.close().await;
            Ok(format!(
                "operator {name}: role {role} (its sessions ended)\n"
            ))
        }
        OperatorsCommand::ResetPassword { name, new_totp, .. } => {
            name_ok(&name)?;
            let (store, keys) = open(config).await?;
            if store.operator(&name).await?.is_none() {
                anyhow::bail!("NAME: no operator named {name}");
            }
            let password = auth::one_time_password();
            let hash = auth::hash_password(&password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            store
                .set_operator_password(&name, &hash, true, true, now)
                .await?;
            let mut out = format!(
                "operator {name}: one-time password (shown once, to be changed at the next login): {}\n",
                password.as_str()
            );
            if new_totp {
                let secret = auth::new_totp_secret();
                let sealed = keys.seal_for_card("operator-totp", &name, &secret);
                store.set_operator_totp(&name, &sealed, now).await?;
                out.push_str(&format!(
                    "TOTP (shown once): add it to an authenticator app: {}\n",
                    auth::otpauth_uri("issuer-gateway", &name, &secret).as_str()
                ));
            }
            store
                .append_audit(
                    &keys,
                    &AuditEntry {
                        actor: &me,
                        channel: "cli",
                        action: if new_totp {
                            "operator reset-password (new TOTP)"
                        } else {
                            "operator reset-password"
                        },
                        outcome: "ok",
                        reason: Some(&name),
                        ..AuditEntry::default()
                    },
                    now,
                )
                .await?;
            store.close().await;
            Ok(out)
        }
        OperatorsCommand::AuditExport { after, .. } => audit_export(config, after).await,
    }
}

async fn set_disabled(
    config: &Config,
    name: &str,
    disabled: bool,
    me: &str,
) -> anyhow::Result<String> {
    name_ok(name)?;
    let now = crate::clock::Clock::system().now_ms();
    let (store, keys) = open(config).await?;
    if !store.set_operator_disabled(name, disabled, now).await? {
        anyhow::bail!("NAME: no operator named {name}");
    }
    let action = if disabled {
        "operator disable"
    } else {
        "operator enable"
    };
    store
        .append_audit(
            &keys,
            &AuditEntry {
                actor: me,
                channel: "cli",
                action,
                outcome: "ok",
                reason: Some(name),
                ..AuditEntry::default()
            },
            now,
        )
        .await?;
    store.close().await;
    Ok(if disabled {
        format!("operator {name}: disabled (its sessions ended)\n")
    } else {
        format!("operator {name}: enabled\n")
    })
}

/// Prints the entries after `after` as JSON lines on standard output, checking the chain from
/// the start as it goes; the verdict goes to standard error (an error when it is broken).
async fn audit_export(config: &Config, after: i64) -> anyhow::Result<String> {
    use std::io::Write;
    let (store, keys) = open(config).await?;
    let mut prev = crate::store::AUDIT_GENESIS.to_owned();
    let mut from = 0;
    let mut printed = 0u64;
    let mut checked = 0u64;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let rows = store.audit_entries(from, 1000).await?;
        let Some(last) = rows.last() else { break };
        if let Some(bad) = crate::store::verify_chain(&keys, &rows, &prev) {
            out.flush()?;
            store.close().await;
            anyhow::bail!(
                "the audit log's chain is broken at entry {bad}: it was changed, removed or inserted after it was written"
            );
        }
        for r in rows.iter().filter(|r| r.seq > after) {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
            printed += 1;
        }
        checked += rows.len() as u64;
        from = last.seq;
        prev.clone_from(&last.hash);
    }
    out.flush()?;
    store.close().await;
    eprintln!("audit-export: {printed} entries printed; the chain of {checked} entries holds");
    Ok(String::new())
}
