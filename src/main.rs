use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = issuer_gateway::cli::Cli::parse();
    issuer_gateway::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(issuer_gateway::cli::run(cli))
}
