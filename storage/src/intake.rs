//! The shared intake: one object per round holding the flushes of every
//! topic, so the number of object writes follows the flush interval and
//! not the number of topics.
//!
//! Each topic still encodes its own flush as a complete Parquet file (its
//! own columns, typed or raw); a *round* concatenates the flushes of many
//! topics into one object. A flush's place in it is a *chunk*, named
//! `<object>#<byte offset>` wherever a file path is expected (the file's
//! size is the chunk's length), so the segment index, the footer cache,
//! retention and compaction need no second kind of file. A chunk is never
//! in an Iceberg table: the topic's rows move into the topic's own files
//! (`log/intake_move.rs`) at its table commit interval, and the intake
//! object is deleted when no chunk of it is left.
//!
//! When a round is uploaded: every flush that joined it has handed in its
//! bytes (or given up), and a linger has passed since the previous upload
//! began; or it holds [`ROUND_MAX_BYTES`]; or its oldest flush has waited
//! [`ROUND_MAX_WAIT`] (a stalled encoder does not hold up everyone for
//! long). Flushers start on broker-wide ticks of the linger, so one round
//! gathers the flushes of one tick and a broker writes about one object per
//! linger, whatever the number of topics and partitions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::error::{Result, StorageError};
use crate::intake_cache::IntakeCache;

/// A round is uploaded once it holds this much, without waiting.
pub const ROUND_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A round is uploaded once its oldest flush has waited this long, even if
/// flushes that joined it have not handed in their bytes yet.
pub const ROUND_MAX_WAIT: Duration = Duration::from_secs(1);

/// The directory of intake objects, under the store's prefix.
pub const INTAKE_DIR: &str = "intake";

/// Where a chunk sits: the object and the byte offset of its Parquet file.
/// A path without `#` is a whole file (offset 0).
pub fn split_chunk(path: &str) -> (&str, u64) {
    match path.rsplit_once('#') {
        Some((object, offset)) => match offset.parse() {
            Ok(offset) => (object, offset),
            Err(_) => (path, 0),
        },
        None => (path, 0),
    }
}

/// Whether a file path names a chunk of an intake object.
pub fn is_chunk(path: &str) -> bool {
    split_chunk(path).0.len() != path.len()
}

/// The broker that wrote an intake object, from its name
/// (`<millis>-b<broker>-<uuid>.chunks`); `None` for a name without one
/// (written before objects were named by their writer).
pub fn writer(object: &str) -> Option<i32> {
    let name = object.rsplit('/').next()?;
    let rest = name.split_once("-b")?.1;
    rest.split_once('-')?.0.parse().ok()
}

/// The path of the chunk at `offset` of `object`.
fn chunk_path(object: &str, offset: u64) -> String {
    format!("{object}#{offset}")
}

/// A flush's bytes, placed in an uploaded intake object.
pub struct Chunk {
    /// The chunk's path (`<object>#<offset>`).
    pub path: String,
    /// Its length: the size of its Parquet file.
    pub len: u64,
    /// Held until the flush's commit is settled (see [`Intake::settled`]).
    pub claim: Claim,
}

/// Keeps an intake object from being deleted while a flush that placed a
/// chunk in it has not finished committing.
pub struct Claim {
    shared: Arc<Shared>,
    object: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = lock(&self.shared.unsettled);
        if let Some(n) = open.get_mut(&self.object) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.object);
            }
        }
    }
}

/// A flush's place in the next round, taken before it encodes, so the
/// round waits for its bytes. Dropping it unsubmitted gives the place up.
pub struct Ticket {
    id: u64,
    tx: mpsc::UnboundedSender<Msg>,
    submitted: bool,
}

impl Ticket {
    /// Hands in the flush's encoded bytes; resolves when the round holding
    /// them is uploaded.
    pub async fn submit(mut self, bytes: Bytes) -> Result<Chunk> {
        self.submitted = true;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Submit {
                id: self.id,
                bytes,
                reply,
            })
            .map_err(|_| StorageError::FlushFailed("the intake stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::FlushFailed("the intake stopped".into()))?
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.submitted {
            let _ = self.tx.send(Msg::Abandon(self.id));
        }
    }
}

enum Msg {
    Join(u64),
    Submit {
        id: u64,
        bytes: Bytes,
        reply: oneshot::Sender<Result<Chunk>>,
    },
    Abandon(u64),
}

struct Shared {
    /// Intake objects with chunks whose flush has not settled, and how many.
    unsettled: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The broker's intake (see the module documentation).
pub struct Intake {
    tx: mpsc::UnboundedSender<Msg>,
    next: AtomicU64,
    shared: Arc<Shared>,
}

impl Intake {
    /// Starts the intake's uploader: rounds go to `<prefix>/intake/`, at
    /// most one per `linger` unless full; each object written is kept in
    /// `cache`.
    pub(crate) fn start(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        linger: Duration,
        cache: Arc<IntakeCache>,
        writer: i32,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            unsettled: Mutex::new(HashMap::new()),
        });
        let dir = if prefix.as_ref().is_empty() {
            INTAKE_DIR.to_string()
        } else {
            format!("{prefix}/{INTAKE_DIR}")
        };
        tokio::spawn(run(
            rx,
            Uploader {
                store,
                dir,
                writer,
                shared: shared.clone(),
                cache,
            },
            linger,
        ));
        Intake {
            tx,
            next: AtomicU64::new(0),
            shared,
        }
    }

