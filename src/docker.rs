//! The Docker Engine path (bollard): build, test models in containers, push, export,
//! clean up — on the real engine, through `DOCKER_HOST` or the local socket.
//!
//! Images this tool builds carry `org.kipoi-containers.created-by=kipoi_containers`, the
//! containers it runs `org.kipoi-containers.run-by=kipoi_containers`; cleanup only ever
//! touches objects with those labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, PruneImagesOptionsBuilder, PruneNetworksOptionsBuilder,
    PruneVolumesOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    TagImageOptionsBuilder,
};
use bollard::Docker;

use crate::redact::Secret;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};

/// Label on every image this tool builds.
pub const CREATED_BY_LABEL: &str = "org.kipoi-containers.created-by";
pub const CREATED_BY_VALUE: &str = "kipoi_containers";
/// Label on every container this tool runs. Distinct from [`CREATED_BY_LABEL`] because
/// a container inherits its image's labels: a container someone else starts from one of
/// our images carries `created-by` but never `run-by`.
pub const RUN_BY_LABEL: &str = "org.kipoi-containers.run-by";
pub const ZOO_COMMIT_LABEL: &str = "org.kipoi-containers.zoo-commit";
pub const MODEL_GROUP_LABEL: &str = "org.kipoi-containers.model-group";
pub const RECIPE_LABEL: &str = "org.kipoi-containers.recipe";

/// Extra `kipoi test` arguments per model or group (longest path-prefix key wins), as
/// data rather than code: `test-containers/model-test-args.json`, compiled in.
const MODEL_TEST_ARGS: &str = include_str!("../test-containers/model-test-args.json");

/// The extra `kipoi test` arguments for `model` from the per-model table.
#[must_use]
pub fn model_test_args(model: &str) -> Vec<String> {
    static TABLE: std::sync::OnceLock<indexmap::IndexMap<String, Vec<String>>> =
        std::sync::OnceLock::new();
    // The table is compiled in and parsed by a unit test, so it cannot be malformed here.
    let table = TABLE.get_or_init(|| serde_json::from_str(MODEL_TEST_ARGS).unwrap_or_default());
    crate::index::longest_prefix_key(table.keys(), model)
        .and_then(|k| table.get(k))
        .cloned()
        .unwrap_or_default()
}

/// Where a zoo checkout is mounted read-only in a test container, and the writable
/// mirror of it (a tmpfs of symlinks) the test runs in.
pub const ZOO_MOUNT_RO: &str = "/kipoi-zoo-ro";
pub const ZOO_MOUNT_POINT: &str = "/kipoi-zoo";
/// Lines of log kept for error messages.
const TAIL_LINES: usize = 40;

/// Errors of the Docker path; each names its subject and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("Docker daemon not reachable at {addr}: is it running? (set DOCKER_HOST to use another engine)")]
    Unreachable {
        addr: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("building `{image}` failed at step `{step}`: {message}\n--- last build log lines ---\n{tail}")]
    Build {
        image: String,
        step: String,
        message: String,
        tail: String,
    },
    #[error("model `{model}` failed its test in `{image}` (exit code {exit_code})\n--- last log lines ---\n{tail}")]
    ModelTest {
        model: String,
        image: String,
        exit_code: i64,
        tail: String,
    },
    #[error("registry `{registry}` rejected the credentials for `{image}`: {message}; check DOCKER_USERNAME and DOCKER_PASSWORD")]
    PushAuth {
        image: String,
        registry: String,
        message: String,
    },
    #[error("pushing `{image}` failed: {message}")]
    Push { image: String, message: String },
    #[error("image `{0}` does not exist in the local Docker Engine; build or pull it first")]
    ImageNotFound(String),
    #[error("Docker {step} failed")]
    Api {
        step: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    Local(#[from] crate::transfer::TransferError),
    #[error("could not read `{}` ({step})", path.display())]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn api(step: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let step = step.into();
    move |source| DockerError::Api { step, source }
}

/// Registry credentials; the password is a [`Secret`] (never shown).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    /// From `DOCKER_USERNAME` / `DOCKER_PASSWORD`, when both are set.
    #[must_use]
    pub fn from_env() -> Option<Self> {
        let username = std::env::var("DOCKER_USERNAME")
            .ok()
            .filter(|s| !s.trim().is_empty())?;
        let password = Secret::from_env(&["DOCKER_PASSWORD"])?;
        Some(Self { username, password })
    }
}

