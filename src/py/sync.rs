//! Bindings for the sync: plan and run it from arguments (defaults resolved by the engine),
//! and its report.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use super::convert::serialize_to_py;
use super::plan::PyPlan;
use super::wait::{awaitable, wait};
use crate::sync::{self as engine_sync, SyncArgs, SyncReport};

/// What a sync did (read-only).
#[pyclass(module = "kipoi_containers._engine", name = "SyncReport", frozen)]
pub(crate) struct PySyncReport {
    inner: SyncReport,
}

#[pymethods]
impl PySyncReport {
    /// Units that failed.
    #[getter]
    fn failed(&self) -> usize {
        self.inner.failed()
    }
    #[getter]
    fn hash_moved(&self) -> bool {
        self.inner.hash_moved
    }
    #[getter]
    fn index_written(&self) -> bool {
        self.inner.index_written
    }
    #[getter]
    fn write_back(&self) -> Option<String> {
        self.inner.write_back.clone()
    }
    #[getter]
    fn to(&self) -> String {
        self.inner.to.clone()
    }
    /// One dict per unit: unit, action, result, detail, image, digest, sif_md5, seconds,
    /// error, log_tail.
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, &self.inner.rows)
    }
    /// The table headed `Sync summary`.
    fn to_table(&self) -> String {
        self.inner.to_table()
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "SyncReport(to={:?}, units={}, failed={}, hash_moved={})",
            self.inner.to,
            self.inner.rows.len(),
            self.inner.failed(),
            if self.inner.hash_moved {
                "True"
            } else {
                "False"
            }
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn args(
    zoo: Option<String>,
    from_commit: Option<String>,
    to: Option<String>,
    container_info: Option<PathBuf>,
    hash_file: Option<PathBuf>,
    registry: Option<String>,
    base_image: Option<String>,
    templates: Option<PathBuf>,
    zenodo_url: Option<String>,
    github_api_url: Option<String>,
    only: Option<Vec<String>>,
    push: bool,
    concurrency: Option<usize>,
    journal: Option<PathBuf>,
    restart: bool,
    dockerfiles_dir: Option<PathBuf>,
    test_zoo: Option<PathBuf>,
    docker_host: Option<String>,
    test_timeout: Option<f64>,
) -> PyResult<SyncArgs> {
    if concurrency == Some(0) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "concurrency must be at least 1",
        ));
    }
    let test_timeout = test_timeout
        .map(|t| {
            Duration::try_from_secs_f64(t).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "test_timeout must be a non-negative number of seconds, got {t}"
                ))
            })
        })
        .transpose()?;
    Ok(SyncArgs {
        zoo,
        from: from_commit,
        to,
        container_info,
        hash_file,
        registry,
        base_image,
        templates,
        zenodo_url,
        github_api_url,
        only: only.unwrap_or_default(),
        no_push: !push,
        concurrency,
        journal,
        restart,
        dockerfiles_dir,
        test_zoo,
        docker_host,
        test_timeout,
    })
}

/// Runs a sync: builds, tests, pushes, converts, publishes, writes back, moves the hash.
#[pyfunction]
#[pyo3(signature = (
    *, zoo=None, from_commit=None, to=None, container_info=None, hash_file=None, registry=None,
    base_image=None, templates=None, zenodo_url=None, github_api_url=None, only=None, push=true,
    concurrency=None, journal=None, restart=false, dockerfiles_dir=None, test_zoo=None,
    docker_host=None, test_timeout=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sync(
    py: Python<'_>,
    zoo: Option<String>,
    from_commit: Option<String>,
    to: Option<String>,
    container_info: Option<PathBuf>,
    hash_file: Option<PathBuf>,
    registry: Option<String>,
    base_image: Option<String>,
    templates: Option<PathBuf>,
    zenodo_url: Option<String>,
    github_api_url: Option<String>,
    only: Option<Vec<String>>,
    push: bool,
    concurrency: Option<usize>,
    journal: Option<PathBuf>,
    restart: bool,
    dockerfiles_dir: Option<PathBuf>,
    test_zoo: Option<PathBuf>,
    docker_host: Option<String>,
    test_timeout: Option<f64>,
) -> PyResult<PySyncReport> {
    let args = args(
        zoo,
        from_commit,
        to,
        container_info,
        hash_file,
        registry,
        base_image,
        templates,
        zenodo_url,
        github_api_url,
        only,
        push,
        concurrency,
        journal,
        restart,
        dockerfiles_dir,
        test_zoo,
        docker_host,
        test_timeout,
    )?;
    let inner = wait(py, || async { engine_sync::run_configured(&args).await })?;
    Ok(PySyncReport { inner })
}

/// Awaitable [`sync`].
#[pyfunction]
#[pyo3(signature = (
    *, zoo=None, from_commit=None, to=None, container_info=None, hash_file=None, registry=None,
    base_image=None, templates=None, zenodo_url=None, github_api_url=None, only=None, push=true,
    concurrency=None, journal=None, restart=false, dockerfiles_dir=None, test_zoo=None,
    docker_host=None, test_timeout=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sync_async(
    py: Python<'_>,
    zoo: Option<String>,
    from_commit: Option<String>,
    to: Option<String>,
    container_info: Option<PathBuf>,
    hash_file: Option<PathBuf>,
    registry: Option<String>,
    base_image: Option<String>,
    templates: Option<PathBuf>,
    zenodo_url: Option<String>,
    github_api_url: Option<String>,
    only: Option<Vec<String>>,
    push: bool,
    concurrency: Option<usize>,
    journal: Option<PathBuf>,
    restart: bool,
    dockerfiles_dir: Option<PathBuf>,
    test_zoo: Option<PathBuf>,
    docker_host: Option<String>,
    test_timeout: Option<f64>,
) -> PyResult<Bound<'_, PyAny>> {
    let args = args(
        zoo,
        from_commit,
        to,
        container_info,
        hash_file,
        registry,
        base_image,
        templates,
        zenodo_url,
        github_api_url,
        only,
        push,
        concurrency,
        journal,
        restart,
        dockerfiles_dir,
        test_zoo,
        docker_host,
        test_timeout,
    )?;
    awaitable(py, async move {
        let inner = engine_sync::run_configured(&args).await?;
        Ok(PySyncReport { inner })
    })
}

/// Plans a sync (touches nothing); the same arguments as [`sync`].
#[pyfunction]
#[pyo3(signature = (*, zoo=None, from_commit=None, to=None, container_info=None, hash_file=None, github_api_url=None, only=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sync_plan(
    py: Python<'_>,
    zoo: Option<String>,
    from_commit: Option<String>,
    to: Option<String>,
    container_info: Option<PathBuf>,
    hash_file: Option<PathBuf>,
    github_api_url: Option<String>,
    only: Option<Vec<String>>,
) -> PyResult<PyPlan> {
    let args = SyncArgs {
        zoo,
        from: from_commit,
        to,
        container_info,
        hash_file,
        github_api_url,
        only: only.unwrap_or_default(),
        ..SyncArgs::default()
    };
    let inner = wait(py, || async { engine_sync::plan_configured(&args).await })?;
    Ok(PyPlan::from(inner))
}

/// The zoo commit stored in `hash_file` (default `$KIPOI_MODEL_REPO_HASH`, else
/// `./kipoi-model-repo-hash`).
#[pyfunction]
#[pyo3(signature = (hash_file=None))]
pub(crate) fn stored_hash(hash_file: Option<PathBuf>) -> PyResult<String> {
    Ok(engine_sync::stored_hash(&crate::config::hash_file(
        hash_file.as_deref(),
    ))?)
}
