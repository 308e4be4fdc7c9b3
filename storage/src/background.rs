//! Work that can wait: the encode of a rewrite (compaction, the intake
//! move) runs on a thread of its own at a lower scheduling priority, so on
//! a busy machine the kernel serves produce and fetch first and the
//! rewrite takes the CPU they leave. Kafka throttles its log cleaner for
//! the same reason (`log.cleaner.io.max.bytes.per.second`); a priority
//! costs nothing when the machine is idle, where a rate would still slow
//! the rewrite down.

use crate::error::{BackendError, Result};

/// The nice value of a rewrite's thread (0 is the broker's; 19 the lowest).
const NICE: libc::c_int = 10;

/// Runs `f` on a new thread at [`NICE`] and waits for its result.
pub async fn run<T, F>(what: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("floe-{what}"))
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| BackendError::Background(format!("{what}: starting its thread: {e}")))?;
    rx.await
        .map_err(|_| BackendError::Background(format!("{what}: the thread panicked")))?
}

/// Runs a CPU-heavy step of async work (a walk over every segment of a
/// topic) where it does not hold up the runtime: on a multi-threaded
/// runtime the worker hands its other tasks to another thread for the
/// duration, so a flush commit or a produce answer queued behind this task
/// is not stalled for the whole walk (at a thousand partitions of a few
/// hundred segments each, a walk is 100-250 ms). Inline elsewhere.
pub fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Lowers the calling thread's priority (on Linux a nice value is per
/// thread). Best effort: where it is refused the work runs at the usual
/// priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and touch no
    // memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_at_a_lower_priority_and_returns_the_result() {
        let nice = run("test", || {
            // SAFETY: as above.
            let n = unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            };
            Ok(n)
        })
        .await
        .unwrap();
        assert_eq!(nice, NICE);
        let failed: Result<()> = run("test", || panic!("boom")).await;
        assert!(failed.unwrap_err().to_string().contains("panicked"));
    }
}
