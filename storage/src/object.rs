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
    /// Absolute URI of the store's root, as engines name files in it
    /// (`file:///abs/dir/`, `s3://bucket/`).
    pub root_uri: String,
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
            root_uri: "memory:///".into(),
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
            root_uri: format!("s3://{bucket}/"),
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
    let absolute = std::fs::canonicalize(dir).map_err(|e| {
        StorageError::InvalidConfig(format!("cannot resolve object store directory {dir}: {e}"))
    })?;
    let root_uri = url::Url::from_directory_path(&absolute)
        .map_err(|_| {
            StorageError::InvalidConfig(format!(
                "object store directory {} is not an absolute path",
                absolute.display()
            ))
        })?
        .to_string();
    let store = LocalFileSystem::new_with_prefix(&absolute)?.with_automatic_cleanup(true);
    Ok(ObjectLocation {
        store: Arc::new(store),
        prefix: Path::from(""),
        description: format!("directory {}", absolute.display()),
        root_uri,
    })
}
