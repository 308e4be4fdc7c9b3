//! `floe schema ...`: register `.proto` files with their imports, list
//! subjects, show a version, check compatibility and delete, over the
//! registry's Confluent REST API (`--http`).
//!
//! An import that is not one floe provides (`google/protobuf/…`,
//! `buf/validate/…`, `floe/policy/…`) is looked up under `--proto-path`
//! and registered first under a subject named by its import path (the
//! Confluent serializers' default), then referenced at the version it got.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::http::{call, segment};
use super::output::Output;

/// Imports the registry provides itself.
const PROVIDED: &[&str] = &["google/protobuf/", "buf/validate/", "floe/policy/"];

/// How deep imports may nest.
const MAX_DEPTH: usize = 32;

/// The schema subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a `.proto` file under a subject (its imports first).
    Register {
        /// The subject, e.g. `orders-value` for the values of topic orders.
        subject: String,
        /// The `.proto` file.
        file: PathBuf,
        /// Where imports are looked up (repeatable; the file's directory
        /// and the current one by default).
        #[arg(short = 'I', long = "proto-path")]
        proto_path: Vec<PathBuf>,
    },
    /// Every subject, with its versions.
    List,
    /// A subject's schema at a version (the latest by default).
    Get {
        /// The subject.
        subject: String,
        /// The version.
        #[arg(long, default_value = "latest")]
        version: String,
    },
    /// Whether a `.proto` file may be registered as the subject's next
    /// version under its compatibility level.
    Check {
        /// The subject.
        subject: String,
        /// The `.proto` file.
        file: PathBuf,
        /// Where imports are looked up (repeatable).
        #[arg(short = 'I', long = "proto-path")]
        proto_path: Vec<PathBuf>,
    },
    /// Delete a subject, or one version of it (soft, unless --permanent
    /// after a soft delete, as Confluent's registry).
    Delete {
        /// The subject.
        subject: String,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Remove for good (the subject or version must be soft-deleted).
        #[arg(long)]
        permanent: bool,
    },
}

