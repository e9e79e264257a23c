//! Bindings for the sync: plan and run it from arguments (defaults resolved by the engine),
//! and its report.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::serialize_to_py;
use super::plan::PyPlan;
use super::wait::{awaitable, wait};
use crate::sync::{self as engine_sync, ReleaseArgs, SyncArgs, SyncReport};

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

/// The keywords of a sync (and of a release, which adds `fragment`), with their defaults
/// resolved by the engine ([`SyncArgs`]).
const SYNC_KEYWORDS: &[&str] = &[
    "zoo",
    "from_commit",
    "to",
    "container_info",
    "hash_file",
    "registry",
    "base_image",
    "build_image",
    "templates",
    "envfiles",
    "zenodo_url",
    "github_api_url",
    "only",
    "push",
    "concurrency",
    "journal",
    "restart",
    "dockerfiles_dir",
    "test_zoo",
    "docker_host",
    "test_timeout",
];

/// The keywords [`sync_plan`] takes (planning touches nothing).
const SYNC_PLAN_KEYWORDS: &[&str] = &[
    "zoo",
    "from_commit",
    "to",
    "container_info",
    "hash_file",
    "github_api_url",
    "only",
];

/// The keywords [`release_plan`] takes: the index and how recipes are made.
const RELEASE_PLAN_KEYWORDS: &[&str] = &[
    "container_info",
    "only",
    "base_image",
    "build_image",
    "templates",
    "envfiles",
];

/// Converts keyword arguments into [`SyncArgs`]: `None` is the default; an unknown keyword
/// is a `TypeError` naming it (as a Python function would).
fn sync_args(
    function: &str,
    kwargs: Option<&Bound<'_, PyDict>>,
    allowed: &[&str],
) -> PyResult<SyncArgs> {
    let mut args = SyncArgs::default();
    let Some(kwargs) = kwargs else {
        return Ok(args);
    };
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        if !allowed.contains(&key.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "{function}() got an unexpected keyword argument '{key}'"
            )));
        }
        if value.is_none() {
            continue;
        }
        let text = |v: &Bound<'_, PyAny>| -> PyResult<String> { v.extract() };
        let path = |v: &Bound<'_, PyAny>| -> PyResult<PathBuf> { v.extract() };
        match key.as_str() {
            "zoo" => args.zoo = Some(zoo_spec(&value)?),
            "from_commit" => args.from = Some(text(&value)?),
            "to" => args.to = Some(text(&value)?),
            "container_info" => args.container_info = Some(path(&value)?),
            "hash_file" => args.hash_file = Some(path(&value)?),
            "registry" => args.registry = Some(text(&value)?),
            "base_image" => args.base_image = Some(text(&value)?),
            "build_image" => args.build_image = Some(text(&value)?),
            "templates" => args.templates = Some(path(&value)?),
            "envfiles" => args.envfiles = Some(path(&value)?),
            "zenodo_url" => args.zenodo_url = Some(text(&value)?),
            "github_api_url" => args.github_api_url = Some(text(&value)?),
            "only" => {
                if value.is_instance_of::<pyo3::types::PyString>() {
                    return Err(PyTypeError::new_err(
                        "only must be a list of names, not a string",
                    ));
                }
                args.only = value.extract()?;
            }
            "push" => args.no_push = !value.extract::<bool>()?,
            "concurrency" => {
                let n: usize = value.extract()?;
                if n == 0 {
                    return Err(PyValueError::new_err("concurrency must be at least 1"));
                }
                args.concurrency = Some(n);
            }
            "journal" => args.journal = Some(path(&value)?),
            "restart" => args.restart = value.extract()?,
            "dockerfiles_dir" => args.dockerfiles_dir = Some(path(&value)?),
            "test_zoo" => args.test_zoo = Some(path(&value)?),
            "docker_host" => args.docker_host = Some(text(&value)?),
            "test_timeout" => {
                let t: f64 = value.extract()?;
                args.test_timeout = Some(Duration::try_from_secs_f64(t).map_err(|_| {
                    PyValueError::new_err(format!(
                        "test_timeout must be a non-negative number of seconds, got {t}"
                    ))
                })?);
            }
            other => {
                return Err(PyTypeError::new_err(format!(
                    "{function}() cannot take the keyword argument '{other}' here"
                )))
            }
        }
    }
    Ok(args)
}

/// A zoo given as a string or a path (a local checkout).
fn zoo_spec(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.extract::<String>() {
        return Ok(text);
    }
    let path: PathBuf = value.extract()?;
    Ok(path.to_string_lossy().into_owned())
}

/// Runs a sync: builds, tests, pushes, converts, publishes, writes back, moves the hash.
#[pyfunction]
#[pyo3(signature = (**options))]
pub(crate) fn sync(py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<PySyncReport> {
    let args = sync_args("sync", options, SYNC_KEYWORDS)?;
    let inner = wait(py, || async { engine_sync::run_configured(&args).await })?;
    Ok(PySyncReport { inner })
}

/// Awaitable [`sync`].
#[pyfunction]
#[pyo3(signature = (**options))]
pub(crate) fn sync_async<'py>(
    py: Python<'py>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let args = sync_args("sync_async", options, SYNC_KEYWORDS)?;
    awaitable(py, async move {
        let inner = engine_sync::run_configured(&args).await?;
        Ok(PySyncReport { inner })
    })
}

/// Plans a sync (touches nothing).
#[pyfunction]
#[pyo3(signature = (**options))]
pub(crate) fn sync_plan(py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<PyPlan> {
    let args = sync_args("sync_plan", options, SYNC_PLAN_KEYWORDS)?;
    let inner = wait(py, || async { engine_sync::plan_configured(&args).await })?;
    Ok(PyPlan::from(inner))
}

/// Runs a release: every image (or `only` those, by image name) rebuilt from its recipe in
/// dependency order, tested, pushed, converted and published; the index updated and
/// written back — or, given `fragment`, the results written to that file.
#[pyfunction]
#[pyo3(signature = (*, fragment=None, **options))]
pub(crate) fn release(
    py: Python<'_>,
    fragment: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PySyncReport> {
    let args = ReleaseArgs {
        sync: sync_args("release", options, SYNC_KEYWORDS)?,
        fragment,
    };
    let inner = wait(py, || async {
        engine_sync::release_configured(&args).await
    })?;
    Ok(PySyncReport { inner })
}

/// The images a release would rebuild, level by level: one list of dicts (`image`,
/// `with_slim`, `parents`, `external`, `keys`, `models`, `test_models`) per level.
#[pyfunction]
#[pyo3(signature = (**options))]
pub(crate) fn release_plan<'py>(
    py: Python<'py>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let args = ReleaseArgs {
        sync: sync_args("release_plan", options, RELEASE_PLAN_KEYWORDS)?,
        fragment: None,
    };
    let levels = engine_sync::release_plan(&args)?;
    serialize_to_py(py, &levels)
}

/// Applies every result fragment (`directory/*.json`) of a sharded release to the index, in
/// a deterministic order, and (with `push`) writes the index back to the zoo.
#[pyfunction]
#[pyo3(signature = (directory, **options))]
pub(crate) fn merge_results(
    py: Python<'_>,
    directory: PathBuf,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PySyncReport> {
    let args = sync_args(
        "merge_results",
        options,
        &["zoo", "container_info", "github_api_url", "push"],
    )?;
    let inner = wait(py, || async {
        engine_sync::merge_results(&args, &directory).await
    })?;
    Ok(PySyncReport { inner })
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
