//! Reading an image in a registry without pulling it (Docker Registry HTTP API v2): its
//! manifest digest and its config's labels — so the sync can tell that the image already
//! pushed for a unit was built from the same content and recipe, and skip the unit.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge: `Basic` (a local
//! `docker-registry` with htpasswd) or `Bearer` (Docker Hub: a token from the realm, with
//! the credentials when given). Plain HTTP is used for loopback registries (as the Docker
//! Engine allows by default), HTTPS otherwise. Timeouts and retries come from
//! [`crate::http`] and [`crate::retry`].

use std::collections::HashMap;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use serde::Deserialize;

use super::push::{registry_of, Credentials};
use crate::http::{HttpClient, HttpSettings};
use crate::redact::RedactedUrl;
use crate::retry::{Decision, Outcome, Replay, RetryPolicy, RetryState};

/// Manifest media types we read (an index is resolved to its linux/amd64 manifest).
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.index.v1+json";

/// Why an image in a registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry answered {status} to GET `{url}`{hint}")]
    Status {
        url: String,
        status: u16,
        hint: &'static str,
    },
    #[error("GET `{url}` got no answer after {attempts} attempt(s){note}")]
    Transport {
        url: String,
        attempts: u32,
        note: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the registry's answer to `{url}` is not what the API documents: {detail}")]
    Shape { url: String, detail: String },
    #[error("invalid image reference `{0}`")]
    BadReference(String),
    #[error(transparent)]
    Http(#[from] crate::http::HttpSetupError),
}

/// An image as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    /// The manifest digest (`sha256:…`), what `docker pull ref@digest` pulls.
    pub digest: String,
    /// The image config's `Labels`.
    pub labels: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Vec<PlatformDescriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct PlatformDescriptor {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<ConfigInner>,
}

#[derive(Deserialize)]
struct ConfigInner {
    #[serde(default, rename = "Labels")]
    labels: Option<HashMap<String, String>>,
}

/// A reader of one registry.
pub struct RegistryReader {
    http: HttpClient,
    credentials: Option<Credentials>,
    retry: RetryPolicy,
    /// An `Authorization` value that worked (Basic, or a Bearer token) for this registry.
    auth: tokio::sync::Mutex<Option<String>>,
}

impl RegistryReader {
    pub fn new(credentials: Option<Credentials>) -> Result<Self, RegistryError> {
        Ok(Self {
            http: HttpClient::new(HttpSettings::from_env()?)?,
            credentials,
            retry: RetryPolicy {
                max_retries: 3,
                ..RetryPolicy::default()
            },
            auth: tokio::sync::Mutex::new(None),
        })
    }

    /// The image `reference` (`host[:port]/repo:tag`, or `repo:tag` on Docker Hub), or
    /// `None` when the registry does not have it.
    pub async fn image(&self, reference: &str) -> Result<Option<RemoteImage>, RegistryError> {
        let (base, repo, tag) = split_reference(reference)?;
        let manifest_url = format!("{base}/v2/{repo}/manifests/{tag}");
        let Some((digest, body)) = self.get(&manifest_url, &repo, Some(MANIFEST_TYPES)).await?
        else {
            return Ok(None);
        };
        let mut manifest: Manifest = parse(&manifest_url, &body)?;
        let mut digest = digest;
        if manifest.config.is_none() {
            // An index: the linux/amd64 manifest (else the first one).
            let chosen = manifest
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                })
                .or_else(|| manifest.manifests.first())
                .map(|m| m.digest.clone())
                .ok_or_else(|| RegistryError::Shape {
                    url: manifest_url.clone(),
                    detail: "neither a config nor manifests".into(),
                })?;
            let url = format!("{base}/v2/{repo}/manifests/{chosen}");
            let (_, body) = self
                .get(&url, &repo, Some(MANIFEST_TYPES))
                .await?
                .ok_or_else(|| RegistryError::Shape {
                    url: url.clone(),
                    detail: "the index names a manifest the registry does not have".into(),
                })?;
            manifest = parse(&url, &body)?;
            digest = chosen;
        }
        let config = manifest.config.ok_or_else(|| RegistryError::Shape {
            url: manifest_url.clone(),
            detail: "the manifest has no config".into(),
        })?;
        let blob_url = format!("{base}/v2/{repo}/blobs/{}", config.digest);
        let (_, body) =
            self.get(&blob_url, &repo, None)
                .await?
                .ok_or_else(|| RegistryError::Shape {
                    url: blob_url.clone(),
                    detail: "the config blob is missing".into(),
                })?;
        let blob: ConfigBlob = parse(&blob_url, &body)?;
        Ok(Some(RemoteImage {
            digest,
            labels: blob.config.and_then(|c| c.labels).unwrap_or_default(),
        }))
    }

    /// GET with the registry's auth; `None` on 404. Returns the `Docker-Content-Digest`
    /// header (empty when absent) and the body.
    async fn get(
        &self,
        url: &str,
        repo: &str,
        accept: Option<&str>,
    ) -> Result<Option<(String, bytes::Bytes)>, RegistryError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| RegistryError::BadReference(url.into()))?;
        let shown = RedactedUrl::new(&parsed).to_string();
        let client = self.http.client()?;
        let mut state = RetryState::new(self.retry.clone(), Replay::Always);
        let mut challenged = false;
        loop {
            let attempt = state.start_attempt();
            let mut req = client.get(parsed.clone());
            if let Some(accept) = accept {
                req = req.header(ACCEPT, accept);
            }
            if let Some(auth) = self.auth.lock().await.clone() {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => match state.decide(Outcome::Transport(&e)) {
                    Decision::RetryAfter(wait) => {
                        log::warn!(
                            "GET `{shown}` failed; retry {attempt} in {:.1}s",
                            wait.as_secs_f64()
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Decision::GiveUp { .. } => {
                        let note = crate::http::timeout_note(&e, self.http.settings())
                            .map(|n| format!(": {n}"))
                            .unwrap_or_default();
                        return Err(RegistryError::Transport {
                            url: shown,
                            attempts: attempt,
                            note,
                            source: e.without_url(),
                        });
                    }
                },
            };
            let status = resp.status().as_u16();
            if status == 401 && !challenged {
                challenged = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let auth = self.answer_challenge(&challenge, repo).await?;
                *self.auth.lock().await = auth;
                continue;
            }
            if status == 404 {
                return Ok(None);
            }
            if !(200..300).contains(&status) {
                let retry_after = crate::retry::parse_retry_after(resp.headers());
                if let Decision::RetryAfter(wait) = state.decide(Outcome::Status {
                    status,
                    retry_after,
                }) {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(RegistryError::Status {
                    url: shown,
                    status,
                    hint: if matches!(status, 401 | 403) {
                        "; check DOCKER_USERNAME and DOCKER_PASSWORD"
                    } else {
                        ""
                    },
                });
            }
            let digest = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if let Decision::RetryAfter(wait) = state.decide(Outcome::Transport(&e)) {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(RegistryError::Transport {
                        url: shown,
                        attempts: attempt,
                        note: String::new(),
                        source: e.without_url(),
                    });
                }
            };
            return Ok(Some((digest, body)));
        }
    }

    /// The `Authorization` value answering a `WWW-Authenticate` challenge.
    async fn answer_challenge(
        &self,
        challenge: &str,
        repo: &str,
    ) -> Result<Option<String>, RegistryError> {
        let basic = self.credentials.as_ref().map(|c| {
            let raw = format!("{}:{}", c.username, c.password.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return Ok(basic);
        };
        let param = |name: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_owned())
            })
        };
        let realm = param("realm").unwrap_or_default();
        let mut url = reqwest::Url::parse(&realm).map_err(|_| RegistryError::Shape {
            url: realm.clone(),
            detail: "the Bearer challenge has no usable realm".into(),
        })?;
        url.query_pairs_mut()
            .append_pair("service", &param("service").unwrap_or_default())
            .append_pair(
                "scope",
                &param("scope").unwrap_or_else(|| format!("repository:{repo}:pull")),
            );
        let client = self.http.client()?;
        let mut req = client.get(url.clone());
        if let Some(b) = &basic {
            req = req.header(AUTHORIZATION, b);
        }
        let shown = RedactedUrl::new(&url).to_string();
        let resp = req.send().await.map_err(|e| RegistryError::Transport {
            url: shown.clone(),
            attempts: 1,
            note: String::new(),
            source: e.without_url(),
        })?;
        if !resp.status().is_success() {
            return Err(RegistryError::Status {
                url: shown,
                status: resp.status().as_u16(),
                hint: "; check DOCKER_USERNAME and DOCKER_PASSWORD",
            });
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = resp.bytes().await.map_err(|e| RegistryError::Transport {
            url: shown.clone(),
            attempts: 1,
            note: String::new(),
            source: e.without_url(),
        })?;
        let token: Token = parse(&shown, &body)?;
        Ok(token
            .token
            .or(token.access_token)
            .map(|t| format!("Bearer {t}")))
    }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|e| RegistryError::Shape {
        url: RedactedUrl::redact_str(url),
        detail: e.to_string(),
    })
}

