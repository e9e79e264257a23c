//! Bindings for the Zenodo client: argument conversion, GIL release, error mapping.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString};
use serde_json::{json, Value};

use super::convert::{to_py, to_value};
use super::errors::{chain, raise_with, Attr};
use super::wait::{wait, wait_blocking};
use crate::transfer::{self, Progress, ProgressRef, TransferError};
use crate::zenodo::metadata::{ImageRole, RecordText};
use crate::zenodo::publish::{
    self, PublishErrorKind, PublishOptions, PublishOutcome, PublishReport, PublishRequest,
    PublishedEntry, UploadHook,
};
use crate::zenodo::{normalize_md5, record_id_from_url, ListQuery, ZenodoClient, ZenodoConfig};

/// A Python callable `progress(bytes_done, bytes_total)`; exceptions it raises are logged.
struct PyProgress(Py<PyAny>);

impl Progress for PyProgress {
    fn report(&self, done: u64, total: u64) {
        Python::attach(|py| {
            if let Err(err) = self.0.call1(py, (done, total)) {
                log::warn!("the progress callback raised: {err}");
            }
        });
    }
}

fn progress_ref(progress: Option<Py<PyAny>>) -> ProgressRef {
    progress.map(|p| Arc::new(PyProgress(p)) as Arc<dyn Progress>)
}

/// `on_step(event, info)`, called after each completed step of a publication; exceptions it
/// raises are logged.
struct PyReport(Py<PyAny>);

impl PyReport {
    fn emit(&self, event: &str, info: &Value) {
        Python::attach(|py| {
            let called = to_py(py, info).and_then(|info| self.0.call1(py, (event, info)));
            if let Err(err) = called {
                log::warn!("the on_step callback raised: {err}");
            }
        });
    }
}

fn entry_json(entry: &PublishedEntry) -> Value {
    json!({
        "record_id": entry.record_id,
        "file_id": entry.file_id,
        "url": entry.url,
        "name": entry.name,
        "md5": entry.md5,
    })
}

impl PublishReport for PyReport {
    fn draft_created(&self, draft_id: u64) {
        self.emit("draft_created", &json!({ "deposition_id": draft_id }));
    }
    fn file_uploaded(&self, draft_id: u64, file_name: &str, md5: Option<&str>) {
        let info = json!({ "deposition_id": draft_id, "file_name": file_name, "md5": md5 });
        self.emit("file_uploaded", &info);
    }
    fn published(&self, entry: &PublishedEntry) {
        self.emit("published", &entry_json(entry));
    }
    fn draft_deleted(&self, draft_id: u64) {
        self.emit("draft_deleted", &json!({ "deposition_id": draft_id }));
    }
}

/// A Python `upload(object_url)` doing the upload (upstream's replaceable `upload_file`); it
/// may return the bucket object (its `checksum` is used), an md5 string, or `None`. The
/// exception it raises is kept, to be raised again unchanged.
struct PyUploadHook {
    upload: Py<PyAny>,
    raised: Mutex<Option<PyErr>>,
}

impl UploadHook for PyUploadHook {
    fn upload(&self, object_url: &str, _path: &Path) -> Result<Option<String>, String> {
        Python::attach(|py| {
            let returned = match self.upload.bind(py).call1((object_url,)) {
                Ok(value) => value,
                Err(err) => {
                    let text = err.to_string();
                    if let Ok(mut slot) = self.raised.lock() {
                        *slot = Some(err);
                    }
                    return Err(text);
                }
            };
            let checksum = match returned.cast::<PyDict>() {
                Ok(dict) => dict.get_item("checksum").ok().flatten(),
                Err(_) => Some(returned),
            };
            Ok(checksum
                .and_then(|c| c.extract::<String>().ok())
                .map(|c| normalize_md5(&c)))
        })
    }
}

