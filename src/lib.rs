//! kipoi_containers engine: keeps a Docker and a Singularity image for every model group
//! of the Kipoi model zoo — built, tested, published and indexed.
//!
//! This file is a table of contents. Logic lives in one module per concern and is plain
//! Rust (tested by `cargo test`); `py` holds the PyO3 bindings only.

pub mod config;
pub mod docker;
pub mod dockerfile;
pub mod errchain;
pub mod fsutil;
pub mod http;
pub mod index;
pub mod layout;
pub mod names;
pub mod plan;
pub mod pyjson;
pub mod recipes;
pub mod redact;
pub mod retry;
pub mod runtime;
pub mod sif;
pub mod sync;
#[cfg(test)]
mod testlog;
pub mod transfer;
pub mod zenodo;
pub mod zoo;

mod py;

pub use index::{ImageName, Index, IndexError, ModelName, SingularityEntry};

use pyo3::prelude::*;

/// The compiled engine, imported by the Python package as `kipoi_containers._engine`.
#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Rust `log` records -> Python `logging`. Every target gets the `kipoi_containers`
    // prefix (`_engine::index` -> `kipoi_containers._engine.index`), so all engine records
    // reach handlers on the `kipoi_containers` logger.
    // Levels are looked up on every record so `logger.setLevel` takes effect at once.
    let _ = pyo3_log::Logger::new(py, pyo3_log::Caching::Nothing)?
        .set_prefix("kipoi_containers")
        .install();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    py::register(m)
}
