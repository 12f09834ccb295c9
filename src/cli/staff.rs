//! `canvass staff ...`: the people who sign in to the console, and the staff API's tokens.

use anyhow::bail;
use clap::Subcommand;

use super::refused;
use crate::app::staff::RevokeOutcome;
use crate::app::{self, Actor, App};
use crate::domain::uk_time;

#[derive(Subcommand)]
pub enum StaffCommand {
    /// The people who sign in to the staff console
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Staff API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a person; prints a link, valid 24 hours, where they set their password
    Create {
        /// The address they sign in with
        #[arg(long)]
        email: String,
        /// Their name, as the console and the audit log show it
        #[arg(long)]
        name: String,
        /// admin (everything, and the staff), organiser (imports, edits, mails, approves)
        /// or viewer (reads)
        #[arg(long)]
        role: String,
        /// Keep them to the contacts of this constituency (code or unique name); repeat for
        /// several; none: every contact
        #[arg(long = "constituency", value_name = "CODE_OR_NAME")]
        constituencies: Vec<String>,
    },
    /// Change a person's role, or the constituencies they are kept to
    Edit {
        /// Their address
        email: String,
        /// admin, organiser or viewer
        #[arg(long)]
        role: Option<String>,
        /// Keep them to the contacts of this constituency (code or unique name) instead of
        /// those they have; repeat for several
        #[arg(long = "constituency", value_name = "CODE_OR_NAME")]
        constituencies: Vec<String>,
        /// Let them see every contact (no longer kept to constituencies)
        #[arg(long, conflicts_with = "constituencies")]
        all_constituencies: bool,
    },
    /// Everyone on the staff, disabled or not
    List,
    /// Sign a person out everywhere and refuse them from now on
    Disable {
        /// Their address
        email: String,
    },
    /// Let a disabled person back in; prints a new link to set their password
    Enable {
        /// Their address
        email: String,
    },
    /// A new link for a person to set their password (forgotten, or the first link expired)
    Link {
        /// Their address
        email: String,
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
        /// The person of the staff it belongs to: it then has their role and constituencies,
        /// is audited under their address, and stops when they are disabled
        #[arg(long = "for", value_name = "EMAIL")]
        owner: Option<String>,
    },
    /// The tokens issued, revoked or not
    List,
    /// Refuse a token from now on
    Revoke {
        /// The token's name
        name: String,
    },
}

pub async fn run(app: &App, command: StaffCommand) -> anyhow::Result<()> {
    match command {
        StaffCommand::User { command } => user(app, command).await,
        StaffCommand::Token { command } => token(app, command).await,
    }
}

async fn user(app: &App, command: UserCommand) -> anyhow::Result<()> {
    let operator = &Actor::Operator;
    match command {
        UserCommand::Create {
            email,
            name,
            role,
            constituencies,
        } => {
            let added = app::staff::add(app, operator, &email, &name, &role, &constituencies)
                .await
                .map_err(refused)?;
            print_link(&added);
        }
        UserCommand::Edit {
            email,
            role,
            constituencies,
            all_constituencies,
        } => {
            let scope = match (all_constituencies, constituencies.is_empty()) {
                (true, _) => Some(Vec::new()),
                (false, true) => None,
                (false, false) => Some(constituencies),
            };
            if role.is_none() && scope.is_none() {
                bail!("say what changes: --role, --constituency or --all-constituencies");
            }
            app::staff::edit(app, operator, &email, role.as_deref(), scope.as_deref())
                .await
                .map_err(refused)?;
            let user = app::staff::list(app, operator)
                .await
                .map_err(refused)?
                .into_iter()
                .find(|user| user.email == email.trim().to_lowercase());
            let names = app::contacts::constituency_names(app)
                .await
                .map_err(refused)?;
            if let Some(user) = user {
                let scope = names
                    .of_scope(&user.scope)
                    .unwrap_or_else(|| "all constituencies".to_owned());
                println!("{}: {}, {scope}", user.email, user.role);
            }
        }
        UserCommand::List => {
            let names = app::contacts::constituency_names(app)
                .await
                .map_err(refused)?;
            for user in app::staff::list(app, operator).await.map_err(refused)? {
                let scope = names
                    .of_scope(&user.scope)
                    .unwrap_or_else(|| "all constituencies".to_owned());
                let state = match (user.disabled_at, user.has_password) {
                    (Some(at), _) => format!("disabled {}", uk_time(at)),
                    (None, false) => "no password yet".to_owned(),
                    (None, true) if user.has_totp => "active, two-factor".to_owned(),
                    (None, true) => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{scope}\t{state}",
                    user.email, user.name, user.role
                );
            }
        }
        UserCommand::Disable { email } => {
            match app::staff::disable(app, operator, &email)
                .await
                .map_err(refused)?
            {
                true => println!("disabled {email}; their sessions and tokens have ended"),
                false => println!("{email} was already disabled"),
            }
        }
        UserCommand::Enable { email } => {
            let added = app::staff::enable(app, operator, &email)
                .await
                .map_err(refused)?;
            print_link(&added);
        }
        UserCommand::Link { email } => {
            let added = app::staff::renew_password_link(app, operator, &email)
                .await
                .map_err(refused)?;
            print_link(&added);
        }
    }
    Ok(())
}

/// The link alone on stdout, for scripts; what to do with it on stderr.
fn print_link(added: &app::staff::Added) {
    println!("{}", added.link);
    eprintln!(
        "canvass: give this link to the person, privately: it sets their password once, until {}; \
         then they sign in at /admin/login.",
        uk_time(added.expires)
    );
}

async fn token(app: &App, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            read_only,
            owner,
        } => {
            let secret =
                app::staff::issue_token(app, &Actor::Operator, &name, read_only, owner.as_deref())
                    .await
                    .map_err(refused)?;
            // The token alone on stdout, for scripts; how to use it on stderr.
            println!("{}", secret.expose());
            eprintln!(
                "canvass: token '{}' ({}); it is not shown again. Send it as \
                 'Authorization: Bearer TOKEN'.",
                name.trim(),
                if read_only { "read-only" } else { "read-write" }
            );
        }
        TokenCommand::List => {
            for token in app::staff::tokens(app, &Actor::Operator).await? {
                let access = if token.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                let state = match token.revoked_at {
                    Some(at) => format!("revoked {}", uk_time(at)),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{access}\tcreated {}\t{state}",
                    token.name,
                    uk_time(token.created_at)
                );
            }
        }
        TokenCommand::Revoke { name } => {
            let name = name.trim();
            match app::staff::revoke_token(app, &Actor::Operator, name)
                .await
                .map_err(refused)?
            {
                RevokeOutcome::Revoked => println!("revoked '{name}'"),
                RevokeOutcome::AlreadyRevoked => println!("'{name}' was already revoked"),
                RevokeOutcome::NotFound => bail!("no token named '{name}'"),
            }
        }
    }
    Ok(())
}