/// `(key, SIF name)` pairs of a `model-to-singularity` mapping `{key: {"name": …, …}}`.
fn index_pairs(index: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for item in index.call_method0("items")?.try_iter()? {
        let (key, entry): (String, Bound<'_, PyAny>) = item?.extract()?;
        let name: String = entry.get_item("name")?.extract()?;
        pairs.push((key, name));
    }
    Ok(pairs)
}

fn outcome_json(outcome: &PublishOutcome) -> Value {
    json!({
        "deposition_id": outcome.deposition_id,
        "md5": outcome.md5,
        "published": outcome.published.as_ref().map(entry_json),
    })
}

/// A record given as an id (`int`, digits) or as a Zenodo URL (an index entry's).
fn record_id(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if obj.cast::<PyInt>().is_ok() {
        return obj.extract::<u64>();
    }
    let text: String = obj.extract()?;
    record_id_from_url(&text).ok_or_else(|| {
        PyValueError::new_err(format!(
            "no Zenodo record id in `{text}` (expected …/record/<id>/files/<name>)"
        ))
    })
}

/// The arguments `publish_new` and `publish_version` share.
struct PublishArgs {
    request: PublishRequest,
    options: PublishOptions,
    hook: Option<Arc<PyUploadHook>>,
}

impl PublishArgs {
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: PathBuf,
        file_name: String,
        model_group: &str,
        name: Option<&str>,
        index: Option<&Bound<'_, PyAny>>,
        push: bool,
        draft_id: Option<&Bound<'_, PyAny>>,
        publication_date: Option<String>,
        progress: Option<Py<PyAny>>,
        upload: Option<Py<PyAny>>,
        on_step: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let pairs = index.map(index_pairs).transpose()?.unwrap_or_default();
        let sif_name = name.unwrap_or(&file_name);
        let text = RecordText::for_image(
            sif_name,
            model_group,
            pairs.iter().map(|(k, n)| (k.as_str(), n.as_str())),
        );
        let hook = upload.map(|upload| {
            Arc::new(PyUploadHook {
                upload,
                raised: Mutex::new(None),
            })
        });
        Ok(Self {
            request: PublishRequest {
                path,
                file_name,
                text,
                publication_date: publication_date
                    .unwrap_or_else(crate::zenodo::metadata::today_utc),
                push,
            },
            options: PublishOptions {
                resume_draft: draft_id.map(self::deposition_id).transpose()?,
                progress: progress_ref(progress),
                report: on_step.map(|f| Arc::new(PyReport(f)) as Arc<dyn PublishReport>),
                upload_hook: hook.clone().map(|h| h as Arc<dyn UploadHook>),
            },
            hook,
        })
    }

    /// The outcome as a dict, or the error; an exception the upload hook raised is raised
    /// again as it was, with the publication's error as a note.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        result: Result<PublishOutcome, publish::PublishError>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match result {
            Ok(outcome) => to_py(py, &outcome_json(&outcome)),
            Err(err) => {
                if matches!(*err.kind, PublishErrorKind::UploadHook(_)) {
                    let raised = self
                        .hook
                        .as_ref()
                        .and_then(|h| h.raised.lock().ok().and_then(|mut r| r.take()));
                    if let Some(raised) = raised {
                        add_note(py, &raised, chain(&err))?;
                        return Err(raised);
                    }
                }
                Err(err.into())
            }
        }
    }
}

/// Adds `note` to the exception `err` (PEP 678): `add_note` on Python 3.11+; on older
/// versions, which lack it, appended to `__notes__` as PEP 678 specifies (the engine is built
/// for the limited API of Python 3.9, so it cannot use the 3.11 C API).
fn add_note(py: Python<'_>, err: &PyErr, note: String) -> PyResult<()> {
    let value = err.value(py);
    if value.hasattr("add_note")? {
        value.call_method1("add_note", (note,))?;
        return Ok(());
    }
    let notes = match value.getattr("__notes__") {
        Ok(notes) => notes,
        Err(_) => {
            let notes = pyo3::types::PyList::empty(py).into_any();
            value.setattr("__notes__", &notes)?;
            notes
        }
    };
    notes.call_method1("append", (note,))?;
    Ok(())
}

/// A deposition id given as `int` or as a string of digits (upstream passes both).
fn deposition_id(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if obj.cast::<PyInt>().is_ok() {
        return obj.extract::<u64>();
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        return text.trim().parse::<u64>().map_err(|_| {
            PyValueError::new_err(format!("a Zenodo deposition id is a number, got `{text}`"))
        });
    }
    Err(PyValueError::new_err(
        "a Zenodo deposition id is an int or a string of digits",
    ))
}

fn query_pairs(params: Option<Vec<(String, String)>>) -> Vec<(String, String)> {
    params.unwrap_or_default()
}

/// A duration from Python seconds. `Duration::from_secs_f64` panics on negative, NaN and
/// huge values; here they are a `ValueError` naming the argument.
fn secs(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "`{name}` must be a finite, non-negative number of seconds, got {value}"
        ))
    })
}

