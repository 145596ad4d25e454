//! The subcommands.

pub mod operators;
pub mod policy;
pub mod tokens;
pub mod webhooks;

use crate::config::{Config, ConfigErrors};
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "issuer-gateway",
    version,
    about = "Issuer backend for the Thales Token Service Hub: card eligibility, digitization decision, OTP delivery and token notices for Apple Pay, Google Pay and Samsung Pay.",
    after_help = "Configuration: a TOML file (--config, else ./issuer-gateway.toml when present, else defaults), every key overridable by ISSUER_GATEWAY__<SECTION>__<KEY> environment variables. See docs/configuration.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the TSH-facing API and the admin API until SIGINT/SIGTERM, then drain and stop.
    Serve(ServeArgs),
    /// Show complete enrolments on a throw-away gateway: no set-up needed.
    Demo(DemoArgs),
    /// Manage the issuer's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the card registry.
    #[command(subcommand)]
    Cards(CardsCommand),
    /// Suspend, resume or delete tokens at TSH, or list a card's tokens and operations.
    ///
    /// An action is written to the life-cycle operation log (the database of --config) and sent
    /// by a running serve, in order with the card's other operations.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Manage the operator console's accounts (add, list, disable, enable, set-role,
    /// reset-password), or export its audit log (audit-export).
    #[command(subcommand)]
    Operators(operators::OperatorsCommand),
    /// Check the decision policy, or explain a decision, offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Play TSH against a running gateway: complete enrolments, or a load run with --count.
    ///
    /// Seals the test cards of a card file for the issuer's certificate and plays complete
    /// enrolments: eligibility, digitization (with the same sealed card data, as TSH sends it),
    /// sendOTP on yellow, activation notice. Without --count: one enrolment of each kind (green,
    /// yellow with SMS, yellow with e-mail, red), token notices and a refused card, printed step by
    /// step. With --count N: N enrolments on --concurrency C keep-alive connections, a progress
    /// line every second on standard error, then throughput, latency percentiles (p50, p90, p99,
    /// max) per operation and error counts. Exits 1 when any call was not answered as expected,
    /// 2 when the simulation cannot start. With --tsh-listen it plays TSH's inbound side instead
    /// (the API the gateway's life-cycle operations go to), until SIGINT/SIGTERM.
    Simulate(Box<SimulateArgs>),
    /// Remove the records past their retention now (`serve` also does it every hour).
    ///
    /// Removes, in small batches, the call records, OTP send records, enrolments, finished
    /// life-cycle operations and delivered webhook events older than retention.calls_days,
    /// retention.sends_days, retention.enrolments_days, retention.operations_days and
    /// retention.events_days; tokens, cards and token events are kept. Prints the count per table. On PostgreSQL, while another
    /// instance is purging, stops and says so.
    Purge {
        /// Configuration file (default: ./issuer-gateway.toml when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Count what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Webhooks to the bank's own systems: make a signing secret.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The gateway's TSH-facing API, e.g. http://127.0.0.1:8443 (the default base path
    /// /issuer/igwapi/v2.0 is added when the URL has no path).
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// The issuer id sent in x-issuer-id.
    #[arg(long, value_name = "ID")]
    pub issuer_id: String,
    /// The issuer's PKCS#7 certificate (the one uploaded to the Thales portal).
    #[arg(long, value_name = "CERT.pem")]
    pub cert: PathBuf,
    /// The card file the gateway imported (card-file CSV format).
    #[arg(long, value_name = "FILE.csv", required_unless_present = "tsh_listen")]
    pub cards: Option<PathBuf>,
    /// Play TSH's inbound side instead: serve updateCardState, updateCard, getCardInfo and
    /// getTokenInfo on this address (the gateway's tsh.base_url) until SIGINT/SIGTERM, keep the
    /// tokens, open fpanDetails with --tsh-key and check it, and send the matching
    /// notifyVirtualCardChange back to --target. Tokens are registered with
    /// POST /_simulator/tokens {issuerCardRefId, virtualCardId, walletProviderId, tokenStorageId}.
    #[arg(long, value_name = "ADDR", requires = "tsh_key")]
    pub tsh_listen: Option<std::net::SocketAddr>,
    /// With --tsh-listen: the private key (PEM) of the certificate the gateway has as
    /// tsh.encryption_cert.
    #[arg(long, value_name = "KEY.pem")]
    pub tsh_key: Option<PathBuf>,
    /// With --tsh-listen: speak mutual TLS with this certificate chain (PEM)...
    #[arg(long, value_name = "CERT.pem", requires_all = ["tsh_tls_key", "tsh_client_ca"])]
    pub tsh_tls_cert: Option<PathBuf>,
    /// ...its private key...
    #[arg(long, value_name = "KEY.pem", requires = "tsh_tls_cert")]
    pub tsh_tls_key: Option<PathBuf>,
    /// ...and accept only clients with a certificate from this CA (the gateway's tsh.client_cert).
    #[arg(long, value_name = "CA.pem", requires = "tsh_tls_cert")]
    pub tsh_client_ca: Option<PathBuf>,
    /// Load run: this many enrolments.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Load run: enrolments played at once (one keep-alive connection each).
    #[arg(long, value_name = "C", default_value_t = 8, requires = "count", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Load run: only checkCardEligibility calls (measures the envelope-opening bound).
    #[arg(long, requires = "count")]
    pub eligibility_only: bool,
    /// Load run: start this many enrolments per second in all (paced, open loop) instead of
    /// as fast as the connections allow: latency at a given load, e.g. half the peak.
    #[arg(long, value_name = "PER_SECOND", requires = "count", value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Instead of calling the gateway: write --count checkCardEligibility request bodies, one
    /// JSON object per line, each with card data sealed afresh, for an external load client
    /// (benches/wrk-eligibility.lua). Nothing is sent to --target.
    #[arg(long, value_name = "FILE", requires = "count")]
    pub write_requests: Option<PathBuf>,
    /// For a gateway speaking mutual TLS: the client certificate chain to present (PEM).
    #[arg(long, value_name = "CERT.pem", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(long, value_name = "KEY.pem", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// CA certificate(s) to trust for the gateway's server certificate (PEM), in addition to the
    /// system's.
    #[arg(long, value_name = "CA.pem")]
    pub ca: Option<PathBuf>,
    /// Walkthrough: also play Option C, the bank's app activating a waiting token through the
    /// gateway's app API at this URL (app.listen, e.g. http://127.0.0.1:9091).
    #[arg(long, value_name = "URL", requires = "app_token")]
    pub app_url: Option<String>,
    /// The app API's bearer token (app.token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ISSUER_GATEWAY__APP__TOKEN",
        hide_env_values = true
    )]
    pub app_token: Option<String>,
    /// Walkthrough: also play Option D, an agent activating a waiting token through the admin
    /// API at this URL (admin.listen, e.g. http://127.0.0.1:9090).
    #[arg(long, value_name = "URL", requires = "admin_token")]
    pub admin_url: Option<String>,
    /// The admin API's bearer token (admin.token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ISSUER_GATEWAY__ADMIN__TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// With --app-url or --admin-url: the simulated inbound TSH (simulate --tsh-listen, the
    /// gateway's tsh.base_url) where the waiting (INACTIVE) token is registered.
    #[arg(long, value_name = "URL")]
    pub tsh_sim: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (default: ./issuer-gateway.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Refuse to start while a channel is on the outbox (development) provider; the same as
    /// server.require_real_channels = true.
    #[arg(long)]
    pub require_real_channels: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's folder (database, keys, outbox, log) in this new directory instead of a
    /// temporary one that is removed at exit.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the issuer's PKCS#7 key pair, its self-signed certificate and the PAN index key.
    ///
    /// Writes DIR/issuer-pkcs7-key.pem (PKCS#8, mode 600), DIR/issuer-pkcs7-cert.pem (upload it
    /// to the Thales portal) and DIR/pan-index.key (mode 600). Never overwrites existing files.
    Generate {
        /// Folder for the new files (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// RSA key size.
        #[arg(long, default_value_t = 2048, value_parser = clap::builder::PossibleValuesParser::new(["2048", "4096"]).map(|s| s.parse::<u32>().unwrap_or(2048)))]
        bits: u32,
        /// Common name of the self-signed certificate.
        #[arg(long, default_value = "issuer-gateway PKCS#7 key")]
        common_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the decision policy of the configuration and list its rules in order.
    ///
    /// Exits 2 with one line per problem (naming the rule) when the policy is invalid. Also
    /// warns (on standard error) about SMS templates that would not fit one message.
    Check {
        /// Configuration file (default: ./issuer-gateway.toml when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show which rule decides a requestCardDigitization body, and why, without a server.
    Explain {
        /// Configuration file (default: ./issuer-gateway.toml when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A requestCardDigitization body (JSON).
        #[arg(long, value_name = "FILE.json")]
        request: PathBuf,
        /// Take the card's status, expiry, tokens and contact changes from the database
        /// (database.url of the configuration); without it an active card is assumed.
        #[arg(long, value_name = "REF")]
        card: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CardsCommand {
    /// Insert or update cards from a CSV card file (see docs/card-file.md).
    ///
    /// Prints how many cards were added, updated and rejected, with each rejected line's number
    /// and reason (never its PAN), and the life-cycle operations for TSH it created by kind (a
    /// status change suspends, resumes or deletes the card's tokens; a new expiry or a row with
    /// replaces_pan makes an updateCard). Exits 1 when any line was rejected.
    Import {
        /// Configuration file (default: ./issuer-gateway.toml when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The card file.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        /// The file is the whole registry: cards absent from it are closed (their tokens at TSH
        /// deleted). Refused, changing nothing, when that would close more than --max-closed.
        #[arg(long)]
        full: bool,
        /// With --full: most cards it may close (default: 1% of the registry, rounded up).
        #[arg(long, value_name = "N", requires = "full")]
        max_closed: Option<u64>,
    },
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path, std::env::vars()).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => match crate::demo::run(args.keep).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: demo: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Keys(KeysCommand::Generate {
            out,
            bits,
            common_name,
        }) => match crate::keys::generate(&out, bits, &common_name) {
            Ok(files) => {
                for f in &files {
                    println!("created {}", f.display());
                }
                println!();
                println!("Configure the gateway with:");
                println!("  [keys]");
                println!(
                    "  pkcs7_private_keys = [\"{}\"]",
                    out.join(crate::keys::PRIVATE_KEY_FILE).display()
                );
                println!(
                    "  pan_index_key_file = \"{}\"",
                    out.join(crate::keys::PAN_INDEX_KEY_FILE).display()
                );
                println!(
                    "and upload {} to the Thales portal.",
                    out.join(crate::keys::CERTIFICATE_FILE).display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: keys generate: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Simulate(args) if args.tsh_listen.is_some() => {
            match crate::sim::tsh::serve_cli(crate::sim::tsh::CliOptions {
                listen: args.tsh_listen,
                key: args.tsh_key,
                target: args.target,
                issuer_id: args.issuer_id,
                cert: args.cert,
                tls: match (args.tsh_tls_cert, args.tsh_tls_key, args.tsh_client_ca) {
                    (Some(cert_chain), Some(private_key), Some(client_ca)) => {
                        Some(crate::config::TlsConfig {
                            cert_chain,
                            private_key,
                            client_ca,
                        })
                    }
                    _ => None,
                },
                shutdown: Box::pin(crate::app::shutdown_signal()),
            })
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: simulate --tsh-listen: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Simulate(args) => {
            let options = crate::sim::SimulateOptions {
                target: args.target,
                issuer_id: args.issuer_id,
                cert: args.cert,
                cards: args.cards.unwrap_or_default(),
                count: args.count,
                concurrency: usize::try_from(args.concurrency).unwrap_or(1),
                eligibility_only: args.eligibility_only,
                rate: args.rate,
                write_requests: args.write_requests,
                client_cert: args.client_cert,
                client_key: args.client_key,
                ca: args.ca,
                activations: crate::sim::activations::ActivationOptions {
                    app_url: args.app_url,
                    app_token: args.app_token,
                    admin_url: args.admin_url,
                    admin_token: args.admin_token,
                    tsh_sim: args.tsh_sim,
                },
            };
            match crate::sim::simulate(options).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: simulate: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Policy(PolicyCommand::Check { config }) => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match policy::check(&config) {
                Ok(text) => {
                    print!("{text}");
                    for warning in crate::delivery::template::sms_warnings(&config.templates) {
                        eprintln!("warning: {warning}");
                    }
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    eprintln!("invalid policy:");
                    for p in problems {
                        eprintln!("  - {p}");
                    }
                    ExitCode::from(2)
                }
            }
        }
        Command::Policy(PolicyCommand::Explain {
            config,
            request,
            card,
        }) => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match policy::explain(&config, &request, card.as_deref()).await {
                Ok((text, _)) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: policy explain: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Webhooks(cmd) => webhooks::run(cmd),
        Command::Purge { config, dry_run } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            purge(&config, dry_run).await
        }
        Command::Operators(cmd) => {
            let config = match load_config(cmd.config()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::telemetry::init(config.log.format, "warn");
            match operators::run(&config, cmd).await {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: operators: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Tokens(cmd) => {
            use crate::domain::lifecycle::TokenAction;
            use tokens::TokensCommand as T;
            let (config_path, run): (Option<PathBuf>, _) = match cmd {
                T::Suspend(a) => (a.config.clone(), (Some((TokenAction::Suspend, a)), None)),
                T::Resume(a) => (a.config.clone(), (Some((TokenAction::Resume, a)), None)),
                T::Delete(a) => (a.config.clone(), (Some((TokenAction::Delete, a)), None)),
                T::List {
                    config,
                    card,
                    refresh,
                } => (config, (None, Some((card, refresh)))),
            };
            let config = match load_config(config_path.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::telemetry::init(config.log.format, "warn");
            let result = match run {
                (Some((action, a)), _) => tokens::action(&config, action, &a).await,
                (None, Some((card, refresh))) => tokens::list(&config, &card, refresh).await,
                (None, None) => Ok(String::new()),
            };
            match result {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: tokens: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Cards(CardsCommand::Import {
            config,
            file,
            full,
            max_closed,
        }) => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::telemetry::init(config.log.format, "warn");
            let full = full.then_some(crate::card_file::Full { max_closed });
            let now = crate::clock::Clock::system().now_ms();
            match crate::card_file::import_cards_with(&config, &file, now, full).await {
                Ok(report) => {
                    for c in &report.ignored_columns {
                        eprintln!(
                            "warning: line 1: column '{c}' is not a card-file column; ignored"
                        );
                    }
                    println!(
                        "added {}, updated {}, rejected {}",
                        report.added,
                        report.updated,
                        report.rejected.len()
                    );
                    for (line, reason) in &report.rejected {
                        println!("  line {line}: {reason}");
                    }
                    for line in &report.renewals_not_told {
                        eprintln!(
                            "warning: line {line}: a new expiry, not told to TSH (no updateCard): tsh.encryption_cert is not set"
                        );
                    }
                    if full.is_some() {
                        println!("closed {} (absent from the full file)", report.closed);
                    }
                    println!("{}", crate::card_file::operations_line(&report));
                    if report.rejected.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: cards import: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

async fn purge(config: &Config, dry_run: bool) -> ExitCode {
    let mut problems = Vec::new();
    config.retention.validate(&mut problems);
    if !problems.is_empty() {
        eprint!("{}", ConfigErrors(problems));
        return ExitCode::from(2);
    }
    let store = match crate::store::Store::connect(
        &config.database.url,
        1,
        std::time::Duration::from_millis(config.database.timeout_ms),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: database.url: cannot open the database: {e}");
            return ExitCode::from(2);
        }
    };
    let now = crate::clock::Clock::system().now_ms();
    let result = crate::retention::purge(&store, &config.retention, now, dry_run).await;
    store.close().await;
    match result {
        Ok(purged) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for (table, n) in &purged.tables {
                println!("{table:<11} {verb} {n}", table = table.name());
            }
            if purged.yielded {
                println!("another instance is purging: it does the rest");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: purge: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Every problem of the configuration at once: values that do not parse, then what serving
    // needs besides (settings and policy).
    let (mut config, mut problems) = match Config::read(args.config.as_deref(), std::env::vars()) {
        Ok(read) => read,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    config.server.require_real_channels |= args.require_real_channels;
    if args.print_config && problems.is_empty() {
        print!("{}", config.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    if !args.print_config {
        if let Err(ConfigErrors(more)) = crate::app::check_config(&config) {
            problems.extend(more);
        }
    }
    if !problems.is_empty() {
        eprint!("{}", ConfigErrors(problems));
        return ExitCode::from(2);
    }
    crate::telemetry::init(config.log.format, &config.log.level);
    let app = match crate::app::Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: cannot start: {e:#}");
            return ExitCode::from(2);
        }
    };
    match app.run_until(crate::app::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--rate`: a positive number of enrolments per second.
fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of enrolments per second"
        )),
    }
}
