//! An object store that counts its requests and bytes by kind, as S3 bills
//! them: PUT (a whole object, each part of a multipart upload, and the
//! upload's start and completion), GET of a whole object, ranged GET,
//! HEAD, LIST (one per page of up to 1 000 keys), DELETE and COPY. Ranged
//! reads are made as S3 would get them (nearby ranges coalesced, the rest
//! one request each) whatever the store underneath, so a local directory
//! shows the requests the same run would cost on S3.
//!
//! Each count is also split by what the object is: `data` (a topic's
//! Parquet files), `table` (Iceberg metadata, manifests, manifest lists)
//! or `other`.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    coalesce_ranges, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
    OBJECT_STORE_COALESCE_DEFAULT,
};

/// A kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// PUT: an object, a part, a multipart upload's start or completion.
    Put,
    /// GET of a whole object.
    Get,
    /// GET of a byte range.
    RangedGet,
    /// HEAD.
    Head,
    /// LIST, per page.
    List,
    /// DELETE.
    Delete,
    /// COPY (and the copy of a rename).
    Copy,
}

impl RequestKind {
    /// Every kind, in the order of [`RequestKind::name`].
    pub const ALL: [RequestKind; 7] = [
        RequestKind::Put,
        RequestKind::Get,
        RequestKind::RangedGet,
        RequestKind::Head,
        RequestKind::List,
        RequestKind::Delete,
        RequestKind::Copy,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Put => "put",
            RequestKind::Get => "get",
            RequestKind::RangedGet => "ranged_get",
            RequestKind::Head => "head",
            RequestKind::List => "list",
            RequestKind::Delete => "delete",
            RequestKind::Copy => "copy",
        }
    }
}

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    /// A shared intake object: the flushes of many topics.
    Intake,
    /// A topic's Parquet data file.
    Data,
    /// Iceberg table metadata.
    Table,
    /// Anything else.
    Other,
}

impl ObjectClass {
    /// Every class, in the order of [`ObjectClass::name`].
    pub const ALL: [ObjectClass; 4] = [
        ObjectClass::Intake,
        ObjectClass::Data,
        ObjectClass::Table,
        ObjectClass::Other,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            ObjectClass::Intake => "intake",
            ObjectClass::Data => "data",
            ObjectClass::Table => "table",
            ObjectClass::Other => "other",
        }
    }

    fn of(path: &Path) -> ObjectClass {
        let p = path.as_ref();
        if p.contains("/metadata/") || p.ends_with("/metadata") {
            ObjectClass::Table
        } else if p.starts_with("intake/") || p.contains("/intake/") {
            ObjectClass::Intake
        } else if p.contains("/data/") {
            ObjectClass::Data
        } else {
            ObjectClass::Other
        }
    }
}

const KINDS: usize = RequestKind::ALL.len();
const CLASSES: usize = ObjectClass::ALL.len();

/// Requests and bytes by kind and class.
#[derive(Default)]
pub struct StoreMetrics {
    requests: [[AtomicU64; CLASSES]; KINDS],
    bytes: [[AtomicU64; CLASSES]; KINDS],
}

impl StoreMetrics {
    fn add(&self, kind: RequestKind, class: ObjectClass, requests: u64, bytes: u64) {
        let (k, c) = (kind as usize, class as usize);
        self.requests[k][c].fetch_add(requests, Ordering::Relaxed);
        self.bytes[k][c].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Requests of `kind` on objects of `class` so far.
    pub fn requests(&self, kind: RequestKind, class: ObjectClass) -> u64 {
        self.requests[kind as usize][class as usize].load(Ordering::Relaxed)
    }

    /// Bytes sent (PUT, COPY) or received (GET) by requests of `kind` on
    /// objects of `class` so far.
    pub fn bytes(&self, kind: RequestKind, class: ObjectClass) -> u64 {
        self.bytes[kind as usize][class as usize].load(Ordering::Relaxed)
    }
}

/// The counting wrapper.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<StoreMetrics>,
}

impl fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreMetrics")
    }
}