/// `(base URL, repository, tag)` of a reference: `127.0.0.1:5000/kipoi/x:t` →
/// (`http://127.0.0.1:5000`, `kipoi/x`, `t`); `kipoi/x:t` → Docker Hub; `busybox` →
/// `library/busybox:latest`.
fn split_reference(reference: &str) -> Result<(String, String, String), RegistryError> {
    let (repo, tag) = crate::names::split_image(reference);
    let tag = tag.unwrap_or("latest").to_owned();
    if repo.is_empty() || repo.contains("..") || repo.contains(char::is_whitespace) {
        return Err(RegistryError::BadReference(reference.to_owned()));
    }
    let registry = registry_of(repo);
    if registry.starts_with("https://index.docker.io") {
        let repo = if repo.contains('/') {
            repo.to_owned()
        } else {
            format!("library/{repo}")
        };
        return Ok(("https://registry-1.docker.io".into(), repo, tag));
    }
    let path = repo
        .strip_prefix(&registry)
        .map(|p| p.trim_start_matches('/'))
        .unwrap_or(repo)
        .to_owned();
    let host = registry.split(':').next().unwrap_or(&registry);
    let scheme = if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
        "http"
    } else {
        "https"
    };
    Ok((format!("{scheme}://{registry}"), path, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let cases: &[(&str, (&str, &str, &str))] = &[
            (
                "127.0.0.1:5000/kipoi/kipoi-docker:deepmel",
                ("http://127.0.0.1:5000", "kipoi/kipoi-docker", "deepmel"),
            ),
            (
                "kipoi/kipoi-docker:deepmel-slim",
                (
                    "https://registry-1.docker.io",
                    "kipoi/kipoi-docker",
                    "deepmel-slim",
                ),
            ),
            (
                "busybox",
                ("https://registry-1.docker.io", "library/busybox", "latest"),
            ),
            ("ghcr.io/kipoi/x:1", ("https://ghcr.io", "kipoi/x", "1")),
            ("localhost:5000/x", ("http://localhost:5000", "x", "latest")),
        ];
        for (reference, (base, repo, tag)) in cases {
            let got = split_reference(reference).unwrap();
            assert_eq!(
                got,
                ((*base).into(), (*repo).into(), (*tag).into()),
                "{reference}"
            );
        }
        assert!(split_reference("a/../b:t").is_err());
    }
}
