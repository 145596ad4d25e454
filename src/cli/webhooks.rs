//! `issuer-gateway webhooks`: what an operator needs to set up `[[webhooks]]` entries.

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Print a new signing secret for a `[[webhooks]]` entry: whsec_ + base64 of 32 random bytes.
    ///
    /// Put it in the entry's `secret` (or first in `secrets = [new, old]` during a rotation: every
    /// secret listed signs, so the receiver may switch at its own pace) and give the same value
    /// to the receiver, which verifies the webhook-signature header with it (docs/webhooks.md).
    /// Nothing is written anywhere: keep it as you keep the configuration's other secrets.
    NewSecret,
}

pub fn run(cmd: WebhooksCommand) -> ExitCode {
    match cmd {
        WebhooksCommand::NewSecret => {
            let secret = crate::config::new_secret(crate::data_keys::random_bytes::<32>());
            println!("{secret}");
            ExitCode::SUCCESS
        }
    }
}
