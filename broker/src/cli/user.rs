//! `floe user ...`: the users of SASL SCRAM and PLAIN logins, over the
//! HTTP API (`--http`, `/floe/users`): the broker salts and hashes the
//! password, and keeps only SCRAM's keys.

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::http::{call, segment};
use super::output::Output;

/// The user subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Every user, with the mechanisms it can log in with.
    List,
    /// Create a user, or set its password.
    Create {
        /// The user's name.
        name: String,
        /// The password (or FLOE_USER_PASSWORD, which keeps it out of
        /// the shell's history).
        #[arg(long, env = "FLOE_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM-SHA-256 and/or SCRAM-SHA-512 (repeatable; both by
        /// default).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384; the broker's default if not
        /// given).
        #[arg(long)]
        iterations: Option<u32>,
    },
    /// Delete a user and all its credentials.
    Delete {
        /// The user's name.
        name: String,
    },
}

/// Runs one user command against the HTTP API at `http`.
pub async fn run(http: &str, command: UserCommand) -> anyhow::Result<Output> {
    match command {
        UserCommand::List => {
            let users = call(http, Method::GET, "/floe/users", None).await?;
            let mut rows = Vec::new();
            for u in users.as_array().into_iter().flatten() {
                let mechanisms: Vec<String> = u["credentials"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        format!(
                            "{} ({} iterations)",
                            c["mechanism"].as_str().unwrap_or("?"),
                            c["iterations"]
                        )
                    })
                    .collect();
                rows.push(vec![
                    u["name"].as_str().unwrap_or_default().to_string(),
                    mechanisms.join(", "),
                ]);
            }
            Ok(Output {
                headers: vec!["USER", "MECHANISMS"],
                rows,
                notes: Vec::new(),
                json: users,
            })
        }
        UserCommand::Create {
            name,
            password,
            mechanisms,
            iterations,
        } => {
            if password.is_empty() {
                bail!("give the user a password (--password or FLOE_USER_PASSWORD)");
            }
            let mut body = json!({ "password": password });
            if !mechanisms.is_empty() {
                body["mechanisms"] = json!(mechanisms);
            }
            if let Some(i) = iterations {
                body["iterations"] = json!(i);
            }
            let path = format!("/floe/users/{}", segment(&name));
            let set = call(http, Method::PUT, &path, Some(&body)).await?;
            Ok(done(&name, "password set", set))
        }
        UserCommand::Delete { name } => {
            let path = format!("/floe/users/{}", segment(&name));
            let gone = call(http, Method::DELETE, &path, None).await?;
            Ok(done(&name, "deleted", gone))
        }
    }
}

fn done(name: &str, status: &str, json: Value) -> Output {
    Output {
        headers: vec!["USER", "STATUS"],
        rows: vec![vec![name.to_string(), status.to_string()]],
        notes: Vec::new(),
        json,
    }
}