    /// A place in the next round.
    pub fn join(&self) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Join(id));
        Ticket {
            id,
            tx: self.tx.clone(),
            submitted: false,
        }
    }

    /// Whether every flush that placed a chunk in `object` has settled
    /// (committed or failed) on this broker: only then can the metadata
    /// store's answer to "does any chunk of it remain" not change.
    pub fn settled(&self, object: &str) -> bool {
        !lock(&self.shared.unsettled).contains_key(object)
    }
}

/// The flushes gathered for the next upload.
#[derive(Default)]
struct Round {
    /// Tickets that joined and have not handed in their bytes.
    waiting: HashSet<u64>,
    parts: Vec<(Bytes, oneshot::Sender<Result<Chunk>>)>,
    bytes: usize,
    /// When the first part arrived.
    since: Option<Instant>,
}

impl Round {
    /// Whether the round should go now, or else when to look again.
    fn due(
        &self,
        last_upload: Option<Instant>,
        linger: Duration,
    ) -> std::result::Result<(), Option<Instant>> {
        let Some(since) = self.since else {
            return Err(None);
        };
        if self.bytes >= ROUND_MAX_BYTES || since.elapsed() >= ROUND_MAX_WAIT {
            return Ok(());
        }
        let stalled_at = since + ROUND_MAX_WAIT;
        if !self.waiting.is_empty() {
            return Err(Some(stalled_at));
        }
        match last_upload.map(|t| t + linger) {
            Some(next) if next > Instant::now() => Err(Some(next.min(stalled_at))),
            _ => Ok(()),
        }
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Msg>, uploader: Uploader, linger: Duration) {
    let uploader = Arc::new(uploader);
    let mut round = Round::default();
    let mut last_upload: Option<Instant> = None;
    loop {
        let wake = match round.due(last_upload, linger) {
            Ok(()) => {
                last_upload = Some(Instant::now());
                let parts = std::mem::take(&mut round.parts);
                let waiting = std::mem::take(&mut round.waiting);
                round = Round {
                    waiting,
                    ..Round::default()
                };
                let u = uploader.clone();
                tokio::spawn(async move { u.upload(parts).await });
                continue;
            }
            Err(wake) => wake,
        };
        let msg = match wake {
            Some(at) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(at.into()) => continue,
            },
            None => rx.recv().await,
        };
        match msg {
            None => return,
            Some(Msg::Join(id)) => {
                round.waiting.insert(id);
            }
            Some(Msg::Abandon(id)) => {
                round.waiting.remove(&id);
            }
            Some(Msg::Submit { id, bytes, reply }) => {
                round.waiting.remove(&id);
                round.bytes += bytes.len();
                round.since.get_or_insert_with(Instant::now);
                round.parts.push((bytes, reply));
            }
        }
    }
}

struct Uploader {
    store: Arc<dyn ObjectStore>,
    dir: String,
    /// This broker's id, named in every object (see [`writer`]).
    writer: i32,
    shared: Arc<Shared>,
    cache: Arc<IntakeCache>,
}

