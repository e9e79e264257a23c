//! Bindings for the Docker Engine path: blocking calls release the GIL; `*_async`
//! variants return awaitables for notebooks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use super::wait::{awaitable, wait};
use crate::docker::{self, Credentials, DockerError, Engine, TestOptions};
use crate::dockerfile::{self, RenderOptions, Variant};

/// The outcome of one model test (read-only).
#[pyclass(
    module = "kipoi_containers._engine",
    name = "ModelTestResult",
    frozen,
    get_all
)]
#[derive(Clone)]
pub(crate) struct PyModelTestResult {
    model: String,
    image: String,
    exit_code: i64,
    passed: bool,
    log_tail: String,
    seconds: f64,
}

#[pymethods]
impl PyModelTestResult {
    fn __bool__(&self) -> bool {
        self.passed
    }
    fn __repr__(&self) -> String {
        format!(
            "ModelTestResult(model={:?}, image={:?}, passed={}, exit_code={}, seconds={:.1})",
            self.model,
            self.image,
            if self.passed { "True" } else { "False" },
            self.exit_code,
            self.seconds
        )
    }
}

impl From<docker::ModelTestResult> for PyModelTestResult {
    fn from(r: docker::ModelTestResult) -> Self {
        Self {
            model: r.model,
            image: r.image,
            exit_code: r.exit_code,
            passed: r.passed,
            log_tail: r.log_tail,
            seconds: r.seconds,
        }
    }
}

fn variant(name: &str) -> PyResult<Variant> {
    match name {
        "full" => Ok(Variant::Full),
        "slim" => Ok(Variant::Slim),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "variant must be `full` or `slim`, got `{other}`"
        ))),
    }
}

/// Renders a group's Dockerfile; writes it to `output_dir/Dockerfile.<tag>[-slim]` when
/// `output_dir` is given. Returns `(path or None, text, recipe_hash)`.
#[pyfunction]
#[pyo3(signature = (model_group, tag, variant_name="full", output_dir=None, template_dir=None, base_image=None, build_image=None, slim_base_image=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_dockerfile(
    model_group: &str,
    tag: &str,
    variant_name: &str,
    output_dir: Option<PathBuf>,
    template_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
    slim_base_image: Option<String>,
) -> PyResult<(Option<PathBuf>, String, String)> {
    let v = variant(variant_name)?;
    let defaults = RenderOptions::default();
    let opts = RenderOptions {
        template_dir,
        base_image: base_image.unwrap_or(defaults.base_image),
        build_image: build_image.unwrap_or(defaults.build_image),
        slim_base_image: slim_base_image.unwrap_or(defaults.slim_base_image),
    };
    match output_dir {
        Some(dir) => {
            let (path, r) = dockerfile::write(&dir, tag, model_group, v, &opts)?;
            Ok((Some(path), r.text, r.recipe_hash))
        }
        None => {
            let r = dockerfile::render(model_group, v, &opts)?;
            Ok((None, r.text, r.recipe_hash))
        }
    }
}

/// Renders the group templates for `model_group` as `image` (full or slim, from its tag)
/// into `dockerfiles_dir/Dockerfile.<tag>[-slim]`. Refused for an image the index
/// (`container_info`, default `$KIPOI_CONTAINER_INFO` or `./container-info`) has as shared.
/// Returns `(path, text, recipe_hash)`.
#[pyfunction]
#[pyo3(signature = (model_group, image, dockerfiles_dir, template_dir=None, base_image=None, container_info=None))]
pub(crate) fn render_dockerfile_for_image(
    model_group: &str,
    image: &str,
    dockerfiles_dir: PathBuf,
    template_dir: Option<PathBuf>,
    base_image: Option<String>,
    container_info: Option<PathBuf>,
) -> PyResult<(PathBuf, String, String)> {
    let index =
        crate::index::Index::load(&crate::config::container_info(container_info.as_deref()))?;
    let defaults = RenderOptions::default();
    let opts = crate::recipes::RecipeOptions {
        render: RenderOptions {
            template_dir,
            base_image: base_image.unwrap_or(defaults.base_image),
            ..defaults
        },
        envfile_dir: None,
    };
    let (path, recipe) =
        crate::recipes::write_group_recipe(&index, &dockerfiles_dir, model_group, image, &opts)?;
    Ok((path, recipe.text, recipe.hash))
}