/// Runs one schema command against the registry at `http`.
pub async fn run(http: &str, command: SchemaCommand) -> anyhow::Result<Output> {
    match command {
        SchemaCommand::Register {
            subject,
            file,
            proto_path,
        } => {
            let (body, references) = registration(http, &file, proto_path).await?;
            let path = format!("/subjects/{}/versions", segment(&subject));
            let id = call(http, Method::POST, &path, Some(&body)).await?["id"].clone();
            let found = call(
                http,
                Method::POST,
                &format!("/subjects/{}", segment(&subject)),
                Some(&body),
            )
            .await?;
            let version = found["version"].clone();
            Ok(Output {
                headers: vec!["SUBJECT", "VERSION", "ID", "REFERENCES"],
                rows: vec![vec![
                    subject.clone(),
                    version.to_string(),
                    id.to_string(),
                    references.len().to_string(),
                ]],
                notes: Vec::new(),
                json: json!({"subject": subject, "version": version, "id": id, "references": references}),
            })
        }
        SchemaCommand::List => {
            let subjects = call(http, Method::GET, "/subjects", None).await?;
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for s in subjects.as_array().into_iter().flatten() {
                let Some(name) = s.as_str() else { continue };
                let path = format!("/subjects/{}/versions", segment(name));
                let versions = call(http, Method::GET, &path, None).await?;
                let list: Vec<String> = versions
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(Value::to_string)
                    .collect();
                rows.push(vec![name.to_string(), list.join(",")]);
                out.push(json!({"subject": name, "versions": versions}));
            }
            Ok(Output {
                headers: vec!["SUBJECT", "VERSIONS"],
                rows,
                notes: Vec::new(),
                json: json!(out),
            })
        }
        SchemaCommand::Get { subject, version } => {
            let path = format!(
                "/subjects/{}/versions/{}",
                segment(&subject),
                segment(&version)
            );
            let v = call(http, Method::GET, &path, None).await?;
            let schema = v["schema"].as_str().unwrap_or_default().to_string();
            Ok(Output {
                headers: vec!["SUBJECT", "VERSION", "ID", "TYPE"],
                rows: vec![vec![
                    subject,
                    v["version"].to_string(),
                    v["id"].to_string(),
                    v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
                ]],
                notes: schema.lines().map(str::to_string).collect(),
                json: v,
            })
        }
        SchemaCommand::Check {
            subject,
            file,
            proto_path,
        } => {
            let (body, _) = registration(http, &file, proto_path).await?;
            let path = format!(
                "/compatibility/subjects/{}/versions/latest?verbose=true",
                segment(&subject)
            );
            let answer = call(http, Method::POST, &path, Some(&body)).await?;
            let compatible = answer["is_compatible"].as_bool().unwrap_or(false);
            let reasons: Vec<String> = answer["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
                .collect();
            if !compatible {
                bail!(
                    "{} is not compatible with {subject}: {}",
                    file.display(),
                    if reasons.is_empty() {
                        "the registry gave no reason".to_string()
                    } else {
                        reasons.join("; ")
                    }
                );
            }
            Ok(Output {
                headers: vec!["SUBJECT", "COMPATIBLE"],
                rows: vec![vec![subject.clone(), "yes".into()]],
                notes: Vec::new(),
                json: json!({"subject": subject, "is_compatible": true}),
            })
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let mut path = match &version {
                Some(v) => format!("/subjects/{}/versions/{}", segment(&subject), segment(v)),
                None => format!("/subjects/{}", segment(&subject)),
            };
            if permanent {
                path.push_str("?permanent=true");
            }
            let deleted = call(http, Method::DELETE, &path, None).await?;
            Ok(Output {
                headers: vec!["SUBJECT", "DELETED"],
                rows: vec![vec![subject.clone(), deleted.to_string()]],
                notes: Vec::new(),
                json: json!({"subject": subject, "deleted": deleted, "permanent": permanent}),
            })
        }
    }
}

/// The registry's request body for `file` (its imports registered first)
/// and its references.
async fn registration(
    http: &str,
    file: &Path,
    proto_path: Vec<PathBuf>,
) -> anyhow::Result<(Value, Vec<Value>)> {
    let paths = search_paths(file, proto_path);
    let (schema, references) = prepare(http, file, &paths, 0).await?;
    let body = json!({"schemaType": "PROTOBUF", "schema": schema, "references": references});
    Ok((body, references))
}

/// The directories imports are looked up in.
fn search_paths(file: &Path, mut given: Vec<PathBuf>) -> Vec<PathBuf> {
    if given.is_empty() {
        given.push(
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        );
        given.push(PathBuf::from("."));
    }
    given
}

/// The `import "..."` paths of a `.proto` text.
fn imports(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            let rest = l.strip_prefix("import")?.trim_start();
            let rest = rest
                .strip_prefix("public")
                .or_else(|| rest.strip_prefix("weak"))
                .unwrap_or(rest)
                .trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = &rest[1..];
            Some(inner[..inner.find(quote)?].to_string())
        })
        .collect()
}

/// Reads `file`, registers its imports (recursively, each under its
/// import path), and gives back its text and the references to them.
fn prepare<'a>(
    http: &'a str,
    file: &'a Path,
    paths: &'a [PathBuf],
    depth: usize,
) -> futures::future::BoxFuture<'a, anyhow::Result<(String, Vec<Value>)>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            bail!(
                "imports nest deeper than {MAX_DEPTH} levels (a cycle?) at {}",
                file.display()
            );
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut references = Vec::new();
        for import in imports(&text) {
            if PROVIDED.iter().any(|p| import.starts_with(p)) {
                continue;
            }
            let found = paths
                .iter()
                .map(|d| d.join(&import))
                .find(|p| p.is_file())
                .with_context(|| {
                    format!(
                        "{} imports {import}, which is in none of {} (add -I DIR)",
                        file.display(),
                        paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let (schema, refs) = prepare(http, &found, paths, depth + 1).await?;
            let body = json!({"schemaType": "PROTOBUF", "schema": schema, "references": refs});
            let subject = segment(&import);
            call(
                http,
                Method::POST,
                &format!("/subjects/{subject}/versions"),
                Some(&body),
            )
            .await
            .with_context(|| format!("registering {import}"))?;
            let version = call(
                http,
                Method::POST,
                &format!("/subjects/{subject}"),
                Some(&body),
            )
            .await?["version"]
                .clone();
            references.push(json!({"name": import, "subject": import, "version": version}));
        }
        Ok((text, references))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_from_the_proto_text() {
        let text = r#"
syntax = "proto3";
import "common/money.proto";
import public 'shared/ids.proto';
import weak "old.proto";
import "google/protobuf/timestamp.proto";
// import "commented.proto";
message Order {}
"#;
        assert_eq!(
            imports(text),
            vec![
                "common/money.proto",
                "shared/ids.proto",
                "old.proto",
                "google/protobuf/timestamp.proto"
            ]
        );
    }
}
