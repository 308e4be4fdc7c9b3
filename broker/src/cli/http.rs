//! What the CLI asks of a broker's HTTP API (`--http`): what the Kafka
//! protocol does not carry, such as a topic's Iceberg snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

/// A table snapshot as `GET /admin/topics/{name}/snapshots` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    /// Its id.
    pub snapshot_id: i64,
    /// When it was committed (ms since the epoch).
    pub timestamp_ms: i64,
    /// The Iceberg operation (append, overwrite, replace, delete).
    pub operation: String,
    /// The highest offset it holds, per partition.
    pub offsets: BTreeMap<i32, i64>,
}

#[derive(Deserialize)]
struct Snapshots {
    snapshots: Vec<Snapshot>,
}

/// The topic table's latest snapshot (None before the first commit).
pub async fn latest_snapshot(http: &str, topic: &str) -> anyhow::Result<Option<Snapshot>> {
    let url = format!(
        "{}/admin/topics/{}/snapshots",
        http.trim_end_matches('/'),
        segment(topic)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("asking {url} (is the broker's HTTP API there? --http)"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let all: Snapshots = response
        .json()
        .await
        .with_context(|| format!("reading {url}"))?;
    Ok(all.snapshots.into_iter().max_by_key(|s| s.timestamp_ms))
}

/// Sends a JSON request to `path` of the HTTP API and gives back the JSON
/// answer; a refusal fails with the registry's message (Confluent's
/// `{"error_code", "message"}`) or the status.
pub async fn call(
    http: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", http.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut request = client.request(method, &url).header(
        "Accept",
        "application/vnd.schemaregistry.v1+json, application/json",
    );
    if let Some(b) = body {
        request = request
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(b.to_string());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("asking {url} (is the broker's HTTP API there? --http)"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if !status.is_success() {
        // Confluent's registry says `message`; floe's own routes `error`.
        let said = json
            .get("message")
            .or_else(|| json.get("error"))
            .and_then(Value::as_str);
        match said {
            Some(m) => bail!("{m} ({status})"),
            None => bail!("{url} answered {status}: {text}"),
        }
    }
    Ok(json)
}

/// A path segment: subjects may hold `/` and other characters.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