/// A timeout from Python seconds: as [`secs`], and more than zero (a zero timeout would fail
/// every request).
fn timeout(name: &str, value: f64) -> PyResult<Duration> {
    match secs(name, value)? {
        d if d.is_zero() => Err(PyValueError::new_err(format!(
            "`{name}` must be more than 0 seconds, got {value}"
        ))),
        d => Ok(d),
    }
}

/// The Zenodo REST client of the engine (`kipoi_containers.zenodoclient.Client` wraps it).
#[pyclass(module = "kipoi_containers._engine", name = "ZenodoClient", frozen)]
pub(crate) struct PyZenodoClient {
    inner: ZenodoClient,
}

#[pymethods]
impl PyZenodoClient {
    #[new]
    #[pyo3(signature = (
        base_url=None, access_token=None, *, user_agent=None, max_retries=5,
        initial_backoff=0.5, max_backoff=30.0, max_retry_after=300.0,
        connect_timeout=None, read_timeout=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: Option<&str>,
        access_token: Option<&str>,
        user_agent: Option<String>,
        max_retries: u32,
        initial_backoff: f64,
        max_backoff: f64,
        max_retry_after: f64,
        connect_timeout: Option<f64>,
        read_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut config = ZenodoConfig::from_env(base_url, access_token)?;
        if let Some(ua) = user_agent {
            config.http.user_agent = ua;
        }
        config.retry.max_retries = max_retries;
        config.retry.initial_backoff = secs("initial_backoff", initial_backoff)?;
        config.retry.max_backoff = secs("max_backoff", max_backoff)?;
        config.retry.max_retry_after = secs("max_retry_after", max_retry_after)?;
        if let Some(t) = connect_timeout {
            config.http.connect_timeout = timeout("connect_timeout", t)?;
        }
        if let Some(t) = read_timeout {
            config.http.read_timeout = timeout("read_timeout", t)?;
        }
        Ok(Self {
            inner: ZenodoClient::new(config)?,
        })
    }

    /// The base URL without a trailing slash (upstream's `ZENODO_BASE`).
    #[getter]
    fn base_url(&self) -> String {
        self.inner.base()
    }

    /// Whether a token is configured (the token itself is never readable).
    #[getter]
    fn has_token(&self) -> bool {
        self.inner.config().token.is_some()
    }

    fn __repr__(&self) -> String {
        format!(
            "ZenodoClient(base_url={:?}, token={})",
            self.inner.base(),
            if self.has_token() { "'***'" } else { "None" }
        )
    }

    #[pyo3(signature = (url, params=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        params: Option<Vec<(String, String)>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = query_pairs(params);
        let value = wait(py, || self.inner.get_json(url, &q))?;
        to_py(py, &value)
    }

    #[pyo3(signature = (url, body, params=None))]
    fn put_json<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        body: &Bound<'py, PyAny>,
        params: Option<Vec<(String, String)>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = to_value(body)?;
        let q = query_pairs(params);
        let value = wait(py, || self.inner.put_json(url, &q, &body))?;
        to_py(py, &value)
    }

    #[pyo3(signature = (url, params=None, body=None))]
    fn post<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        params: Option<Vec<(String, String)>>,
        body: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(u16, Bound<'py, PyAny>)> {
        let body = body.map(to_value).transpose()?;
        let q = query_pairs(params);
        let (status, value) = wait(py, || self.inner.post_json(url, &q, body.as_ref()))?;
        Ok((status, to_py(py, &value)?))
    }

    #[pyo3(signature = (url, params=None))]
    fn delete(
        &self,
        py: Python<'_>,
        url: &str,
        params: Option<Vec<(String, String)>>,
    ) -> PyResult<()> {
        let q = query_pairs(params);
        wait(py, || self.inner.delete_url(url, &q))?;
        Ok(())
    }

    /// Streams `path` to the bucket object `url` (md5-checked); returns the bucket object.
    #[pyo3(signature = (url, path, progress=None))]
    fn upload<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        path: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let progress = progress_ref(progress);
        let up = wait(py, || self.inner.upload_to(url, &path, progress))?;
        to_py(py, &up.object)
    }

    #[pyo3(signature = (q=None, status=None, sort=None, page=None, size=None, all_versions=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_depositions<'py>(
        &self,
        py: Python<'py>,
        q: Option<String>,
        status: Option<String>,
        sort: Option<String>,
        page: Option<u32>,
        size: Option<u32>,
        all_versions: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = ListQuery {
            q,
            status,
            sort,
            page,
            size,
            all_versions,
        };
        let items = wait(py, || self.inner.list_depositions(&query))?;
        to_py(py, &serde_json::Value::Array(items))
    }

    #[pyo3(signature = (metadata=None))]
    fn create_deposition<'py>(
        &self,
        py: Python<'py>,
        metadata: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let metadata = metadata.map(to_value).transpose()?;
        let dep = wait(py, || self.inner.create_deposition(metadata.as_ref()))?;
        to_py(py, dep.raw())
    }

    fn get_deposition<'py>(
        &self,
        py: Python<'py>,
        deposition_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::deposition_id(deposition_id)?;
        let dep = wait(py, || self.inner.get_deposition(id))?;
        to_py(py, dep.raw())
    }

    fn new_version(&self, py: Python<'_>, deposition_id: &Bound<'_, PyAny>) -> PyResult<u64> {
        let id = self::deposition_id(deposition_id)?;
        wait(py, || self.inner.new_version(id))
    }

    fn find_open_draft(
        &self,
        py: Python<'_>,
        deposition_id: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let id = self::deposition_id(deposition_id)?;
        wait(py, || self.inner.find_open_draft(id))
    }

    fn list_files<'py>(
        &self,
        py: Python<'py>,
        deposition_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::deposition_id(deposition_id)?;
        let files = wait(py, || self.inner.list_files(id))?;
        to_py(py, &serde_json::Value::Array(files))
    }

    fn delete_file(
        &self,
        py: Python<'_>,
        deposition_id: &Bound<'_, PyAny>,
        file_id: &str,
    ) -> PyResult<()> {
        let id = self::deposition_id(deposition_id)?;
        wait(py, || self.inner.delete_file(id, file_id))?;
        Ok(())
    }

    #[pyo3(signature = (bucket_url, filename, path, progress=None))]
    fn upload_file<'py>(
        &self,
        py: Python<'py>,
        bucket_url: &str,
        filename: &str,
        path: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let progress = progress_ref(progress);
        let up = wait(py, || {
            self.inner
                .upload_file(bucket_url, filename, &path, progress)
        })?;
        to_py(py, &up.object)
    }

    fn update_metadata<'py>(
        &self,
        py: Python<'py>,
        deposition_id: &Bound<'py, PyAny>,
        metadata: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::deposition_id(deposition_id)?;
        let metadata = to_value(metadata)?;
        let dep = wait(py, || self.inner.update_metadata(id, &metadata))?;
        to_py(py, dep.raw())
    }

    fn publish<'py>(
        &self,
        py: Python<'py>,
        deposition_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::deposition_id(deposition_id)?;
        let dep = wait(py, || self.inner.publish(id))?;
        to_py(py, dep.raw())
    }

    fn delete_deposition(&self, py: Python<'_>, deposition_id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = self::deposition_id(deposition_id)?;
        wait(py, || self.inner.delete_deposition(id))?;
        Ok(())
    }

    /// Publishes `path` as a new record named `file_name` (see `zenodo::publish`); the
    /// record's text is decided from `index` (`model-to-singularity`) for the SIF `name`.
    #[pyo3(signature = (
        path, file_name, *, model_group, name=None, index=None, push=true, draft_id=None,
        publication_date=None, progress=None, upload=None, on_step=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn publish_new<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        file_name: String,
        model_group: &str,
        name: Option<&str>,
        index: Option<&Bound<'py, PyAny>>,
        push: bool,
        draft_id: Option<&Bound<'py, PyAny>>,
        publication_date: Option<String>,
        progress: Option<Py<PyAny>>,
        upload: Option<Py<PyAny>>,
        on_step: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = PublishArgs::new(
            path,
            file_name,
            model_group,
            name,
            index,
            push,
            draft_id,
            publication_date,
            progress,
            upload,
            on_step,
        )?;
        let result = wait(py, || async {
            Ok::<_, PyErr>(publish::publish_new(&self.inner, &args.request, &args.options).await)
        })?;
        args.finish(py, result)
    }

    /// Publishes `path` as a new version of `record` (an id or an index entry's URL).
    #[pyo3(signature = (
        record, path, file_name, *, model_group, name=None, index=None, push=true,
        draft_id=None, publication_date=None, progress=None, upload=None, on_step=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn publish_version<'py>(
        &self,
        py: Python<'py>,
        record: &Bound<'py, PyAny>,
        path: PathBuf,
        file_name: String,
        model_group: &str,
        name: Option<&str>,
        index: Option<&Bound<'py, PyAny>>,
        push: bool,
        draft_id: Option<&Bound<'py, PyAny>>,
        publication_date: Option<String>,
        progress: Option<Py<PyAny>>,
        upload: Option<Py<PyAny>>,
        on_step: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record_id(record)?;
        let args = PublishArgs::new(
            path,
            file_name,
            model_group,
            name,
            index,
            push,
            draft_id,
            publication_date,
            progress,
            upload,
            on_step,
        )?;
        let result = wait(py, || async {
            Ok::<_, PyErr>(
                publish::publish_version(&self.inner, record, &args.request, &args.options).await,
            )
        })?;
        args.finish(py, result)
    }

    /// Downloads `url` to `dest` (redirects followed), checking `md5` when given; returns
    /// the md5 of what was written.
    #[pyo3(signature = (url, dest, md5=None, progress=None))]
    fn download(
        &self,
        py: Python<'_>,
        url: &str,
        dest: PathBuf,
        md5: Option<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let progress = progress_ref(progress);
        let sent = wait(py, || {
            self.inner.download(url, &dest, md5.as_deref(), progress)
        })?;
        Ok(sent.md5)
    }
}