/// Checks the daemon answers; returns the address connected to.
#[pyfunction]
#[pyo3(signature = (docker_host=None))]
pub(crate) fn docker_ping(py: Python<'_>, docker_host: Option<String>) -> PyResult<String> {
    wait(py, || async {
        let engine = Engine::connect(docker_host.as_deref()).await?;
        Ok::<_, PyErr>(engine.addr().to_owned())
    })
}

async fn build(
    dockerfile_path: PathBuf,
    image: String,
    context_dir: Option<PathBuf>,
    labels: HashMap<String, String>,
    nocache: bool,
    docker_host: Option<String>,
) -> PyResult<String> {
    let text =
        std::fs::read_to_string(&dockerfile_path).map_err(|source| docker::DockerError::Io {
            path: dockerfile_path.clone(),
            step: "reading the Dockerfile",
            source,
        })?;
    let engine = Engine::connect(docker_host.as_deref()).await?;
    log::info!("building `{image}` from `{}`", dockerfile_path.display());
    let mut on_line = |line: &str| log::info!("[build {image}] {line}");
    let id = engine
        .build(
            &image,
            &text,
            context_dir.as_deref(),
            &labels,
            nocache,
            &mut on_line,
        )
        .await?;
    Ok(id)
}

fn all_labels(
    labels: Option<HashMap<String, String>>,
    model_group: Option<&str>,
    zoo_commit: Option<&str>,
) -> HashMap<String, String> {
    let mut all = docker::group_labels(model_group, zoo_commit);
    all.extend(labels.unwrap_or_default());
    all
}

/// Builds `image` from the Dockerfile at `dockerfile_path`; returns the image id. The
/// image is labelled with its recipe hash, and with `model_group` / `zoo_commit` when given.
#[pyfunction]
#[pyo3(signature = (dockerfile_path, image, context_dir=None, labels=None, nocache=false, model_group=None, zoo_commit=None, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_image(
    py: Python<'_>,
    dockerfile_path: PathBuf,
    image: String,
    context_dir: Option<PathBuf>,
    labels: Option<HashMap<String, String>>,
    nocache: bool,
    model_group: Option<String>,
    zoo_commit: Option<String>,
    docker_host: Option<String>,
) -> PyResult<String> {
    let labels = all_labels(labels, model_group.as_deref(), zoo_commit.as_deref());
    wait(py, || {
        build(
            dockerfile_path,
            image,
            context_dir,
            labels,
            nocache,
            docker_host,
        )
    })
}

/// Awaitable [`build_image`].
#[pyfunction]
#[pyo3(signature = (dockerfile_path, image, context_dir=None, labels=None, nocache=false, model_group=None, zoo_commit=None, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_image_async(
    py: Python<'_>,
    dockerfile_path: PathBuf,
    image: String,
    context_dir: Option<PathBuf>,
    labels: Option<HashMap<String, String>>,
    nocache: bool,
    model_group: Option<String>,
    zoo_commit: Option<String>,
    docker_host: Option<String>,
) -> PyResult<Bound<'_, PyAny>> {
    let labels = all_labels(labels, model_group.as_deref(), zoo_commit.as_deref());
    awaitable(
        py,
        build(
            dockerfile_path,
            image,
            context_dir,
            labels,
            nocache,
            docker_host,
        ),
    )
}

/// A duration in seconds from Python, refusing negative, NaN and absurd values.
fn seconds(what: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value
        .map(|v| {
            Duration::try_from_secs_f64(v).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "{what} must be a non-negative number of seconds, got {v}"
                ))
            })
        })
        .transpose()
}

fn test_options(
    zoo_dir: Option<PathBuf>,
    extra_args: Option<Vec<String>>,
    timeout: Option<f64>,
    network: bool,
) -> PyResult<TestOptions> {
    Ok(TestOptions {
        zoo_dir,
        extra_args,
        timeout: seconds("timeout", timeout)?,
        network,
    })
}

async fn test_one(
    image: String,
    model: String,
    opts: TestOptions,
    check: bool,
    docker_host: Option<String>,
) -> PyResult<PyModelTestResult> {
    let engine = Engine::connect(docker_host.as_deref()).await?;
    let result = engine.test_model(&image, &model, &opts).await?;
    Ok(if check { result.into_result()? } else { result }.into())
}

