//! `canvass staff token ...`: the bearer tokens of the staff API.

use anyhow::bail;
use clap::Subcommand;

use crate::domain::{Actor, StaffName, StaffSecret};
use crate::store::{RevokeOutcome, Store};

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Staff API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token; it is printed once and only its hash is kept
    Create {
        /// Who or what uses it: every write made with it is audited under this name
        #[arg(long)]
        name: String,
        /// May read but not change anything
        #[arg(long)]
        read_only: bool,
    },
    /// The tokens issued, revoked or not
    List,
    /// Refuse a token from now on
    Revoke {
        /// The token's name
        name: String,
    },
}

pub async fn run(store: &Store, command: StaffCommand) -> anyhow::Result<()> {
    let StaffCommand::Token { command } = command;
    match command {
        TokenCommand::Create { name, read_only } => {
            let name = StaffName::parse(&name)?;
            let secret = StaffSecret::generate();
            if !store
                .create_staff_token(&name, &secret.hash(), read_only, &Actor::Operator)
                .await?
            {
                bail!("a token named '{name}' exists already (revoked tokens keep their names)");
            }
            // The token alone on stdout, for scripts; how to use it on stderr.
            println!("{}", secret.expose());
            eprintln!(
                "canvass: token '{name}' ({}); it is not shown again. Send it as \
                 'Authorization: Bearer TOKEN'.",
                if read_only { "read-only" } else { "read-write" }
            );
        }
        TokenCommand::List => {
            for token in store.list_staff_tokens().await? {
                let access = if token.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                let state = match token.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{access}\tcreated {}\t{state}",
                    token.name,
                    token.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        TokenCommand::Revoke { name } => {
            let name = StaffName::parse(&name)?;
            match store.revoke_staff_token(&name, &Actor::Operator).await? {
                RevokeOutcome::Revoked => println!("revoked '{name}'"),
                RevokeOutcome::AlreadyRevoked => println!("'{name}' was already revoked"),
                RevokeOutcome::NotFound => bail!("no token named '{name}'"),
            }
        }
    }
    Ok(())
}