/// md5 (hex) of a file, read in one streaming pass. Failures raise
/// `kipoi_containers.errors.FileIOError` (an `OSError`) naming the file, with `errno` set.
#[pyfunction]
pub(crate) fn md5_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    wait_blocking(py, move || {
        transfer::md5_file(&path)
            .map(|(md5, _)| md5)
            .map_err(|e| file_io_error(&e))
    })
}

/// `FileIOError` with the message chain and the OS `errno` (not `filename`/`strerror`:
/// setting those makes `OSError.__str__` drop the message for `[Errno n] …`).
fn file_io_error(err: &TransferError) -> PyErr {
    let errno = match err {
        TransferError::Open { source, .. }
        | TransferError::Read { source, .. }
        | TransferError::Write { source, .. } => source.raw_os_error(),
        _ => None,
    };
    let attrs: Vec<(&str, Attr)> = errno
        .and_then(|n| usize::try_from(n).ok())
        .map(|n| ("errno", Attr::Int(n)))
        .into_iter()
        .collect();
    raise_with("FileIOError", chain(err), &attrs)
}

/// The record id of a Zenodo URL (an index entry's `…/record/<id>/files/…`), or `None`.
#[pyfunction(name = "record_id_from_url")]
pub(crate) fn record_id_of_url(url: &str) -> Option<u64> {
    record_id_from_url(url)
}