/// The outcome of one model test.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTestResult {
    pub model: String,
    pub image: String,
    pub exit_code: i64,
    pub passed: bool,
    /// The last lines of the container's output.
    pub log_tail: String,
    pub seconds: f64,
}

impl ModelTestResult {
    /// `Err(DockerError::ModelTest)` for a failed test.
    pub fn into_result(self) -> Result<Self, DockerError> {
        if self.passed {
            Ok(self)
        } else {
            Err(DockerError::ModelTest {
                model: self.model,
                image: self.image,
                exit_code: self.exit_code,
                tail: self.log_tail,
            })
        }
    }
}

/// How a model test runs.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// A zoo checkout to mount read-only; the test then runs `kipoi test MODEL
    /// --source=dir` against exactly that checkout. `None`: upstream's `kipoi test MODEL
    /// --source=kipoi` (clones the zoo from GitHub inside the container).
    pub zoo_dir: Option<PathBuf>,
    /// Give a test with a mounted zoo network access (real models download their
    /// weights); without it such a test runs with no network at all.
    pub network: bool,
    /// Extra `kipoi test` arguments; `None`: the model's entry in the per-model table
    /// (`test-containers/model-test-args.json`, e.g. `--batch_size=2` for Basenji).
    pub extra_args: Option<Vec<String>>,
    /// Kill the test after this long.
    pub timeout: Option<Duration>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// `repository:tag` as pushed.
    pub reference: String,
    /// `sha256:…` digest the registry reported.
    pub digest: String,
}

/// What a cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// A connected Docker Engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    addr: String,
}

