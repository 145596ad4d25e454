//! The subcommands.

use crate::config::Config;
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
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (default: ./issuer-gateway.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
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
pub enum CardsCommand {
    /// Insert or update cards from a CSV card file (see docs/card-file.md).
    ///
    /// Prints how many cards were added, updated and rejected, with each rejected line's number
    /// and reason (never its PAN). Exits 1 when any line was rejected.
    Import {
        /// Configuration file (default: ./issuer-gateway.toml when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The card file.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
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
        Command::Cards(CardsCommand::Import { config, file }) => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::telemetry::init(&config.log.format, "warn");
            match crate::keys::import_cards(&config, &file).await {
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

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.print_config {
        print!("{}", config.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = config.validate_for_serve() {
        eprint!("{e}");
        return ExitCode::from(2);
    }
    crate::telemetry::init(&config.log.format, &config.log.level);
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
