//! The `iceberg` crate's IO on floe's `object_store`: one IO layer for data
//! files, table metadata and manifests.
//!
//! Iceberg names files by absolute URI (`file:///…/topics/t/metadata/…`,
//! `s3://bucket/prefix/…`); the adapter strips the store's root URI to get
//! the object key. A location outside the root is refused, never guessed.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// The object store behind one root URI.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreIo {
    /// Absolute URI of the store's root, ending in `/`.
    root: String,
    /// Not serializable: a deserialized `StoreIo` refuses every call.
    #[serde(skip)]
    store: Option<Arc<dyn ObjectStore>>,
}

impl StoreIo {
    /// The store reached under `root` (an absolute URI such as
    /// `file:///data/` or `s3://bucket/`).
    pub fn new(root: &str, store: Arc<dyn ObjectStore>) -> Self {
        let mut root = root.to_string();
        if !root.ends_with('/') {
            root.push('/');
        }
        StoreIo {
            root,
            store: Some(store),
        }
    }

    /// A `FileIO` for the `iceberg` crate on this store.
    pub fn file_io(&self) -> FileIO {
        FileIOBuilder::new(Arc::new(self.clone())).build()
    }

    /// The absolute URI of an object key.
    pub fn uri(&self, key: &str) -> String {
        format!("{}{}", self.root, key.trim_start_matches('/'))
    }

    /// The object key of an absolute URI.
    pub fn key(&self, uri: &str) -> iceberg::Result<Path> {
        uri.strip_prefix(&self.root).map(Path::from).ok_or_else(|| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("{uri} is outside floe's object store {}", self.root),
            )
        })
    }

    fn store(&self) -> iceberg::Result<&Arc<dyn ObjectStore>> {
        self.store.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "floe's object store IO cannot be deserialized",
            )
        })
    }
}

fn io_error(e: object_store::Error) -> Error {
    Error::new(ErrorKind::Unexpected, "object store").with_source(e)
}

#[typetag::serde(name = "floe-object-store")]
impl StorageFactory for StoreIo {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.clone()))
    }
}

struct Reader {
    store: Arc<dyn ObjectStore>,
    path: Path,
}

#[async_trait]
impl FileRead for Reader {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store
            .get_range(&self.path, range)
            .await
            .map_err(io_error)
    }
}

/// Buffers a whole file and uploads it on close: Iceberg's metadata files
/// are small, and data files are written by floe's own flushes.
struct Writer {
    store: Arc<dyn ObjectStore>,
    path: Path,
    buf: Option<Vec<u8>>,
}

#[async_trait]
impl FileWrite for Writer {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        match &mut self.buf {
            Some(buf) => {
                buf.extend_from_slice(&bs);
                Ok(())
            }
            None => Err(Error::new(ErrorKind::Unexpected, "write after close")),
        }
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let buf = self
            .buf
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "file closed twice"))?;
        self.store
            .put(&self.path, PutPayload::from(buf))
            .await
            .map_err(io_error)?;
        Ok(())
    }
}

#[async_trait]
#[typetag::serde(name = "floe-object-store")]
impl Storage for StoreIo {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        match self.store()?.head(&self.key(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let meta = self
            .store()?
            .head(&self.key(path)?)
            .await
            .map_err(io_error)?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let got = self
            .store()?
            .get(&self.key(path)?)
            .await
            .map_err(io_error)?;
        got.bytes().await.map_err(io_error)
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        Ok(Box::new(Reader {
            store: self.store()?.clone(),
            path: self.key(path)?,
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        self.store()?
            .put(&self.key(path)?, PutPayload::from_bytes(bs))
            .await
            .map_err(io_error)?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        Ok(Box::new(Writer {
            store: self.store()?.clone(),
            path: self.key(path)?,
            buf: Some(Vec::new()),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        match self.store()?.delete(&self.key(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let store = self.store()?.clone();
        let prefix = self.key(path)?;
        let mut listed = store.list(Some(&prefix));
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(io_error)?;
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(p) = paths.next().await {
            Storage::delete(self, &p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        self.key(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        self.key(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn reads_writes_and_refuses_foreign_locations() {
        let io = StoreIo::new("s3://bucket/pre", Arc::new(InMemory::new()));
        let fio = io.file_io();
        let out = fio.new_output("s3://bucket/pre/t/metadata/a.json").unwrap();
        let mut w = out.writer().await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        w.close().await.unwrap();
        let input = fio.new_input("s3://bucket/pre/t/metadata/a.json").unwrap();
        assert_eq!(
            input.read().await.unwrap(),
            Bytes::from_static(b"hello world")
        );
        assert_eq!(input.metadata().await.unwrap().size, 11);
        let r = input.reader().await.unwrap();
        assert_eq!(r.read(6..11).await.unwrap(), Bytes::from_static(b"world"));
        assert!(fio
            .exists("s3://bucket/pre/t/metadata/a.json")
            .await
            .unwrap());
        fio.delete("s3://bucket/pre/t/metadata/a.json")
            .await
            .unwrap();
        assert!(!fio
            .exists("s3://bucket/pre/t/metadata/a.json")
            .await
            .unwrap());
        assert!(fio.new_input("s3://other/t/a.json").is_err());
        assert_eq!(io.key("s3://bucket/pre/x/y").unwrap().as_ref(), "x/y");
    }
}
