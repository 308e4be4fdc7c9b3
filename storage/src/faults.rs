//! A fault-injecting wrapper around a real object store, for the
//! consistency checker and the tests (and the rates of the metadata
//! store's, `meta/faulty.rs`).
//!
//! Why: the durability promise ("nothing acknowledged is ever lost") has to
//! hold when object storage misbehaves the way S3 does: requests that fail,
//! requests that fail after the write happened, and requests that stall.
//! [`FaultyStore`] sits between floe and the real store and does exactly
//! that, at rates set at run time through a [`Faults`] handle (the broker's
//! `--fault-injection` flag exposes it at `/admin/faults`). With every rate
//! at zero it only forwards.
//!
//! Tests can also hold writes whose key contains a pattern
//! ([`Faults::hold_puts`]) to stop a flush or a compaction between its
//! upload and its commit, which makes races reproducible.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::sync::lock;

/// Fault rates, each a probability per request in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    /// A write fails. Half of these fail after the object was written (the
    /// client never hears that it worked), half before.
    pub put_error: f64,
    /// A read (get, ranged get, head) fails.
    pub get_error: f64,
    /// A delete fails.
    pub delete_error: f64,
    /// A listing fails.
    pub list_error: f64,
    /// A request of any kind first waits `stall_ms`.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_ms: u64,
    /// A metadata-store commit of flushes succeeds but its reply is lost
    /// (as when the connection to PostgreSQL drops during COMMIT).
    pub commit_reply_lost: f64,
}

impl FaultRates {
    /// Refuses rates outside [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        for (name, r) in [
            ("put_error", self.put_error),
            ("get_error", self.get_error),
            ("delete_error", self.delete_error),
            ("list_error", self.list_error),
            ("stall", self.stall),
            ("commit_reply_lost", self.commit_reply_lost),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be a probability in [0, 1], got {r}"));
            }
        }
        if self.stall_ms > 60_000 {
            return Err(format!(
                "stall_ms must be at most 60000, got {}",
                self.stall_ms
            ));
        }
        Ok(())
    }
}

/// How many faults were injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Writes failed before writing.
    pub put_errors_before: u64,
    /// Writes failed after writing.
    pub put_errors_after: u64,
    /// Reads failed.
    pub get_errors: u64,
    /// Deletes failed.
    pub delete_errors: u64,
    /// Listings failed.
    pub list_errors: u64,
    /// Requests stalled.
    pub stalls: u64,
    /// Metadata commits whose reply was lost.
    pub commit_replies_lost: u64,
}

#[derive(Debug, Default)]
struct FaultState {
    rates: FaultRates,
    counts: FaultCounts,
    /// Key patterns whose writes wait until released.
    held: Vec<String>,
}

/// The shared handle that sets the faults of a [`FaultyStore`].
#[derive(Debug, Clone)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    /// Bumped whenever a hold is released.
    released: Arc<watch::Sender<u64>>,
    /// Bumped whenever a write starts waiting on a hold.
    waiting: Arc<watch::Sender<u64>>,
    seed: Arc<AtomicU64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        Faults {
            state: Arc::new(Mutex::new(FaultState::default())),
            released: Arc::new(watch::channel(0).0),
            waiting: Arc::new(watch::channel(0).0),
            seed: Arc::new(AtomicU64::new(seed)),
        }
    }

    /// The current rates.
    pub fn rates(&self) -> FaultRates {
        lock(&self.state).rates
    }

    /// Sets the rates (checked first).
    pub fn set_rates(&self, rates: FaultRates) -> Result<(), String> {
        rates.validate()?;
        lock(&self.state).rates = rates;
        Ok(())
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        lock(&self.state).counts
    }

    /// Writes to keys containing `pattern` wait until
    /// [`Faults::release`] is called for it.
    pub fn hold_puts(&self, pattern: &str) {
        lock(&self.state).held.push(pattern.to_string());
    }

    /// Lets held writes to keys containing `pattern` go on.
    pub fn release(&self, pattern: &str) {
        lock(&self.state).held.retain(|p| p != pattern);
        self.released.send_modify(|n| *n += 1);
    }

    /// Waits until some write is held.
    pub async fn until_held(&self) {
        let mut rx = self.waiting.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
        self.waiting.send_replace(0);
    }

    /// A uniform draw in [0, 1) (xorshift; faults need no better).
    fn draw(&self) -> f64 {
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether a metadata commit's reply is to be lost now (counted).
    pub(crate) fn lose_commit_reply(&self) -> bool {
        let lost = self.hit(self.rates().commit_reply_lost);
        if lost {
            lock(&self.state).counts.commit_replies_lost += 1;
        }
        lost
    }

    fn hit(&self, rate: f64) -> bool {
        rate > 0.0 && self.draw() < rate
    }

    async fn maybe_stall(&self) {
        let rates = self.rates();
        if self.hit(rates.stall) {
            lock(&self.state).counts.stalls += 1;
            tokio::time::sleep(Duration::from_millis(rates.stall_ms)).await;
        }
    }

    async fn wait_if_held(&self, location: &Path) {
        let key = location.as_ref();
        let mut released = self.released.subscribe();
        loop {
            let held = lock(&self.state).held.iter().any(|p| key.contains(p));
            if !held {
                return;
            }
            self.waiting.send_modify(|n| *n += 1);
            if released.changed().await.is_err() {
                return;
            }
        }
    }

    fn injected(
        &self,
        op: &'static str,
        count: impl FnOnce(&mut FaultCounts),
    ) -> object_store::Error {
        count(&mut lock(&self.state).counts);
        object_store::Error::Generic {
            store: "fault-injection",
            source: format!("injected {op} failure").into(),
        }
    }
}