impl MeteredStore {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<StoreMetrics>) -> MeteredStore {
        MeteredStore { inner, metrics }
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

/// S3 answers a LIST with up to this many keys.
const LIST_PAGE: u64 = 1000;

fn metered_list(
    stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
    metrics: Arc<StoreMetrics>,
    class: ObjectClass,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    // The first page is a request even when it is empty.
    metrics.add(RequestKind::List, class, 1, 0);
    let mut seen = 0u64;
    stream
        .inspect(move |item| {
            if item.is_ok() {
                seen += 1;
                if seen > 1 && (seen - 1).is_multiple_of(LIST_PAGE) {
                    metrics.add(RequestKind::List, class, 1, 0);
                }
            }
        })
        .boxed()
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let size = payload.content_length() as u64;
        self.metrics
            .add(RequestKind::Put, ObjectClass::of(location), 1, size);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let class = ObjectClass::of(location);
        self.metrics.add(RequestKind::Put, class, 1, 0);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(MeteredUpload {
            inner,
            metrics: self.metrics.clone(),
            class,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let class = ObjectClass::of(location);
        let kind = if options.head {
            RequestKind::Head
        } else if options.range.is_some() {
            RequestKind::RangedGet
        } else {
            RequestKind::Get
        };
        let result = self.inner.get_opts(location, options).await?;
        let size = if kind == RequestKind::Head {
            0
        } else {
            result.range.end - result.range.start
        };
        self.metrics.add(kind, class, 1, size);
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // As S3 would be asked: coalesced ranges, a request each.
        let class = ObjectClass::of(location);
        let requests = AtomicU64::new(0);
        let bytes = AtomicU64::new(0);
        let out = coalesce_ranges(
            ranges,
            |range| {
                requests.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(range.end - range.start, Ordering::Relaxed);
                let one = [range];
                let inner = self.inner.clone();
                let location = location.clone();
                async move {
                    let mut got = inner.get_ranges(&location, &one).await?;
                    Ok::<_, object_store::Error>(got.pop().unwrap_or_default())
                }
            },
            OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await?;
        self.metrics.add(
            RequestKind::RangedGet,
            class,
            requests.into_inner(),
            bytes.into_inner(),
        );
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let metrics = self.metrics.clone();
        let counted = locations
            .inspect(move |l| {
                if let Ok(path) = l {
                    metrics.add(RequestKind::Delete, ObjectClass::of(path), 1, 0);
                }
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let class = prefix.map_or(ObjectClass::Other, ObjectClass::of);
        metered_list(self.inner.list(prefix), self.metrics.clone(), class)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let class = prefix.map_or(ObjectClass::Other, ObjectClass::of);
        metered_list(
            self.inner.list_with_offset(prefix, offset),
            self.metrics.clone(),
            class,
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let class = prefix.map_or(ObjectClass::Other, ObjectClass::of);
        let result = self.inner.list_with_delimiter(prefix).await?;
        let keys = (result.objects.len() + result.common_prefixes.len()) as u64;
        self.metrics
            .add(RequestKind::List, class, keys.div_ceil(LIST_PAGE).max(1), 0);
        Ok(result)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.metrics
            .add(RequestKind::Copy, ObjectClass::of(to), 1, 0);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        // S3 has no rename: a copy and a delete.
        self.metrics
            .add(RequestKind::Copy, ObjectClass::of(to), 1, 0);
        self.metrics
            .add(RequestKind::Delete, ObjectClass::of(from), 1, 0);
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload whose parts and completion count as PUTs.
#[derive(Debug)]
struct MeteredUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: Arc<StoreMetrics>,
    class: ObjectClass,
}

#[async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.metrics.add(
            RequestKind::Put,
            self.class,
            1,
            data.content_length() as u64,
        );
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.metrics.add(RequestKind::Put, self.class, 1, 0);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.metrics.add(RequestKind::Delete, self.class, 1, 0);
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn requests_and_bytes_are_counted_as_s3_bills_them() {
        let metrics = Arc::new(StoreMetrics::default());
        let store = MeteredStore::new(Arc::new(InMemory::new()), metrics.clone());
        let data = Path::from("topics/t-1/data/day=1/a.parquet");
        let table = Path::from("topics/t-1/metadata/v1.metadata.json");
        store.put(&data, vec![7u8; 10_000].into()).await.unwrap();
        store.put(&table, vec![1u8; 10].into()).await.unwrap();
        assert_eq!(
            store.get(&data).await.unwrap().bytes().await.unwrap().len(),
            10_000
        );
        // Ranges within 1 MiB of each other are one request, as S3 is asked.
        let got = store
            .get_ranges(&data, &[0..10, 20..30, 9_000..9_100])
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [10, 10, 100]
        );
        let listed: Vec<_> = store
            .list(Some(&Path::from("topics")))
            .collect::<Vec<_>>()
            .await;
        assert_eq!(listed.len(), 2);
        store.delete(&data).await.unwrap();

        use ObjectClass::*;
        use RequestKind::*;
        assert_eq!(metrics.requests(Put, Data), 1);
        assert_eq!(metrics.bytes(Put, Data), 10_000);
        assert_eq!(metrics.requests(Put, Table), 1);
        assert_eq!(metrics.requests(Get, Data), 1);
        assert_eq!(metrics.bytes(Get, Data), 10_000);
        assert_eq!(metrics.requests(RangedGet, Data), 1);
        assert_eq!(metrics.requests(List, Other), 1);
        assert_eq!(metrics.requests(Delete, Data), 1);
    }
}