impl Engine {
    /// Connects through `host` (e.g. `unix:///var/run/docker.sock`, `tcp://…`), else
    /// `$DOCKER_HOST`, else the local socket, and checks the daemon answers.
    pub async fn connect(host: Option<&str>) -> Result<Self, DockerError> {
        let env_host = std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty());
        let addr = host
            .map(str::to_owned)
            .or(env_host)
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let unreachable = |source| DockerError::Unreachable {
            addr: addr.clone(),
            source,
        };
        let docker = if let Some(path) = addr.strip_prefix("unix://") {
            Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION)
        } else if addr.starts_with("tcp://") || addr.starts_with("http://") {
            Docker::connect_with_http(&addr, 600, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_unix(&addr, 600, bollard::API_DEFAULT_VERSION)
        }
        .map_err(unreachable)?
        .with_request_modifier(url_safe_registry_auth);
        docker.ping().await.map_err(unreachable)?;
        Ok(Self { docker, addr })
    }

    /// The address connected to.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Builds `image` from `dockerfile` (text) with the files of `context_dir` (if any) as
    /// context. Each build log line goes to `on_line`; a failing step raises
    /// [`DockerError::Build`] naming the step with the last log lines.
    pub async fn build(
        &self,
        image: &str,
        dockerfile: &str,
        context_dir: Option<&Path>,
        labels: &HashMap<String, String>,
        nocache: bool,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError> {
        let context = {
            let (text, dir) = (dockerfile.to_owned(), context_dir.map(Path::to_path_buf));
            tokio::task::spawn_blocking(move || build_context(&text, dir.as_deref()))
                .await
                .map_err(|e| DockerError::Io {
                    path: PathBuf::from("Dockerfile"),
                    step: "preparing the build context",
                    source: std::io::Error::other(e),
                })??
        };
        let mut labels = labels.clone();
        labels.insert(CREATED_BY_LABEL.into(), CREATED_BY_VALUE.into());
        labels
            .entry(RECIPE_LABEL.into())
            .or_insert_with(|| recipe_hash(dockerfile));
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(image)
            .rm(true)
            .forcerm(true)
            .nocache(nocache)
            .labels(&labels)
            .build();
        let mut stream = self.docker.build_image(
            options,
            None,
            Some(bollard::body_full(Bytes::from(context))),
        );
        let mut tail: Vec<String> = Vec::new();
        let mut step = String::from("(before the first step)");
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        let text = strip_ansi(&text);
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            if line.starts_with("Step ") {
                                step = line.to_owned();
                            }
                            on_line(line);
                            push_tail(&mut tail, line);
                        }
                    }
                    if let Some(aux) = info.aux.and_then(|a| a.id) {
                        image_id = Some(aux);
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(build_error(image, &step, detail, &tail));
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_error(image, &step, error, &tail));
                }
                Err(e) => return Err(api(format!("build of `{image}`"))(e)),
            }
        }
        match image_id {
            Some(id) => Ok(id),
            None => self.image_id(image).await,
        }
    }

    /// The id of a local image.
    pub async fn image_id(&self, image: &str) -> Result<String, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(info.id.unwrap_or_default()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(DockerError::ImageNotFound(image.to_owned())),
            Err(e) => Err(api(format!("inspecting `{image}`"))(e)),
        }
    }

    /// The labels of a local image.
    pub async fn image_labels(&self, image: &str) -> Result<HashMap<String, String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(info.config.and_then(|c| c.labels).unwrap_or_default()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(DockerError::ImageNotFound(image.to_owned())),
            Err(e) => Err(api(format!("inspecting `{image}`"))(e)),
        }
    }

    /// Runs `kipoi test MODEL` in a fresh container of `image`; the container is always
    /// removed. A failing test is a result with `passed == false`, not an error.
    pub async fn test_model(
        &self,
        image: &str,
        model: &str,
        opts: &TestOptions,
    ) -> Result<ModelTestResult, DockerError> {
        crate::names::validate_model_name(model).map_err(|e| DockerError::ModelTest {
            model: model.escape_debug().to_string(),
            image: image.to_owned(),
            exit_code: -1,
            tail: e.to_string(),
        })?;
        self.image_id(image).await?;
        let mut test_args = vec![model.to_owned()];
        let mut host_config = HostConfig::default();
        let (entrypoint, working_dir, env) = if let Some(zoo) = &opts.zoo_dir {
            let zoo = std::fs::canonicalize(zoo).map_err(|source| DockerError::Io {
                path: zoo.clone(),
                step: "resolving the zoo checkout to mount",
                source,
            })?;
            // The checkout is mounted read-only; a tmpfs mirrors its folders with symlinks
            // to its files (`cp -as`: no contents copied), so kipoi can still create the
            // `downloaded/` folders real models need, and the checkout stays untouched.
            host_config.binds = Some(vec![format!("{}:{ZOO_MOUNT_RO}:ro", zoo.display())]);
            host_config.tmpfs = Some(HashMap::from([(
                ZOO_MOUNT_POINT.to_owned(),
                "exec".to_owned(),
            )]));
            if !opts.network {
                host_config.network_mode = Some("none".into());
            }
            test_args.push("--source=dir".into());
            let script =
                format!("cp -as {ZOO_MOUNT_RO}/. {ZOO_MOUNT_POINT}/ && exec kipoi test \"$@\"");
            (
                vec!["sh".to_owned(), "-c".to_owned(), script, "sh".to_owned()],
                Some(ZOO_MOUNT_POINT.to_owned()),
                // Python must not try to write bytecode next to the read-only sources.
                vec!["PYTHONDONTWRITEBYTECODE=1".to_owned()],
            )
        } else {
            test_args.push("--source=kipoi".into());
            (
                vec!["kipoi".to_owned(), "test".to_owned()],
                None,
                Vec::new(),
            )
        };
        match &opts.extra_args {
            Some(args) => test_args.extend(args.iter().cloned()),
            None => test_args.extend(model_test_args(model)),
        }
        let labels = HashMap::from([
            (RUN_BY_LABEL.to_owned(), CREATED_BY_VALUE.to_owned()),
            (
                "org.kipoi-containers.purpose".to_owned(),
                "model-test".to_owned(),
            ),
        ]);
        let config = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(entrypoint),
            cmd: Some(test_args),
            working_dir,
            env: Some(env),
            labels: Some(labels),
            host_config: Some(host_config),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let started = Instant::now();
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().build()),
                config,
            )
            .await
            .map_err(api(format!(
                "creating a test container for `{model}` in `{image}`"
            )))?;
        let id = created.id;
        // Removes the container even if this future is dropped (a cancelled awaitable).
        let mut guard = ContainerGuard {
            docker: self.docker.clone(),
            id: id.clone(),
            armed: true,
        };
        let outcome = self.run_to_end(&id, opts.timeout).await;
        guard.armed = false;
        remove_container(&self.docker, &id).await;
        let (exit_code, log_tail) = outcome?;
        let result = ModelTestResult {
            model: model.to_owned(),
            image: image.to_owned(),
            exit_code,
            passed: exit_code == 0,
            log_tail,
            seconds: started.elapsed().as_secs_f64(),
        };
        log::info!(
            "test of `{model}` in `{image}`: {} in {:.1} s",
            if result.passed { "passed" } else { "FAILED" },
            result.seconds
        );
        Ok(result)
    }

    async fn run_to_end(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<(i64, String), DockerError> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(api(format!("starting container {id}")))?;
        let wait = async {
            let mut waits = self.docker.wait_container(id, None);
            let mut code = 0;
            while let Some(w) = waits.next().await {
                match w {
                    Ok(r) => code = r.status_code,
                    Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => {
                        code = c
                    }
                    Err(e) => return Err(api(format!("waiting for container {id}"))(e)),
                }
            }
            Ok(code)
        };
        let code = match timeout {
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r?,
                Err(_) => {
                    let _ = self
                        .docker
                        .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
                        .await;
                    -1
                }
            },
            None => wait.await?,
        };
        let mut logs = self.docker.logs(
            id,
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .follow(false)
                    .build(),
            ),
        );
        let mut tail = Vec::new();
        while let Some(chunk) = logs.next().await {
            let chunk = chunk.map_err(api(format!("reading logs of container {id}")))?;
            for line in strip_ansi(&chunk.to_string()).lines() {
                log::debug!("[{}] {line}", &id[..id.len().min(12)]);
                push_tail(&mut tail, line);
            }
        }
        if code == -1 && timeout.is_some() {
            push_tail(&mut tail, "(killed: the test exceeded its time limit)");
        }
        Ok((code, tail.join("\n")))
    }

    /// Tests `models` in `image`, at most `concurrency` at a time; results in input order.
    pub async fn test_models(
        &self,
        image: &str,
        models: &[String],
        opts: &TestOptions,
        concurrency: usize,
    ) -> Vec<Result<ModelTestResult, DockerError>> {
        futures_util::stream::iter(models.iter())
            .map(|m| self.test_model(image, m, opts))
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// Pushes local `image` as `repository:tag` (tagging it first when the names differ).
    /// Progress goes to `on_progress(status, "bytes/total")`.
    pub async fn push(
        &self,
        image: &str,
        repository: &str,
        tag: &str,
        credentials: Option<&Credentials>,
        on_progress: &mut (dyn FnMut(&str, &str) + Send),
    ) -> Result<PushResult, DockerError> {
        self.image_id(image).await?;
        let reference = format!("{repository}:{tag}");
        if reference != image {
            self.docker
                .tag_image(
                    image,
                    Some(
                        TagImageOptionsBuilder::default()
                            .repo(repository)
                            .tag(tag)
                            .build(),
                    ),
                )
                .await
                .map_err(api(format!("tagging `{image}` as `{reference}`")))?;
        }
        let registry = registry_of(repository);
        let creds = credentials.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.expose().to_owned()),
            serveraddress: Some(registry.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.push_image(
            repository,
            Some(PushImageOptionsBuilder::default().tag(tag).build()),
            creds,
        );
        let mut digest = None;
        let classify = |message: String| {
            let lower = message.to_lowercase();
            if lower.contains("unauthorized")
                || lower.contains("authentication required")
                || lower.contains("denied")
                || lower.contains("no basic auth credentials")
            {
                DockerError::PushAuth {
                    image: reference.clone(),
                    registry: registry.clone(),
                    message,
                }
            } else {
                DockerError::Push {
                    image: reference.clone(),
                    message,
                }
            }
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        return Err(classify(message));
                    }
                    if let Some(status) = info.status {
                        if let Some(d) = status
                            .split_whitespace()
                            .skip_while(|w| *w != "digest:")
                            .nth(1)
                        {
                            digest = Some(d.to_owned());
                        }
                        let detail = info
                            .progress_detail
                            .and_then(|p| Some(format!("{}/{}", p.current?, p.total?)))
                            .unwrap_or_default();
                        on_progress(&status, &detail);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(classify(error))
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                    return Err(classify(message))
                }
                Err(e) => return Err(api(format!("pushing `{reference}`"))(e)),
            }
        }
        let digest = digest.ok_or_else(|| DockerError::Push {
            image: reference.clone(),
            message: "the registry reported no digest".into(),
        })?;
        log::info!("pushed `{reference}` ({digest})");
        Ok(PushResult { reference, digest })
    }

    /// The image as a `docker save` tar stream.
    pub fn export(&self, image: &str) -> impl Stream<Item = Result<Bytes, DockerError>> + '_ {
        let step = format!("exporting `{image}`");
        self.docker
            .export_image(image)
            .map_err(move |e| api(step.clone())(e))
    }

    /// Writes `image` as a `docker save` tar to `path`, streamed and atomically (a
    /// temporary file beside it, renamed when complete: a failed export leaves no partial
    /// tar behind). `on_bytes(total)` reports progress. Returns the bytes written.
    pub async fn export_to_file(
        &self,
        image: &str,
        path: &Path,
        progress: crate::transfer::ProgressRef,
    ) -> Result<crate::transfer::Sent, DockerError> {
        use crate::transfer::{write_stream, StreamError};
        self.image_id(image).await?;
        let sent = match write_stream(self.export(image), path, None, 0, progress).await {
            Ok(sent) => sent,
            Err(StreamError::Source(e)) => return Err(e),
            Err(StreamError::Local(e)) => return Err(DockerError::Local(e)),
        };
        log::info!(
            "exported `{image}` to `{}` ({} bytes)",
            path.display(),
            sent.bytes
        );
        Ok(sent)
    }

    /// Removes what this tool created: its stopped containers, networks and volumes; with
    /// `images`, also its dangling images (upstream's `cleanup(images=True)`). Other
    /// users' objects are never touched (label filter).
    pub async fn cleanup(&self, images: bool) -> Result<CleanupReport, DockerError> {
        let label = format!("{CREATED_BY_LABEL}={CREATED_BY_VALUE}");
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".into(), vec![label.clone()])]);
        // Like `docker container prune`, only stopped containers: a test still running
        // (in this or another process) is never killed.
        let run_by: HashMap<String, Vec<String>> = HashMap::from([
            (
                "label".into(),
                vec![format!("{RUN_BY_LABEL}={CREATED_BY_VALUE}")],
            ),
            (
                "status".into(),
                vec!["created".into(), "exited".into(), "dead".into()],
            ),
        ]);
        let mut report = CleanupReport::default();
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&run_by)
                    .build(),
            ))
            .await
            .map_err(api("listing containers"))?;
        for c in containers {
            if let Some(id) = c.id {
                self.docker
                    .remove_container(
                        &id,
                        Some(
                            RemoveContainerOptionsBuilder::default()
                                .force(true)
                                .v(true)
                                .build(),
                        ),
                    )
                    .await
                    .map_err(api(format!("removing container {id}")))?;
                report.containers.push(id);
            }
        }
        if images {
            let mut dangling = filters.clone();
            dangling.insert("dangling".into(), vec!["true".into()]);
            let pruned = self
                .docker
                .prune_images(Some(
                    PruneImagesOptionsBuilder::default()
                        .filters(&dangling)
                        .build(),
                ))
                .await
                .map_err(api("pruning dangling images"))?;
            report.images.extend(
                pruned
                    .images_deleted
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|d| d.deleted.or(d.untagged)),
            );
        }
        let nets = self
            .docker
            .prune_networks(Some(
                PruneNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("pruning networks"))?;
        report.networks = nets.networks_deleted.unwrap_or_default();
        let vols = self
            .docker
            .prune_volumes(Some(
                PruneVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("pruning volumes"))?;
        report.volumes = vols.volumes_deleted.unwrap_or_default();
        Ok(report)
    }
}

