//! Bindings for zoo access and the sync plan.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::convert::serialize_to_py;
use super::wait::wait;
use crate::plan as planner;
use crate::zoo::Zoo;

/// One planned action (read-only).
#[pyclass(module = "kipoi_containers._engine", name = "Action", frozen, get_all)]
pub(crate) struct PyAction {
    kind: String,
    unit: String,
    image: Option<String>,
    models: Vec<String>,
    try_images: Vec<String>,
    reason: String,
    paths: Vec<String>,
}

#[pymethods]
impl PyAction {
    fn __repr__(&self) -> String {
        format!(
            "Action(kind={:?}, unit={:?}, image={:?}, models={})",
            self.kind,
            self.unit,
            self.image,
            self.models.len()
        )
    }
}

/// A changed path that causes no action, and why (read-only).
#[pyclass(module = "kipoi_containers._engine", name = "Skipped", frozen, get_all)]
pub(crate) struct PySkipped {
    path: String,
    reason: String,
}

#[pymethods]
impl PySkipped {
    fn __repr__(&self) -> String {
        format!("Skipped(path={:?}, reason={:?})", self.path, self.reason)
    }
}

/// The plan of a sync (read-only).
#[pyclass(module = "kipoi_containers._engine", name = "Plan", frozen)]
pub(crate) struct PyPlan {
    inner: planner::Plan,
}

impl From<planner::Plan> for PyPlan {
    fn from(inner: planner::Plan) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PyPlan {
    #[getter]
    fn zoo(&self) -> String {
        self.inner.zoo.clone()
    }
    #[getter(from_commit)]
    fn get_from_commit(&self) -> String {
        self.inner.from.clone()
    }
    #[getter(to_commit)]
    fn get_to_commit(&self) -> String {
        self.inner.to.clone()
    }
    #[getter]
    fn actions(&self) -> Vec<PyAction> {
        self.inner
            .actions
            .iter()
            .map(|a| PyAction {
                kind: a.kind.as_str().to_owned(),
                unit: a.unit.clone(),
                image: a.image.clone(),
                models: a.models.clone(),
                try_images: a.try_images.clone(),
                reason: a.reason.clone(),
                paths: a.paths.clone(),
            })
            .collect()
    }
    #[getter]
    fn skipped(&self) -> Vec<PySkipped> {
        self.inner
            .skipped
            .iter()
            .map(|s| PySkipped {
                path: s.path.clone(),
                reason: s.reason.clone(),
            })
            .collect()
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    fn to_table(&self) -> String {
        self.inner.to_table()
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, &self.inner)
    }
    fn __len__(&self) -> usize {
        self.inner.actions.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "Plan(zoo={:?}, from={:?}, to={:?}, actions={}, skipped={})",
            self.inner.zoo,
            self.inner.from,
            self.inner.to,
            self.inner.actions.len(),
            self.inner.skipped.len()
        )
    }
}

/// Plans a sync of `zoo` from `from_commit` to `to` against the index in `container_info`.
#[pyfunction]
#[pyo3(signature = (zoo, from_commit, container_info, to=None, github_api_url=None))]
pub(crate) fn plan(
    py: Python<'_>,
    zoo: String,
    from_commit: String,
    container_info: PathBuf,
    to: Option<String>,
    github_api_url: Option<String>,
) -> PyResult<PyPlan> {
    let index = py.detach(|| crate::index::Index::load(&container_info))?;
    let inner = wait(py, || async {
        let zoo = Zoo::open(&zoo, github_api_url.as_deref()).await?;
        zoo.plan(&from_commit, to.as_deref(), &index).await
    })?;
    Ok(PyPlan { inner })
}

/// Paths that differ between two commits of `zoo` (tree difference, no merge base).
#[pyfunction]
#[pyo3(signature = (zoo, from_commit, to_commit, github_api_url=None))]
pub(crate) fn changed_paths(
    py: Python<'_>,
    zoo: String,
    from_commit: String,
    to_commit: String,
    github_api_url: Option<String>,
) -> PyResult<Vec<String>> {
    wait(py, || async {
        let zoo = Zoo::open(&zoo, github_api_url.as_deref()).await?;
        zoo.changed_paths(&from_commit, &to_commit).await
    })
}

/// Model groups of `zoo` at `commit` (default: head of the default branch), each with its models.
#[pyfunction]
#[pyo3(signature = (zoo, commit=None, github_api_url=None))]
pub(crate) fn model_groups(
    py: Python<'_>,
    zoo: String,
    commit: Option<String>,
    github_api_url: Option<String>,
) -> PyResult<Vec<(String, Vec<String>)>> {
    wait(py, || async {
        let zoo = Zoo::open(&zoo, github_api_url.as_deref()).await?;
        let sha = zoo.resolve(commit.as_deref()).await?;
        let layout = zoo.tree(&sha).await?.layout();
        let mut out = Vec::new();
        for group in layout.groups() {
            let models = zoo.models_of_group(&sha, &layout, &group).await?;
            out.push((group, models));
        }
        Ok::<_, crate::zoo::ZooError>(out)
    })
}

/// The models of one model group at `commit` (default: head of the default branch).
#[pyfunction]
#[pyo3(signature = (zoo, group, commit=None, github_api_url=None))]
pub(crate) fn models_of_group(
    py: Python<'_>,
    zoo: String,
    group: String,
    commit: Option<String>,
    github_api_url: Option<String>,
) -> PyResult<Vec<String>> {
    wait(py, || async {
        let zoo = Zoo::open(&zoo, github_api_url.as_deref()).await?;
        let sha = zoo.resolve(commit.as_deref()).await?;
        let layout = zoo.tree(&sha).await?.layout();
        zoo.models_of_group(&sha, &layout, &group).await
    })
}

/// The full commit sha of `rev` (default: the default branch's head) in `zoo`.
#[pyfunction]
#[pyo3(signature = (zoo, rev=None, github_api_url=None))]
pub(crate) fn resolve_revision(
    py: Python<'_>,
    zoo: String,
    rev: Option<String>,
    github_api_url: Option<String>,
) -> PyResult<String> {
    wait(py, || async {
        let zoo = Zoo::open(&zoo, github_api_url.as_deref()).await?;
        zoo.resolve(rev.as_deref()).await
    })
}
