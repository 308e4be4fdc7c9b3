//! What the CLI asks of a broker's HTTP API (`--http`): what the Kafka
//! protocol does not carry, such as a topic's Iceberg snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

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
        encode(topic)
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

/// A topic name in a URL path: Kafka names are ASCII letters, digits,
/// `.`, `_` and `-`, of which only `.` needs care (`..`).
fn encode(topic: &str) -> String {
    topic.replace('.', "%2E")
}