/// `(title, description)` of the record of the SIF `sif_name`, decided from `index`
/// (`model-to-singularity`: shared environment, group except others, or `model_group`'s own).
#[pyfunction]
#[pyo3(signature = (sif_name, model_group, index=None))]
pub(crate) fn record_text(
    sif_name: &str,
    model_group: &str,
    index: Option<&Bound<'_, PyAny>>,
) -> PyResult<(String, String)> {
    let pairs = index.map(index_pairs).transpose()?.unwrap_or_default();
    let role = ImageRole::of(
        sif_name,
        pairs.iter().map(|(k, n)| (k.as_str(), n.as_str())),
    );
    let text = RecordText::for_role(&role, model_group);
    Ok((text.title, text.description))
}

/// `(title, description)` of a model group's own record.
#[pyfunction]
pub(crate) fn model_group_text(group: &str) -> (String, String) {
    let text = RecordText::model_group(group);
    (text.title, text.description)
}

/// `(title, description)` of a shared environment's record.
#[pyfunction]
pub(crate) fn shared_env_text(env: &str) -> (String, String) {
    let text = RecordText::shared_env(env);
    (text.title, text.description)
}

/// `(title, description)` of `group`'s record when `others` have images of their own.
#[pyfunction]
pub(crate) fn group_except_text(group: &str, others: Vec<String>) -> (String, String) {
    let text = RecordText::group_except(group, &others);
    (text.title, text.description)
}

/// The deposition metadata kipoi stores (`publication_date`: today in UTC when not given).
#[pyfunction]
#[pyo3(signature = (title, description, publication_date=None))]
pub(crate) fn deposit_metadata<'py>(
    py: Python<'py>,
    title: String,
    description: String,
    publication_date: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let date = publication_date.unwrap_or_else(crate::zenodo::metadata::today_utc);
    to_py(py, &RecordText { title, description }.to_metadata(&date))
}
