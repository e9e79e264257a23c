//! Pushing images to a registry with credentials, the registry-auth header fixed.

use base64::Engine as _;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::StreamExt as _;

use super::error::api;
use super::{DockerError, Engine};
use crate::redact::Secret;

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

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// `repository:tag` as pushed.
    pub reference: String,
    /// `sha256:…` digest the registry reported.
    pub digest: String,
}

impl Engine {
    /// Tags the local `image` as `repository:tag`.
    pub async fn tag(&self, image: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
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
            .map_err(api(format!("tagging `{image}` as `{repository}:{tag}`")))
    }

    /// Makes the index image `image` (`kipoi/kipoi-docker:tag`) present locally: nothing
    /// when it is (and, given `digest`, is that digest: a local copy of an older push is
    /// replaced); else pulled from `repository` (where images are pushed, e.g.
    /// `127.0.0.1:5000/kipoi/kipoi-docker`) by `digest` when given, else by tag, and tagged
    /// with the index name.
    pub async fn ensure_local(
        &self,
        image: &str,
        repository: &str,
        digest: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<(), DockerError> {
        if self.image_id(image).await.is_ok() {
            let wanted = digest.filter(|d| !d.is_empty());
            match wanted {
                None => return Ok(()),
                Some(d) if self.image_repo_digests(image).await?.iter().any(|r| r == d) => {
                    return Ok(())
                }
                Some(d) => {
                    log::info!("the local `{image}` is not the pushed {d}; pulling that one")
                }
            }
        }
        let (index_repo, index_tag) = crate::names::split_image(image);
        let index_tag = index_tag.unwrap_or("latest");
        let source = match digest {
            Some(d) if !d.is_empty() => format!("{repository}@{d}"),
            _ => format!("{repository}:{index_tag}"),
        };
        self.pull(&source, credentials).await?;
        self.tag(&source, index_repo, index_tag).await
    }

    /// Pulls `reference` (`repo:tag` or `repo@sha256:…`) with `credentials`; returns the
    /// local image id. A missing image or a rejected login is an error naming it.
    pub async fn pull(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, DockerError> {
        let (repo, tag) = match reference.split_once('@') {
            Some((repo, digest)) => (repo, digest),
            None => {
                let (repo, tag) = crate::names::split_image(reference);
                (repo, tag.unwrap_or("latest"))
            }
        };
        let creds = credentials.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.expose().to_owned()),
            serveraddress: Some(registry_of(repo)),
            ..Default::default()
        });
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, creds);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        log::debug!("[pull {reference}] {status}");
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error })
                | Err(bollard::errors::Error::DockerResponseServerError {
                    message: error, ..
                }) => {
                    let lower = error.to_lowercase();
                    return Err(
                        if lower.contains("unauthorized") || lower.contains("authentication") {
                            DockerError::PushAuth {
                                image: reference.to_owned(),
                                registry: registry_of(repo),
                                message: error,
                            }
                        } else {
                            DockerError::Pull {
                                image: reference.to_owned(),
                                message: error,
                            }
                        },
                    );
                }
                Err(e) => return Err(api(format!("pulling `{reference}`"))(e)),
            }
        }
        log::info!("pulled `{reference}`");
        self.image_id(reference).await
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
            self.tag(image, repository, tag).await?;
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
}

/// bollard encodes `X-Registry-Auth` with the standard base64 alphabet; the Docker
/// Engine decodes it as URL-safe base64, so a password whose encoding holds `+` or `/`
/// silently became wrong credentials (bollard PR #169). Re-encode it URL-safe. Both headers
/// carry the password (base64 is no protection): they are marked sensitive.
pub(super) fn url_safe_registry_auth(mut req: bollard::BollardRequest) -> bollard::BollardRequest {
    for name in ["X-Registry-Auth", "X-Registry-Config"] {
        let Some(current) = req.headers().get(name) else {
            continue;
        };
        let mut value = current
            .to_str()
            .ok()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|raw| base64::engine::general_purpose::URL_SAFE.encode(raw))
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
            .unwrap_or_else(|| current.clone());
        value.set_sensitive(true);
        req.headers_mut().insert(name, value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

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
        assert!(fixed.headers()["X-Registry-Auth"].is_sensitive());
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE.decode(v).unwrap(),
            payload.as_bytes()
        );
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
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2").unwrap(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
