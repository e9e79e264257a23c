//! Model tests: `kipoi test MODEL` in a fresh container of the image (the zoo checkout
//! mounted read-only when given), always removed — also when the test is cancelled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt as _;

use super::error::api;
use super::{push_tail, strip_ansi, DockerError, Engine, CREATED_BY_VALUE, RUN_BY_LABEL};

/// Extra `kipoi test` arguments per model or group (longest path-prefix key wins), as
/// data rather than code: `test-containers/model-test-args.json`, compiled in.
const MODEL_TEST_ARGS: &str = include_str!("../../test-containers/model-test-args.json");

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

impl Engine {
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
        // The futures are made up front (not in a `map` closure) so the returned future is
        // `Send` for callers that spawn it.
        let tests: Vec<_> = models
            .iter()
            .map(|m| self.test_model(image, m, opts))
            .collect();
        futures_util::stream::iter(tests)
            .buffered(concurrency.max(1))
            .collect()
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
