//! Errors of the Docker path.

use std::path::PathBuf;

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
    #[error("pulling `{image}` failed: {message}")]
    Pull { image: String, message: String },
    #[error(transparent)]
    Registry(#[from] super::registry::RegistryError),
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

pub(super) fn api(step: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let step = step.into();
    move |source| DockerError::Api { step, source }
}
