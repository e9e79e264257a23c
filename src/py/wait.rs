//! How every binding runs engine work: blocking calls that stop on Ctrl-C, and awaitables.
//!
//! - [`wait`] releases the GIL and drives the future on the engine's runtime, racing it
//!   against a check for pending Python signals every [`SIGNAL_POLL`]. On Ctrl-C the future is
//!   dropped (its drop guards remove test containers, delete drafts, unmount images), the
//!   cleanups it spawned are waited for (bounded), and `KeyboardInterrupt` is raised.
//! - [`awaitable`] returns an `asyncio` future resolved from a task on the engine's runtime;
//!   cancelling the asyncio future aborts the task (and so runs the same drop guards).
//!
//! Both use the runtime of the current process (see [`crate::runtime`]), so they work in a
//! child made by `fork`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;
use pyo3::IntoPyObjectExt as _;

use crate::runtime::{runtime, wait_for_cleanups};

/// How often a blocking call looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
/// How long an interrupted call waits for its cleanups before giving up on them.
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Runs `fut` to completion with the GIL released; raises `KeyboardInterrupt` (or whatever a
/// signal handler raises) within ~[`SIGNAL_POLL`] of the signal, after cancelling `fut`.
///
/// `make` builds the future on the releasing thread, so the future itself need not be `Send`.
pub(crate) fn wait<M, F, T, E>(py: Python<'_>, make: M) -> PyResult<T>
where
    M: FnOnce() -> F + Send,
    F: Future<Output = Result<T, E>>,
    T: Send,
    E: Send,
    PyErr: From<E>,
{
    match py.detach(|| runtime().block_on(interruptible(make()))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(PyErr::from(err)),
        Err(signal) => Err(signal),
    }
}

/// [`wait`] for blocking (CPU or disk bound, synchronous) work: it runs on a blocking thread;
/// on Ctrl-C the call returns at once and the work is left to finish on its own (pass it a
/// cancellation flag if it can stop early).
pub(crate) fn wait_blocking<W, T, E>(py: Python<'_>, work: W) -> PyResult<T>
where
    W: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    PyErr: From<E>,
{
    let handle = runtime().spawn_blocking(work);
    wait::<_, _, T, PyErr>(py, || async move {
        match handle.await {
            Ok(result) => result.map_err(PyErr::from),
            Err(join) => Err(PyRuntimeError::new_err(format!(
                "the engine's worker thread failed: {join}"
            ))),
        }
    })
}

/// Drives `fut`, checking for Python signals in between; `Err` is the signal's exception.
async fn interruptible<F: Future>(fut: F) -> Result<F::Output, PyErr> {
    let interrupted = {
        let mut fut = std::pin::pin!(fut);
        let mut tick = tokio::time::interval(SIGNAL_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Ok(out),
                _ = tick.tick() => {
                    if let Err(err) = Python::attach(|py| py.check_signals()) {
                        break err;
                    }
                }
            }
        }
        // `fut` is dropped here: its guards spawn their cleanups.
    };
    log::info!("interrupted: cancelling the running operation and cleaning up");
    if !wait_for_cleanups(CLEANUP_LIMIT).await {
        log::warn!(
            "some cleanups did not finish; see the warnings above for what to remove by hand"
        );
    }
    Err(interrupted)
}

/// An `asyncio` future (of the running loop) resolved with `fut`'s result.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let py_future = event_loop.call_method0("create_future")?;
    let loop_ref: Py<PyAny> = event_loop.unbind();
    let future_ref: Py<PyAny> = py_future.clone().unbind();
    let task = runtime().spawn(async move {
        let result = AssertUnwindSafe(fut).catch_unwind().await;
        Python::attach(|py| {
            let (ok, value) = match result {
                Ok(Ok(value)) => match value.into_py_any(py) {
                    Ok(obj) => (true, obj),
                    Err(err) => (false, err.into_value(py).into_any()),
                },
                Ok(Err(err)) => (false, err.into_value(py).into_any()),
                Err(_) => (
                    false,
                    PyRuntimeError::new_err("the engine panicked; please report this")
                        .into_value(py)
                        .into_any(),
                ),
            };
            if let Err(err) = deliver(py, &loop_ref, &future_ref, ok, value) {
                log::debug!("could not deliver a result to its asyncio future: {err}");
            }
        });
    });
    let abort = task.abort_handle();
    let on_done = PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<()> {
        if args.get_item(0)?.call_method0("cancelled")?.is_truthy()? {
            abort.abort();
        }
        Ok(())
    })?;
    py_future.call_method1("add_done_callback", (on_done,))?;
    Ok(py_future)
}

/// Sets the result (or exception) of `future` from the loop's own thread.
fn deliver(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    future: &Py<PyAny>,
    ok: bool,
    value: Py<PyAny>,
) -> PyResult<()> {
    let set = PyCFunction::new_closure(py, None, None, |args, _kwargs| -> PyResult<()> {
        let future = args.get_item(0)?;
        if future.call_method0("done")?.is_truthy()? {
            return Ok(()); // cancelled meanwhile
        }
        let method = if args.get_item(1)?.is_truthy()? {
            "set_result"
        } else {
            "set_exception"
        };
        future.call_method1(method, (args.get_item(2)?,))?;
        Ok(())
    })?;
    event_loop.call_method1(py, "call_soon_threadsafe", (set, future, ok, value))?;
    Ok(())
}
