//! Object storage from a URL: the only way floe touches data files.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Result, StorageError};

/// An object store and the prefix under which floe keeps its files.
pub struct ObjectLocation {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix inside it.
    pub prefix: Path,
    /// Human-readable description for logs.
    pub description: String,
}

/// Opens `url`:
///
/// - `memory://` — in-process, lost at exit (tests);
/// - `s3://bucket/prefix` — S3 or any S3-compatible store, configured by the
///   usual `AWS_*` environment variables (`AWS_ENDPOINT_URL` for MinIO and
///   friends, `AWS_ALLOW_HTTP=true` for plain-HTTP endpoints);
/// - `file:///path` or a plain path — a local directory, created if missing.
pub fn open_object_store(url: &str) -> Result<ObjectLocation> {
    if url == "memory://" || url == "memory:" {
        return Ok(ObjectLocation {
            store: Arc::new(InMemory::new()),
            prefix: Path::from(""),
            description: "memory".into(),
        });
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::InvalidConfig(format!(
                "object store URL {url} names no bucket"
            )));
        }
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()?;
        return Ok(ObjectLocation {
            store: Arc::new(store),
            prefix: Path::from(prefix.trim_matches('/')),
            description: url.to_string(),
        });
    }
    let dir = url.strip_prefix("file://").unwrap_or(url);
    if dir.contains("://") {
        return Err(StorageError::InvalidConfig(format!(
            "unsupported object store URL {url}: use a path, file://, s3:// or memory://"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        StorageError::InvalidConfig(format!("cannot create object store directory {dir}: {e}"))
    })?;
    let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
    Ok(ObjectLocation {
        store: Arc::new(store),
        prefix: Path::from(""),
        description: format!("directory {dir}"),
    })
}
