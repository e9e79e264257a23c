//! The engine's tokio runtime: created lazily, once per process, and the cleanups that must
//! finish even when the work they belong to was cancelled.
//!
//! A process made by `fork` (multiprocessing's default on Linux) inherits a copy of its
//! parent's runtime whose worker threads do not exist in the child; using it would hang.
//! [`runtime`] therefore keys the runtime by process id and starts a new one in a child
//! (the parent's copy is leaked, never dropped: dropping it would wait for threads that are
//! not there).
//!
//! Cleanups (removing a test container, deleting a Zenodo draft, unmounting a SIF) are
//! spawned through [`spawn_cleanup`] from drop guards; after a cancelled call, the bindings
//! wait for them with [`wait_for_cleanups`] before returning to Python.

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio_util::task::TaskTracker;

/// Installs the `ring` rustls crypto provider once (reqwest with `rustls-no-provider`
/// panics when building a client without it).
pub fn init_tls() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One process's runtime and its cleanup tasks.
struct ProcessRuntime {
    pid: u32,
    runtime: tokio::runtime::Runtime,
    cleanups: TaskTracker,
}

fn current() -> &'static ProcessRuntime {
    // The lock is held only to compare a pid and copy a reference.
    static CURRENT: Mutex<Option<&'static ProcessRuntime>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = CURRENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match *slot {
        Some(rt) if rt.pid == pid => rt,
        _ => {
            init_tls();
            #[allow(clippy::expect_used)]
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("kipoi-containers")
                .build()
                .expect("could not start the tokio runtime");
            if slot.is_some() {
                log::debug!("process {pid} was forked: starting its own runtime");
            }
            let rt: &'static ProcessRuntime = Box::leak(Box::new(ProcessRuntime {
                pid,
                runtime,
                cleanups: TaskTracker::new(),
            }));
            *slot = Some(rt);
            rt
        }
    }
}

/// The multi-threaded runtime of this process.
///
/// # Panics
/// Only if the OS refuses to start the runtime's threads, which leaves nothing to run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    &current().runtime
}

/// Runs `cleanup` on the runtime, tracked so that [`wait_for_cleanups`] can wait for it.
/// Safe to call from `Drop` (inside or outside the runtime).
pub fn spawn_cleanup<F>(cleanup: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let rt = current();
    let tracked = rt.cleanups.track_future(cleanup);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn(tracked)),
        Err(_) => drop(rt.runtime.spawn(tracked)),
    }
}

/// Waits (at most `limit`) until every cleanup spawned so far has finished; returns whether
/// they all did.
pub async fn wait_for_cleanups(limit: Duration) -> bool {
    let tracker = &current().cleanups;
    if tracker.is_empty() {
        return true;
    }
    tracker.close();
    let done = tokio::time::timeout(limit, tracker.wait()).await.is_ok();
    tracker.reopen();
    if !done {
        log::warn!(
            "{} cleanup task(s) still running after {:.0}s",
            tracker.len(),
            limit.as_secs_f64()
        );
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanups_are_waited_for() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f2 = std::sync::Arc::clone(&flag);
        spawn_cleanup(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            f2.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(runtime().block_on(wait_for_cleanups(Duration::from_secs(5))));
        assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn same_runtime_within_a_process() {
        assert!(std::ptr::eq(runtime(), runtime()));
    }
}
