//! Bindings for the SIF path: convert, inspect, verify, run, model tests, downloads.
//! Blocking calls release the GIL and stop on Ctrl-C (through [`wait`], so a cancelled run
//! is unmounted and a cancelled conversion leaves no temporary file); errors become
//! `kipoi_containers.errors.SifError` / `SifTestError` / `DownloadError` (via `py::errors`).

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::docker::PyModelTestResult;
use super::wait::wait;
use crate::docker::{Engine, TestOptions};
use crate::sif::run::{self as sifrun, Bind, Output, RunOptions, RunnerKind};
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
    let report = wait(py, || async {
        let engine = Engine::connect(docker_host.as_deref())
            .await
            .map_err(|source| SifError::Export {
                image: image.clone(),
                source,
            })?;
        sif::convert_image(&engine, &image, &out, opts).await
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

/// The header, objects (descriptor table) and traceability labels of the SIF at `path`.
#[pyfunction]
pub(crate) fn sif_inspect(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyDict>> {
    let insp = py.detach(|| sif::SifInspection::open(&path))?;
    let s = &insp.sif;
    let d = PyDict::new(py);
    d.set_item("path", s.path())?;
    d.set_item("uuid", s.uuid().to_string())?;
    d.set_item("arch", s.arch().to_string())?;
    d.set_item("ctime", s.ctime())?;
    d.set_item("mtime", s.mtime())?;
    d.set_item("size", s.file_len())?;
    d.set_item("descriptors_total", s.descriptors_total())?;
    d.set_item("descriptors_free", s.descriptors_free())?;
    d.set_item("data_offset", s.data_offset())?;
    d.set_item("data_size", s.data_size())?;
    d.set_item("partition_offset", s.primary_partition().offset())?;
    d.set_item("partition_size", s.primary_partition().size())?;
    let objects = s
        .descriptors()
        .iter()
        .map(|o| -> PyResult<Bound<'_, PyDict>> {
            let od = PyDict::new(py);
            od.set_item("id", o.id())?;
            od.set_item("type", o.data_type().to_string())?;
            od.set_item("name", o.name())?;
            od.set_item("offset", o.offset())?;
            od.set_item("size", o.size())?;
            od.set_item("group", o.group_id())?;
            od.set_item(
                "link",
                match o.link() {
                    sif::read::Link::None => None,
                    sif::read::Link::Object(id) => Some(format!("object {id}")),
                    sif::read::Link::Group(id) => Some(format!("group {id}")),
                },
            )?;
            match o.partition() {
                Some(p) => {
                    od.set_item("fstype", p.fs_type.to_string())?;
                    od.set_item("parttype", p.part_type.to_string())?;
                    od.set_item("arch", p.arch.to_string())?;
                }
                None => {
                    od.set_item("fstype", py.None())?;
                    od.set_item("parttype", py.None())?;
                    od.set_item("arch", py.None())?;
                }
            }
            Ok(od)
        })
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("objects", objects)?;
    d.set_item("deffile", &insp.deffile)?;
    d.set_item("labels", &insp.labels)?;
    Ok(d.unbind())
}

/// Validates the SIF at `path` (header, descriptors, partition layout); raises `SifError`.
#[pyfunction]
pub(crate) fn sif_verify(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| sif::verify(&path))?;
    Ok(())
}

fn runner(name: Option<&str>) -> PyResult<Option<RunnerKind>> {
    name.filter(|n| !n.is_empty())
        .map(|n| {
            RunnerKind::parse(n).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "runner must be `apptainer`, `singularity`, `bwrap` or `auto`, got `{n}`"
                ))
            })
        })
        .transpose()
}

fn seconds(what: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value
        .map(|v| {
            Duration::try_from_secs_f64(v).map_err(|_| {
                PyValueError::new_err(format!(
                    "{what} must be a non-negative number of seconds, got {v}"
                ))
            })
        })
        .transpose()
}

/// Runs `command` inside the SIF at `path` (apptainer/singularity when on PATH, else
/// squashfuse + bwrap); always unmounted afterwards, also on Ctrl-C. Returns a dict
/// (`exit_code`, `timed_out`, `tail`, `runner`, `seconds`); a failing command is not an error.
#[pyfunction]
#[pyo3(signature = (path, command, binds=None, isolate_network=false, workdir=None, env=None, timeout=None, capture=true, runner=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sif_run(
    py: Python<'_>,
    path: PathBuf,
    command: Vec<String>,
    binds: Option<Vec<(PathBuf, String)>>,
    isolate_network: bool,
    workdir: Option<String>,
    env: Option<Vec<(String, String)>>,
    timeout: Option<f64>,
    capture: bool,
    runner: Option<String>,
) -> PyResult<Py<PyDict>> {
    let opts = RunOptions {
        binds: binds
            .unwrap_or_default()
            .into_iter()
            .map(|(source, dest)| Bind { source, dest })
            .collect(),
        isolate_network,
        workdir,
        env: env.unwrap_or_default(),
        timeout: seconds("timeout", timeout)?,
        output: if capture {
            Output::Capture
        } else {
            Output::Inherit
        },
        runner: self::runner(runner.as_deref())?,
    };
    let out = wait(py, || sifrun::run(&path, &command, &opts))?;
    let d = PyDict::new(py);
    d.set_item("exit_code", out.exit_code)?;
    d.set_item("timed_out", out.timed_out)?;
    d.set_item("tail", out.tail)?;
    d.set_item("runner", out.runner.name())?;
    d.set_item("seconds", out.seconds)?;
    Ok(d.unbind())
}