/// bollard encodes `X-Registry-Auth` with the standard base64 alphabet; the Docker
/// Engine decodes it as URL-safe base64, so a password whose encoding holds `+` or `/`
/// silently became wrong credentials (bollard PR #169). Re-encode it URL-safe.
fn url_safe_registry_auth(mut req: bollard::BollardRequest) -> bollard::BollardRequest {
    for name in ["X-Registry-Auth", "X-Registry-Config"] {
        let fixed = req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|raw| base64::engine::general_purpose::URL_SAFE.encode(raw))
            .and_then(|v| http::HeaderValue::from_str(&v).ok());
        if let Some(value) = fixed {
            req.headers_mut().insert(name, value);
        }
    }
    req
}

/// The registry host of a repository (`127.0.0.1:5000/kipoi/x` → `127.0.0.1:5000`;
/// `kipoi/kipoi-docker` → Docker Hub).
#[must_use]
pub fn registry_of(repository: &str) -> String {
    match repository.split_once('/') {
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            host.to_owned()
        }
        _ => "https://index.docker.io/v1/".to_owned(),
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(id, Some(options)).await {
        log::warn!("could not remove test container {id}: {e}");
    }
}

/// Force-removes a test container when dropped while armed (the test future was
/// cancelled before it could clean up).
struct ContainerGuard {
    docker: Docker,
    id: String,
    armed: bool,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        crate::runtime::spawn_cleanup(async move { remove_container(&docker, &id).await });
    }
}