/// An object store that fails and stalls as its [`Faults`] say.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Faults,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Faults) -> Self {
        FaultyStore { inner, faults }
    }

    /// The error a listing fails with, if this one is to fail.
    fn list_fault(&self) -> Option<object_store::Error> {
        self.faults
            .hit(self.faults.rates().list_error)
            .then(|| self.faults.injected("list", |c| c.list_errors += 1))
    }

    async fn before_read(&self) -> object_store::Result<()> {
        self.faults.maybe_stall().await;
        if self.faults.hit(self.faults.rates().get_error) {
            return Err(self.faults.injected("get", |c| c.get_errors += 1));
        }
        Ok(())
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.faults.wait_if_held(location).await;
        self.faults.maybe_stall().await;
        let f = &self.faults;
        if f.hit(f.rates().put_error) {
            if f.draw() < 0.5 {
                return Err(f.injected("put", |c| c.put_errors_before += 1));
            }
            self.inner.put_opts(location, payload, opts).await?;
            return Err(f.injected("put", |c| c.put_errors_after += 1));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.faults.wait_if_held(location).await;
        self.faults.maybe_stall().await;
        if self.faults.hit(self.faults.rates().put_error) {
            return Err(self.faults.injected("put", |c| c.put_errors_before += 1));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.before_read().await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.before_read().await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let faults = self.faults.clone();
        let inner = self.inner.clone();
        locations
            .then(move |location| {
                let (faults, inner) = (faults.clone(), inner.clone());
                async move {
                    let location = location?;
                    faults.maybe_stall().await;
                    if faults.hit(faults.rates().delete_error) {
                        return Err(faults.injected("delete", |c| c.delete_errors += 1));
                    }
                    let one = futures::stream::once(async move { Ok(location) }).boxed();
                    let mut out = inner.delete_stream(one);
                    match out.next().await {
                        Some(r) => r,
                        None => Err(object_store::Error::Generic {
                            store: "fault-injection",
                            source: "the store answered no delete".into(),
                        }),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.list_fault() {
            Some(e) => futures::stream::once(async move { Err(e) }).boxed(),
            None => self.inner.list(prefix),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.list_fault() {
            Some(e) => futures::stream::once(async move { Err(e) }).boxed(),
            None => self.inner.list_with_offset(prefix, offset),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        if let Some(e) = self.list_fault() {
            return Err(e);
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.faults.maybe_stall().await;
        if self.faults.hit(self.faults.rates().put_error) {
            return Err(self.faults.injected("copy", |c| c.put_errors_before += 1));
        }
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.faults.maybe_stall().await;
        if self.faults.hit(self.faults.rates().put_error) {
            return Err(self.faults.injected("rename", |c| c.put_errors_before += 1));
        }
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn rates_decide_failures_and_zero_forwards() {
        let faults = Faults::new();
        let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone());
        let p = Path::from("a/b");
        store.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), "x");

        faults
            .set_rates(FaultRates {
                get_error: 1.0,
                put_error: 1.0,
                ..FaultRates::default()
            })
            .unwrap();
        assert!(store.get(&p).await.is_err());
        for _ in 0..40 {
            assert!(store.put(&p, PutPayload::from_static(b"y")).await.is_err());
        }
        let c = faults.counts();
        assert_eq!(c.get_errors, 1);
        assert_eq!(c.put_errors_before + c.put_errors_after, 40);
        assert!(c.put_errors_after > 0 && c.put_errors_before > 0);
        assert!(faults
            .set_rates(FaultRates {
                stall: 2.0,
                ..FaultRates::default()
            })
            .is_err());
    }

    #[tokio::test]
    async fn a_held_write_waits_for_its_release() {
        let faults = Faults::new();
        let store = Arc::new(FaultyStore::new(Arc::new(InMemory::new()), faults.clone()));
        faults.hold_puts("-compacted");
        let s = store.clone();
        let put = tokio::spawn(async move {
            s.put(&Path::from("x-compacted"), PutPayload::from_static(b"z"))
                .await
        });
        faults.until_held().await;
        assert!(!put.is_finished());
        store
            .put(&Path::from("other"), PutPayload::from_static(b"o"))
            .await
            .unwrap();
        faults.release("-compacted");
        put.await.unwrap().unwrap();
    }
}