/// Runs `kipoi test MODEL` inside the SIF at `path`: against the zoo checkout `zoo_dir`
/// (bound read-only, offline unless `network`) or upstream's `--source=kipoi`. A failed
/// test raises `SifTestError` with `check`, else is a result with `passed=False`.
#[pyfunction]
#[pyo3(signature = (path, model, zoo_dir=None, extra_args=None, timeout=None, check=false, network=false, runner=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sif_test_model(
    py: Python<'_>,
    path: PathBuf,
    model: String,
    zoo_dir: Option<PathBuf>,
    extra_args: Option<Vec<String>>,
    timeout: Option<f64>,
    check: bool,
    network: bool,
    runner: Option<String>,
) -> PyResult<PyModelTestResult> {
    let opts = TestOptions {
        zoo_dir,
        network,
        extra_args,
        timeout: seconds("timeout", timeout)?,
    };
    let runner = self::runner(runner.as_deref())?;
    let result = wait(py, || async {
        let result = sifrun::test_model_with(&path, &model, &opts, runner).await?;
        if check {
            sifrun::check(result)
        } else {
            Ok(result)
        }
    })?;
    Ok(result.into())
}

/// Tests several models in the SIF at `path` concurrently (at most `concurrency`, default:
/// the number of cores); results in input order; a SIF that cannot be run raises.
#[pyfunction]
#[pyo3(signature = (path, models, zoo_dir=None, concurrency=None, timeout=None, network=false))]
pub(crate) fn sif_test_models(
    py: Python<'_>,
    path: PathBuf,
    models: Vec<String>,
    zoo_dir: Option<PathBuf>,
    concurrency: Option<usize>,
    timeout: Option<f64>,
    network: bool,
) -> PyResult<Vec<PyModelTestResult>> {
    let concurrency = concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get));
    let opts = TestOptions {
        zoo_dir,
        network,
        extra_args: None,
        timeout: seconds("timeout", timeout)?,
    };
    let results = wait(py, || async {
        Ok::<_, PyErr>(sifrun::test_models(&path, &models, &opts, concurrency).await)
    })?;
    results
        .into_iter()
        .map(|r| r.map(PyModelTestResult::from).map_err(PyErr::from))
        .collect()
}

/// Downloads `url` to `dest` through `<dest>.part` (resumed when present, HTTP `Range` after
/// a broken connection), checking `md5` while writing; the file appears atomically. Returns a
/// dict (`md5`, `bytes`, `resumed_from`, `range_requests`, `already_present`).
#[pyfunction]
#[pyo3(signature = (url, dest, md5=None))]
pub(crate) fn sif_download(
    py: Python<'_>,
    url: String,
    dest: PathBuf,
    md5: Option<String>,
) -> PyResult<Py<PyDict>> {
    let got = wait(py, || async {
        let settings = crate::http::HttpSettings::from_env().map_err(|source| {
            crate::transfer::DownloadError::Setup {
                url: crate::redact::RedactedUrl::redact_str(&url),
                source,
            }
        })?;
        let http = crate::http::HttpClient::new(settings).map_err(|source| {
            crate::transfer::DownloadError::Setup {
                url: crate::redact::RedactedUrl::redact_str(&url),
                source,
            }
        })?;
        crate::transfer::download_resumable(
            &http,
            &url,
            &dest,
            md5.as_deref(),
            &crate::retry::RetryPolicy::default(),
            None,
            None,
        )
        .await
    })?;
    let d = PyDict::new(py);
    d.set_item("md5", got.md5)?;
    d.set_item("bytes", got.bytes)?;
    d.set_item("resumed_from", got.resumed_from)?;
    d.set_item("range_requests", got.range_requests)?;
    d.set_item("already_present", got.already_present)?;
    Ok(d.unbind())
}

/// Registers the SIF bindings.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sif_convert, m)?)?;
    m.add_function(wrap_pyfunction!(sif_inspect, m)?)?;
    m.add_function(wrap_pyfunction!(sif_verify, m)?)?;
    m.add_function(wrap_pyfunction!(sif_run, m)?)?;
    m.add_function(wrap_pyfunction!(sif_test_model, m)?)?;
    m.add_function(wrap_pyfunction!(sif_test_models, m)?)?;
    m.add_function(wrap_pyfunction!(sif_download, m)?)
}