/// The content hash of a recipe (sha256 hex of the Dockerfile text).
#[must_use]
pub fn recipe_hash(dockerfile: &str) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(dockerfile.as_bytes()))
}

/// The labels that say what an image is: its model group and the zoo commit it was built for.
#[must_use]
pub fn group_labels(
    model_group: Option<&str>,
    zoo_commit: Option<&str>,
) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if let Some(g) = model_group {
        labels.insert(MODEL_GROUP_LABEL.to_owned(), g.to_owned());
    }
    if let Some(c) = zoo_commit {
        labels.insert(ZOO_COMMIT_LABEL.to_owned(), c.to_owned());
    }
    labels
}

/// Drops terminal escape sequences (`ESC [ … letter`) the builder puts around stderr.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn push_tail(tail: &mut Vec<String>, line: &str) {
    tail.push(line.to_owned());
    if tail.len() > TAIL_LINES {
        tail.remove(0);
    }
}

fn build_error(image: &str, step: &str, message: String, tail: &[String]) -> DockerError {
    DockerError::Build {
        image: image.to_owned(),
        step: step.to_owned(),
        message: message.trim().to_owned(),
        tail: tail.join("\n"),
    }
}

/// A tar with `Dockerfile` and, when given, the files of `context_dir` (deterministic
/// headers so equal inputs give equal contexts).
fn build_context(dockerfile: &str, context_dir: Option<&Path>) -> Result<Vec<u8>, DockerError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let io = |path: &Path, step| {
        let path = path.to_path_buf();
        move |source| DockerError::Io { path, step, source }
    };
    if let Some(dir) = context_dir {
        builder
            .append_dir_all(".", dir)
            .map_err(io(dir, "adding the build context"))?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(io(Path::new("Dockerfile"), "writing the build context"))?;
    builder
        .into_inner()
        .map_err(io(Path::new("Dockerfile"), "finishing the build context"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_header_becomes_url_safe() {
        // A payload whose standard base64 has both `+` and `/`.
        let payload = "{\"password\":\"\u{fb}\u{ff}>?\"}";
        let std_b64 = base64::engine::general_purpose::STANDARD.encode(payload);
        assert!(std_b64.contains('+') || std_b64.contains('/'), "{std_b64}");
        let req = http::Request::builder()
            .header("X-Registry-Auth", &std_b64)
            .body(bollard::body_full(Bytes::new()))
            .unwrap();
        let fixed = url_safe_registry_auth(req);
        let v = fixed.headers()["X-Registry-Auth"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!v.contains('+') && !v.contains('/'), "{v}");
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE.decode(v).unwrap(),
            payload.as_bytes()
        );
    }

    #[test]
    fn test_args_table_parses() {
        let table: indexmap::IndexMap<String, Vec<String>> =
            serde_json::from_str(MODEL_TEST_ARGS).unwrap();
        assert!(!table.is_empty());
    }

    #[test]
    fn test_args_come_from_the_table() {
        assert_eq!(model_test_args("Basenji"), vec!["--batch_size=2"]);
        assert_eq!(model_test_args("Basenji/x"), vec!["--batch_size=2"]);
        assert!(model_test_args("Basset").is_empty());
        assert!(model_test_args("BasenjiX").is_empty());
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\u{1b}[91mkaboom\n\u{1b}[0m"), "kaboom\n");
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn registries() {
        assert_eq!(
            registry_of("127.0.0.1:5000/kipoi/kipoi-docker"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(
            registry_of("kipoi/kipoi-docker"),
            "https://index.docker.io/v1/"
        );
    }

    #[test]
    fn context_has_the_dockerfile() {
        let tar_bytes = build_context("FROM scratch\n", None).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["Dockerfile"]);
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2").unwrap(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
