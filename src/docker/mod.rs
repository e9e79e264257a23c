//! The Docker Engine path (bollard): build, test models in containers, push, export,
//! clean up — on the real engine, through `DOCKER_HOST` or the local socket. One file per
//! operation: `build`, `test` (model tests in containers), `push`, `export`, `cleanup`;
//! this file holds the connection, the labels and image inspection.
//!
//! Images this tool builds carry `org.kipoi-containers.created-by=kipoi_containers`, the
//! containers it runs `org.kipoi-containers.run-by=kipoi_containers`; cleanup only ever
//! touches objects with those labels.

mod build;
mod cleanup;
mod error;
mod export;
mod push;
mod registry;
mod test;

pub use build::{group_labels, recipe_hash};
pub use cleanup::CleanupReport;
pub use error::DockerError;
pub use push::{registry_of, Credentials, PushResult};
pub use registry::{RegistryError, RegistryReader, RemoteImage};
pub use test::{model_test_args, ModelTestResult, TestOptions, ZOO_MOUNT_POINT, ZOO_MOUNT_RO};

use std::collections::HashMap;

use bollard::Docker;

use error::api;
use push::url_safe_registry_auth;

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
/// The content hash of the unit an image was built for (see `layout::Tree::content_hash`).
pub const CONTENT_LABEL: &str = "org.kipoi-containers.content";
/// Lines of log kept for error messages.
const TAIL_LINES: usize = 40;

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

    /// The registry digests a local image is known by (`repo@sha256:…` of its pushes and
    /// pulls), as `sha256:…`.
    pub async fn image_repo_digests(&self, image: &str) -> Result<Vec<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(info
                .repo_digests
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| d.rsplit_once('@').map(|(_, digest)| digest.to_owned()))
                .collect()),
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
}

/// Keeps the last [`TAIL_LINES`] lines of a log.
pub(crate) fn push_tail(tail: &mut Vec<String>, line: &str) {
    tail.push(line.to_owned());
    if tail.len() > TAIL_LINES {
        tail.remove(0);
    }
}

/// Drops terminal escape sequences (`ESC [ … letter`) the builder puts around stderr.
pub(crate) fn strip_ansi(line: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\u{1b}[91mkaboom\n\u{1b}[0m"), "kaboom\n");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
