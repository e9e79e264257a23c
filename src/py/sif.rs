//! Bindings for the native Docker image → SIF converter: blocking calls that release the
//! GIL; errors become `kipoi_containers.errors.SifError` (via `py::errors`).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::docker::Engine;
use crate::runtime::runtime;
use crate::sif::{self, ConvertOptions, SifError};

/// Converts `image` from the Docker Engine to the SIF `out`; returns the report as a dict
/// (`md5`, `size`, `partition_offset`, `uuid`, `source_image`, `source_digest`, `seconds`, …).
#[pyfunction]
#[pyo3(signature = (image, out, model_group=None, zoo_commit=None, source_date_epoch=None, threads=None, level=None, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sif_convert(
    py: Python<'_>,
    image: String,
    out: PathBuf,
    model_group: Option<String>,
    zoo_commit: Option<String>,
    source_date_epoch: Option<i64>,
    threads: Option<usize>,
    level: Option<u32>,
    docker_host: Option<String>,
) -> PyResult<Py<PyDict>> {
    let opts = ConvertOptions {
        model_group,
        zoo_commit,
        source_date_epoch,
        threads,
        level,
        ..ConvertOptions::default()
    };
    let report = py.detach(|| {
        runtime().block_on(async {
            let engine = Engine::connect(docker_host.as_deref())
                .await
                .map_err(|source| SifError::Export {
                    image: image.clone(),
                    source,
                })?;
            sif::convert_image(&engine, &image, &out, opts).await
        })
    })?;
    let d = PyDict::new(py);
    d.set_item("path", report.path)?;
    d.set_item("md5", report.md5)?;
    d.set_item("size", report.size)?;
    d.set_item("partition_offset", report.partition_offset)?;
    d.set_item("partition_size", report.partition_size)?;
    d.set_item("uuid", report.uuid)?;
    d.set_item("source_image", report.source_image)?;
    d.set_item("source_digest", report.source_digest)?;
    d.set_item("time", report.time)?;
    d.set_item("inodes", report.squashfs.inodes)?;
    d.set_item("seconds", report.seconds)?;
    Ok(d.unbind())
}

/// The header, objects and traceability labels of the SIF at `path`.
#[pyfunction]
pub(crate) fn sif_inspect(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyDict>> {
    let insp = py.detach(|| sif::SifInspection::open(&path))?;
    let s = &insp.sif;
    let d = PyDict::new(py);
    d.set_item("uuid", s.uuid().to_string())?;
    d.set_item("arch", s.arch().to_string())?;
    d.set_item("ctime", s.ctime())?;
    d.set_item("size", s.file_len())?;
    d.set_item("partition_offset", s.primary_partition().offset())?;
    d.set_item("partition_size", s.primary_partition().size())?;
    let objects = s
        .descriptors()
        .iter()
        .map(|o| {
            (
                o.id(),
                o.data_type().to_string(),
                o.name(),
                o.offset(),
                o.size(),
            )
        })
        .collect::<Vec<_>>();
    d.set_item("objects", objects)?;
    d.set_item("deffile", insp.deffile)?;
    d.set_item("labels", insp.labels)?;
    Ok(d.unbind())
}

/// Validates the SIF at `path` (header, descriptors, partition layout); raises `SifError`.
#[pyfunction]
pub(crate) fn sif_verify(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| sif::verify(&path))?;
    Ok(())
}

/// Registers the SIF bindings.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sif_convert, m)?)?;
    m.add_function(wrap_pyfunction!(sif_inspect, m)?)?;
    m.add_function(wrap_pyfunction!(sif_verify, m)?)
}
