//! Bindings for the zoo write-back (GitHub or a local checkout) and the reads around it.
//!
//! `zoo` is `OWNER/REPO`, `github:OWNER/REPO` or the path of a git checkout; GitHub uses
//! `github_api_url` (else `$GITHUB_API_URL`) and the token in `$GITHUB_PAT`/`$GITHUB_TOKEN`.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

use super::convert::{serialize_to_py, to_py, to_value};
use super::wait::wait;
use crate::zoo::{FileUpdate, WriteOptions, Zoo, ZooError};

/// Whether `branch` exists in `zoo`.
#[pyfunction]
#[pyo3(signature = (zoo, branch="update-json", github_api_url=None))]
pub(crate) fn zoo_branch_exists(
    py: Python<'_>,
    zoo: String,
    branch: &str,
    github_api_url: Option<String>,
) -> PyResult<bool> {
    let branch = branch.to_owned();
    wait(py, || async {
        let zoo = Zoo::open_repo(&zoo, github_api_url.as_deref()).await?;
        zoo.branch_exists(&branch).await
    })
}

/// The JSON file `path` of `zoo`, from `branch` when it holds changes of its own, else from
/// the default branch (a local checkout: the branch checked out): a missing branch, or one
/// whose head was merged into the default branch, is read through the default branch.
#[pyfunction]
#[pyo3(signature = (zoo, path, branch="update-json", github_api_url=None))]
pub(crate) fn zoo_read_json<'py>(
    py: Python<'py>,
    zoo: String,
    path: String,
    branch: &str,
    github_api_url: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let branch = branch.to_owned();
    let value = wait(py, || async {
        let zoo = Zoo::open_repo(&zoo, github_api_url.as_deref()).await?;
        let (rev, bytes) = zoo.read_preferring_branch(&branch, &path).await?;
        let bytes = bytes.ok_or_else(|| ZooError::FileNotFound {
            path: path.clone(),
            commit: rev.clone(),
        })?;
        serde_json::from_slice::<Value>(&bytes).map_err(|e| ZooError::BadFile {
            path: path.clone(),
            commit: rev,
            message: format!("invalid JSON: {e}"),
        })
    })?;
    to_py(py, &value)
}

/// Writes each `{path: object}` of `files` to `branch` of `zoo` (each file made to hold its
/// object, merged with concurrent writers' other keys; committed only when it changes) and,
/// on GitHub with `open_pr`, opens or finds the pull request. Returns the report as a dict.
#[pyfunction]
#[pyo3(signature = (zoo, files, *, branch="update-json", open_pr=true, github_api_url=None))]
pub(crate) fn zoo_write_json<'py>(
    py: Python<'py>,
    zoo: String,
    files: &Bound<'py, PyDict>,
    branch: &str,
    open_pr: bool,
    github_api_url: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut updates = Vec::with_capacity(files.len());
    for (path, target) in files.iter() {
        let path: String = path.extract()?;
        let Value::Object(target) = to_value(&target)? else {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "the content for `{path}` must be a dict"
            )));
        };
        updates.push(FileUpdate::converge(path, target));
    }
    let opts = WriteOptions {
        branch: branch.to_owned(),
        open_pr,
        ..WriteOptions::default()
    };
    let report = wait(py, || async {
        let zoo = Zoo::open_repo(&zoo, github_api_url.as_deref()).await?;
        zoo.write_back(&updates, &opts).await
    })?;
    let out = serialize_to_py(py, &report)?;
    out.set_item("changed", report.changed())?;
    Ok(out)
}

/// Opens the pull request from `branch` to the default branch, or returns the open one;
/// `None` for a local zoo or when `branch` holds nothing new.
#[pyfunction]
#[pyo3(signature = (zoo, branch="update-json", github_api_url=None))]
pub(crate) fn zoo_open_pull_request<'py>(
    py: Python<'py>,
    zoo: String,
    branch: &str,
    github_api_url: Option<String>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let branch = branch.to_owned();
    let info = wait(py, || async {
        let zoo = Zoo::open_repo(&zoo, github_api_url.as_deref()).await?;
        zoo.open_pull_request(&branch).await
    })?;
    info.map(|i| serialize_to_py(py, &i)).transpose()
}