impl Uploader {
    /// Writes one object holding every part and answers each with its chunk.
    async fn upload(&self, parts: Vec<(Bytes, oneshot::Sender<Result<Chunk>>)>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let object = format!(
            "{}/{now:013}-b{}-{}.chunks",
            self.dir,
            self.writer,
            uuid::Uuid::new_v4()
        );
        let total: usize = parts.iter().map(|(b, _)| b.len()).sum();
        let mut body = BytesMut::with_capacity(total);
        let mut offsets = Vec::with_capacity(parts.len());
        for (b, _) in &parts {
            offsets.push(body.len() as u64);
            body.extend_from_slice(b);
        }
        let started = Instant::now();
        let body = body.freeze();
        let put = self
            .store
            .put(
                &Path::from(object.as_str()),
                PutPayload::from_bytes(body.clone()),
            )
            .await;
        if let Err(e) = put {
            warn!(%object, error = %e, "intake upload failed; its flushes fail");
            let reason = e.to_string();
            for (_, reply) in parts {
                let _ = reply.send(Err(StorageError::FlushFailed(format!(
                    "intake upload: {reason}"
                ))));
            }
            return;
        }
        debug!(%object, chunks = parts.len(), bytes = total, ms = started.elapsed().as_millis() as u64, "intake object written");
        self.cache.keep(&object, body);
        *lock(&self.shared.unsettled)
            .entry(object.clone())
            .or_insert(0) += parts.len();
        for ((b, reply), offset) in parts.into_iter().zip(offsets) {
            let chunk = Chunk {
                path: chunk_path(&object, offset),
                len: b.len() as u64,
                claim: Claim {
                    shared: self.shared.clone(),
                    object: object.clone(),
                },
            };
            // A flush that stopped waiting drops the chunk, and with it
            // the claim.
            let _ = reply.send(Ok(chunk));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Gauge;
    use object_store::memory::InMemory;

    #[test]
    fn chunk_paths_name_their_object_and_offset() {
        assert_eq!(
            split_chunk("p/intake/1-a.chunks#4096"),
            ("p/intake/1-a.chunks", 4096)
        );
        assert_eq!(
            split_chunk("t/data/day=1/1.parquet"),
            ("t/data/day=1/1.parquet", 0)
        );
        assert!(is_chunk("intake/x.chunks#0"));
        assert!(!is_chunk("t/data/day=1/1.parquet"));
        assert!(!is_chunk("odd#name"));
    }

    #[test]
    fn an_object_names_its_writer() {
        assert_eq!(writer("p/intake/0001733000000000-b7-9f2c.chunks"), Some(7));
        assert_eq!(
            writer("p-b3/intake/0001733000000000-b12-9f2c.chunks"),
            Some(12)
        );
        assert_eq!(writer("p/intake/0001733000000000-9f2c.chunks"), None);
    }

    #[tokio::test]
    async fn one_object_per_round_whatever_the_number_of_flushes() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let intake = Intake::start(
            store.clone(),
            Path::from("p"),
            Duration::from_millis(50),
            Arc::new(IntakeCache::new(Gauge::new(0))),
            7,
        );
        let tickets: Vec<Ticket> = (0..100).map(|_| intake.join()).collect();
        let mut waits = Vec::new();
        for (i, t) in tickets.into_iter().enumerate() {
            // One gives up its place: the round does not wait for it.
            if i == 7 {
                drop(t);
                continue;
            }
            waits.push(tokio::spawn(t.submit(Bytes::from(vec![i as u8; 10 + i]))));
        }
        let mut chunks = Vec::new();
        for w in waits {
            chunks.push(w.await.unwrap().unwrap());
        }
        let objects: HashSet<&str> = chunks.iter().map(|c| split_chunk(&c.path).0).collect();
        assert_eq!(objects.len(), 1, "one object for the round");
        let object = *objects.iter().next().unwrap();
        assert!(object.starts_with("p/intake/"));
        assert!(!intake.settled(object));
        // Each chunk reads back as the bytes handed in.
        for c in &chunks {
            let (obj, offset) = split_chunk(&c.path);
            let got = store
                .get_range(&Path::from(obj), offset..offset + c.len)
                .await
                .unwrap();
            let i = got[0] as usize;
            assert_eq!(got.as_ref(), vec![i as u8; 10 + i].as_slice());
        }
        let object = object.to_string();
        drop(chunks);
        assert!(intake.settled(&object));
    }

    #[tokio::test]
    async fn rounds_are_spaced_by_the_linger() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let linger = Duration::from_millis(100);
        let intake = Intake::start(
            store.clone(),
            Path::from(""),
            linger,
            Arc::new(IntakeCache::new(Gauge::new(0))),
            7,
        );
        let started = Instant::now();
        let mut objects = HashSet::new();
        while started.elapsed() < Duration::from_millis(1000) {
            let c = intake
                .join()
                .submit(Bytes::from_static(b"x"))
                .await
                .unwrap();
            objects.insert(split_chunk(&c.path).0.to_string());
        }
        // Flushes came back to back; objects did not.
        assert!(objects.len() <= 11, "{} objects in 1 s", objects.len());
        assert!(objects.len() >= 5, "{} objects in 1 s", objects.len());
    }
}
