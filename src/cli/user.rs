//! `shale user create|delete|list`: users' password credentials for SASL/SCRAM and
//! SASL/PLAIN on the Kafka listener. The broker stores them salted (SCRAM), never the
//! password; the password is read from a file (or `-` for standard input), not a flag.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{BrokerArg, Format};

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or set its password.
    Create(CreateArgs),
    /// Delete a user's credentials.
    Delete(DeleteArgs),
    /// List users and their SCRAM mechanisms.
    List(ListArgs),
}

/// `user create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The user name (its principal is `User:NAME`).
    pub name: String,
    /// File whose first line is the password; `-` reads it from standard input.
    #[arg(long)]
    pub password_file: PathBuf,
    /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both).
    #[arg(long = "mechanism")]
    pub mechanisms: Vec<String>,
    /// PBKDF2 iterations, 4096 to 16384.
    #[arg(long, default_value_t = 8192)]
    pub iterations: u32,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `user delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The user name.
    pub name: String,
    /// Only this mechanism's credential (repeatable; default all).
    #[arg(long = "mechanism")]
    pub mechanisms: Vec<String>,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `user list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// The password: the file's first line, without its line ending.
fn password(path: &PathBuf) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).context("reading the password from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?;
    }
    let line = text.lines().next().unwrap_or_default().to_string();
    anyhow::ensure!(!line.is_empty(), "the password in {} is empty", path.display());
    Ok(line)
}

pub(super) async fn run(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create(a) => {
            let password = password(&a.password_file)?;
            let admin = a.broker.client()?.admin();
            admin.set_user_credential(&a.name, &password, a.mechanisms, a.iterations).await?;
            println!("user {} set (principal User:{})", a.name, a.name);
        }
        UserCommand::Delete(a) => {
            a.broker.client()?.admin().delete_user_credential(&a.name, a.mechanisms).await?;
            println!("user {} deleted", a.name);
        }
        UserCommand::List(a) => {
            let users = a.broker.client()?.admin().list_users().await?;
            match a.format {
                Format::Json => {
                    let rows: Vec<serde_json::Value> = users
                        .iter()
                        .map(|u| {
                            serde_json::json!({
                                "user": u.user, "mechanism": u.mechanism, "iterations": u.iterations
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(rows));
                }
                Format::Text => {
                    println!("user\tmechanism\titerations");
                    for u in users {
                        println!("{}\t{}\t{}", u.user, u.mechanism, u.iterations);
                    }
                }
            }
        }
    }
    Ok(())
}