/// Runs `kipoi test MODEL` in `image`. Extra arguments default to the per-model table.
/// A failed test raises `ModelTestError` with `check`, else is a result with `passed=False`;
/// engine problems always raise.
#[pyfunction]
#[pyo3(signature = (image, model, zoo_dir=None, extra_args=None, timeout=None, check=false, network=false, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn test_model(
    py: Python<'_>,
    image: String,
    model: String,
    zoo_dir: Option<PathBuf>,
    extra_args: Option<Vec<String>>,
    timeout: Option<f64>,
    check: bool,
    network: bool,
    docker_host: Option<String>,
) -> PyResult<PyModelTestResult> {
    let opts = test_options(zoo_dir, extra_args, timeout, network)?;
    wait(py, || test_one(image, model, opts, check, docker_host))
}

/// Awaitable [`test_model`].
#[pyfunction]
#[pyo3(signature = (image, model, zoo_dir=None, extra_args=None, timeout=None, check=false, network=false, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn test_model_async(
    py: Python<'_>,
    image: String,
    model: String,
    zoo_dir: Option<PathBuf>,
    extra_args: Option<Vec<String>>,
    timeout: Option<f64>,
    check: bool,
    network: bool,
    docker_host: Option<String>,
) -> PyResult<Bound<'_, PyAny>> {
    let opts = test_options(zoo_dir, extra_args, timeout, network)?;
    awaitable(py, test_one(image, model, opts, check, docker_host))
}

/// Tests several models of `image` concurrently (at most `concurrency`, default: the
/// number of cores); results in input order.
#[pyfunction]
#[pyo3(signature = (image, models, zoo_dir=None, concurrency=None, timeout=None, network=false, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn test_models(
    py: Python<'_>,
    image: String,
    models: Vec<String>,
    zoo_dir: Option<PathBuf>,
    concurrency: Option<usize>,
    timeout: Option<f64>,
    network: bool,
    docker_host: Option<String>,
) -> PyResult<Vec<PyModelTestResult>> {
    let concurrency = concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get));
    let opts = test_options(zoo_dir, None, timeout, network)?;
    wait(py, || async {
        let engine = Engine::connect(docker_host.as_deref()).await?;
        let results = engine
            .test_models(&image, &models, &opts, concurrency)
            .await;
        results
            .into_iter()
            .map(|r| Ok(PyModelTestResult::from(r?)))
            .collect::<PyResult<Vec<_>>>()
    })
}

async fn push(
    image: String,
    repository: Option<String>,
    tag: Option<String>,
    credentials: Option<Credentials>,
    docker_host: Option<String>,
) -> PyResult<(String, String)> {
    let (local_repo, local_tag) = image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or((image.as_str(), "latest"), |(r, t)| (r, t));
    let repository = repository.unwrap_or_else(|| local_repo.to_owned());
    let tag = tag.unwrap_or_else(|| local_tag.to_owned());
    let engine = Engine::connect(docker_host.as_deref()).await?;
    let mut on_progress = |status: &str, detail: &str| {
        if detail.is_empty() {
            log::info!("[push {repository}:{tag}] {status}");
        } else {
            log::debug!("[push {repository}:{tag}] {status} {detail}");
        }
    };
    let r = engine
        .push(
            &image,
            &repository,
            &tag,
            credentials.as_ref(),
            &mut on_progress,
        )
        .await?;
    Ok((r.reference, r.digest))
}

fn credentials(username: Option<String>, password: Option<String>) -> Option<Credentials> {
    match (username, password) {
        (Some(username), Some(password)) => Some(Credentials {
            username,
            password: crate::redact::Secret::new(password)?,
        }),
        _ => Credentials::from_env(),
    }
}

/// Pushes local `image` as `repository:tag` (defaults: the image's own name). Credentials
/// from the arguments, else `DOCKER_USERNAME` / `DOCKER_PASSWORD`. Returns `(reference, digest)`.
#[pyfunction]
#[pyo3(signature = (image, repository=None, tag=None, username=None, password=None, docker_host=None))]
pub(crate) fn push_image(
    py: Python<'_>,
    image: String,
    repository: Option<String>,
    tag: Option<String>,
    username: Option<String>,
    password: Option<String>,
    docker_host: Option<String>,
) -> PyResult<(String, String)> {
    let creds = credentials(username, password);
    wait(py, || push(image, repository, tag, creds, docker_host))
}

/// Awaitable [`push_image`].
#[pyfunction]
#[pyo3(signature = (image, repository=None, tag=None, username=None, password=None, docker_host=None))]
pub(crate) fn push_image_async(
    py: Python<'_>,
    image: String,
    repository: Option<String>,
    tag: Option<String>,
    username: Option<String>,
    password: Option<String>,
    docker_host: Option<String>,
) -> PyResult<Bound<'_, PyAny>> {
    let creds = credentials(username, password);
    awaitable(py, push(image, repository, tag, creds, docker_host))
}

/// Removes what this tool created (label filter); with `images`, its images too.
/// Returns the removed ids by kind.
#[pyfunction]
#[pyo3(signature = (images=false, docker_host=None))]
pub(crate) fn docker_cleanup(
    py: Python<'_>,
    images: bool,
    docker_host: Option<String>,
) -> PyResult<HashMap<String, Vec<String>>> {
    wait(py, || async {
        let engine = Engine::connect(docker_host.as_deref()).await?;
        let r = engine.cleanup(images).await?;
        Ok::<_, PyErr>(HashMap::from([
            ("containers".to_owned(), r.containers),
            ("images".to_owned(), r.images),
            ("networks".to_owned(), r.networks),
            ("volumes".to_owned(), r.volumes),
        ]))
    })
}

/// Writes `image` as a `docker save` tar to `path` (streamed, atomic); returns the bytes written.
#[pyfunction]
#[pyo3(signature = (image, path, docker_host=None))]
pub(crate) fn export_image(
    py: Python<'_>,
    image: String,
    path: PathBuf,
    docker_host: Option<String>,
) -> PyResult<u64> {
    wait(py, || async {
        let engine = Engine::connect(docker_host.as_deref()).await?;
        let last = std::sync::atomic::AtomicU64::new(0);
        let shown = image.clone();
        let progress: crate::transfer::ProgressRef = Some(std::sync::Arc::new(move |n: u64, _| {
            if n >> 26 > last.load(std::sync::atomic::Ordering::Relaxed) {
                last.store(n >> 26, std::sync::atomic::Ordering::Relaxed);
                log::info!("exporting `{shown}`: {} MiB", n >> 20);
            }
        }));
        let sent = engine.export_to_file(&image, &path, progress).await?;
        Ok::<_, PyErr>(sent.bytes)
    })
}

/// The image `reference` in its registry, read without pulling: `(digest, labels)`, or
/// `None` when the registry does not have it. Credentials from the arguments, else
/// `DOCKER_USERNAME` / `DOCKER_PASSWORD`.
#[pyfunction]
#[pyo3(signature = (reference, username=None, password=None))]
pub(crate) fn registry_image(
    py: Python<'_>,
    reference: String,
    username: Option<String>,
    password: Option<String>,
) -> PyResult<Option<(String, HashMap<String, String>)>> {
    let creds = credentials(username, password);
    wait(py, || async move {
        let reader = docker::RegistryReader::new(creds).map_err(DockerError::from)?;
        let image = reader.image(&reference).await.map_err(DockerError::from)?;
        Ok::<_, PyErr>(image.map(|i| (i.digest, i.labels)))
    })
}

/// Pulls `reference` (credentials from the arguments, else the environment); returns the
/// local image id.
#[pyfunction]
#[pyo3(signature = (reference, username=None, password=None, docker_host=None))]
pub(crate) fn pull_image(
    py: Python<'_>,
    reference: String,
    username: Option<String>,
    password: Option<String>,
    docker_host: Option<String>,
) -> PyResult<String> {
    let creds = credentials(username, password);
    wait(py, || async move {
        let engine = Engine::connect(docker_host.as_deref()).await?;
        Ok::<_, PyErr>(engine.pull(&reference, creds.as_ref()).await?)
    })
}

/// Makes the index image `image` present locally, pulling it from `repository` (default
/// `$KIPOI_DOCKER_REPO`, else `kipoi/kipoi-docker`) when it is not; returns its id.
#[pyfunction]
#[pyo3(signature = (image, repository=None, docker_host=None))]
pub(crate) fn ensure_image(
    py: Python<'_>,
    image: String,
    repository: Option<String>,
    docker_host: Option<String>,
) -> PyResult<String> {
    let repository = crate::config::docker_repository(repository.as_deref());
    let creds = Credentials::from_env();
    wait(py, || async move {
        let engine = Engine::connect(docker_host.as_deref()).await?;
        engine
            .ensure_local(&image, &repository, None, creds.as_ref())
            .await?;
        Ok::<_, PyErr>(engine.image_id(&image).await?)
    })
}

/// The per-model extra `kipoi test` arguments (from `test-containers/model-test-args.json`).
#[pyfunction]
pub(crate) fn model_test_args(model: &str) -> Vec<String> {
    docker::model_test_args(model)
}
