//! Reading an image in a registry without pulling it (Docker Registry HTTP API v2): its
//! manifest digest and its config's labels — so the sync can tell that the image already
//! pushed for a unit was built from the same content and recipe, and skip the unit.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge: `Basic` (a local
//! `docker-registry` with htpasswd) or `Bearer` (Docker Hub: a token from the realm, with
//! the credentials when given — and only where [`credentials_may_go_to`] allows). Plain HTTP
//! is used for loopback registries (as the Docker Engine allows by default), HTTPS otherwise.
//! Every `Authorization` value is marked sensitive. Timeouts and retries come from
//! [`crate::http`] and [`crate::retry`].

use std::collections::HashMap;

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use serde::Deserialize;

use super::push::{registry_of, Credentials};
use crate::http::{HttpClient, HttpSettings};
use crate::redact::{credential_header, RedactedUrl};
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
    /// The Bearer challenge names a token service the credentials must not go to (see
    /// [`credentials_may_go_to`]); nothing was sent to it.
    #[error(
        "refusing to send DOCKER_USERNAME/DOCKER_PASSWORD to the token service `{realm}` that \
         the registry `{registry}` named: {reason}; nothing was sent to it"
    )]
    InsecureRealm {
        realm: String,
        registry: String,
        reason: &'static str,
    },
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
    /// An `Authorization` value that worked (Basic, or a Bearer token) for this registry;
    /// marked sensitive.
    auth: tokio::sync::Mutex<Option<HeaderValue>>,
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
                let auth = self.answer_challenge(&challenge, repo, &parsed).await?;
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

    /// The `Authorization` value answering a `WWW-Authenticate` challenge of the registry
    /// at `registry` (the URL that was answered 401).
    async fn answer_challenge(
        &self,
        challenge: &str,
        repo: &str,
        registry: &reqwest::Url,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let basic = self.credentials.as_ref().and_then(basic_authorization);
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
            url: RedactedUrl::redact_str(&realm),
            detail: "the Bearer challenge has no usable realm".into(),
        })?;
        if basic.is_some() {
            if let Err(reason) = credentials_may_go_to(registry, &url) {
                return Err(RegistryError::InsecureRealm {
                    realm: RedactedUrl::new(&url).to_string(),
                    registry: registry.origin().ascii_serialization(),
                    reason,
                });
            }
        }
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
        token
            .token
            .or(token.access_token)
            .map(|t| {
                credential_header(&format!("Bearer {t}")).ok_or_else(|| RegistryError::Shape {
                    url: shown.clone(),
                    detail: "the token is not a valid header value".into(),
                })
            })
            .transpose()
    }
}

/// `Basic base64(username:password)`, marked sensitive (base64 is always a valid header
/// value, so this is `Some`).
fn basic_authorization(credentials: &Credentials) -> Option<HeaderValue> {
    let raw = format!("{}:{}", credentials.username, credentials.password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    credential_header(&format!("Basic {encoded}"))
}

/// Whether the Docker credentials may be sent to `realm`, the token service that the
/// registry at `registry` named in its `WWW-Authenticate: Bearer` challenge; the reason
/// when not.
///
/// The realm is whatever the registry's answer says, so the rule is about where the
/// password travels, not whom to trust: it never travels unencrypted to another machine,
/// and never loses the encryption the registry itself is reached with. The realm gets it
/// when it is
///
/// - HTTPS (Docker Hub: `https://auth.docker.io/token` for `registry-1.docker.io`), or
/// - plain HTTP on the registry's own host, when the registry itself is plain HTTP (a local
///   registry, see [`split_reference`], with its token service beside it:
///   `http://127.0.0.1:5000` and `http://127.0.0.1:5001/auth`; the port may differ).
///
/// "The registry's own host" is the host as written, compared exactly (host names are not
/// resolved: whether two names are one machine is not something a name can prove). Another
/// loopback address (`127.0.0.2` for `127.0.0.1`) or another name (`localhost` for
/// `127.0.0.1`) is another host: on a shared machine it can be another user's listener.
fn credentials_may_go_to(
    registry: &reqwest::Url,
    realm: &reqwest::Url,
) -> Result<(), &'static str> {
    match realm.scheme() {
        "https" => Ok(()),
        "http" if registry.scheme() != "http" => Err(
            "it is plain HTTP while the registry is reached over HTTPS, so the password would \
             travel unencrypted",
        ),
        "http" if realm.host() != registry.host() => Err(
            "it is plain HTTP on another host than the registry's, so the password would \
             travel unencrypted to another machine (only HTTPS, or plain HTTP to the \
             registry's own host, gets it)",
        ),
        "http" => Ok(()),
        _ => Err("only an https (or the registry's own plain-HTTP host) token service gets it"),
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
    use crate::redact::Secret;
    use std::sync::{Arc, Mutex};

    const PASSWORD: &str = "not-a-real-password";

    fn credentials() -> Credentials {
        Credentials {
            username: "kipoi".into(),
            password: Secret::new(PASSWORD).unwrap(),
        }
    }

    /// The `Authorization: Basic` value of [`credentials`], as a server sees it.
    fn basic_on_the_wire() -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("kipoi:{PASSWORD}"));
        format!("Basic {encoded}")
    }

    /// The request heads a [`serve`]d server received.
    type Seen = Arc<Mutex<Vec<String>>>;

    /// A plain-HTTP server on `ip`, one connection at a time: keeps each request's head
    /// and answers it with `answer(head)` (a whole response; the connection is closed).
    fn serve(
        ip: &str,
        answer: impl Fn(&str) -> String + Send + 'static,
    ) -> (std::net::SocketAddr, Seen) {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let kept = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let reply = answer(&head);
                kept.lock().unwrap().push(head);
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (addr, seen)
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn reply(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// A registry that wants `Authorization: {wanted}` and otherwise answers 401 with
    /// `challenge`; with it, serves one image (manifest and config blob).
    fn registry(wanted: String, challenge: String) -> (std::net::SocketAddr, Seen) {
        serve("127.0.0.1", move |head| {
            if header(head, "authorization") != Some(wanted.as_str()) {
                return reply(
                    "401 Unauthorized",
                    &format!("WWW-Authenticate: {challenge}\r\n"),
                    "",
                );
            }
            if head.starts_with("GET /v2/kipoi/x/manifests/t ") {
                reply(
                    "200 OK",
                    "Docker-Content-Digest: sha256:m\r\n",
                    r#"{"config":{"digest":"sha256:c"}}"#,
                )
            } else if head.starts_with("GET /v2/kipoi/x/blobs/sha256:c ") {
                reply("200 OK", "", r#"{"config":{"Labels":{"k":"v"}}}"#)
            } else {
                reply("404 Not Found", "", "")
            }
        })
    }

    /// A token service that gives `t0k` for [`credentials`] (and nothing without them).
    fn token_service(ip: &str) -> (std::net::SocketAddr, Seen) {
        let wanted = basic_on_the_wire();
        serve(ip, move |head| {
            if header(head, "authorization") == Some(wanted.as_str()) {
                reply("200 OK", "", r#"{"token":"t0k"}"#)
            } else {
                reply("401 Unauthorized", "", "")
            }
        })
    }

    /// A registry on 127.0.0.1 whose challenge names a plain-HTTP token service on another
    /// host (127.0.0.2): the credentials are not sent there; the error says why, names the
    /// realm redacted, and does not show the password.
    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_realm_on_another_host() {
        let (realm, realm_seen) = token_service("127.0.0.2");
        let (reg, reg_seen) = registry(
            "Bearer t0k".into(),
            format!(
                r#"Bearer realm="http://{realm}/token?access_token=not-a-real-token",service="test""#
            ),
        );
        let reader = RegistryReader::new(Some(credentials())).unwrap();
        let err = reader.image(&format!("{reg}/kipoi/x:t")).await.unwrap_err();
        let text = crate::errchain::chain(&err);
        assert!(matches!(err, RegistryError::InsecureRealm { .. }), "{text}");
        assert!(text.contains(&format!("http://{realm}/token")), "{text}");
        assert!(text.contains("another host"), "{text}");
        assert!(text.contains(&format!("http://{reg}")), "{text}");
        assert!(!text.contains("not-a-real-token"), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(
            realm_seen.lock().unwrap().is_empty(),
            "the realm got: {:?}",
            realm_seen.lock().unwrap()
        );
        // The registry itself never got the credentials either (it asked for a token).
        assert!(reg_seen
            .lock()
            .unwrap()
            .iter()
            .all(|h| header(h, "authorization").is_none()));
    }

    /// Without credentials there is nothing to protect: the token is asked for anonymously.
    #[tokio::test]
    async fn an_anonymous_reader_may_use_a_plain_http_realm_on_another_host() {
        let (realm, realm_seen) = token_service("127.0.0.2");
        let (reg, _) = registry(
            "Bearer t0k".into(),
            format!(r#"Bearer realm="http://{realm}/token",service="test""#),
        );
        let reader = RegistryReader::new(None).unwrap();
        let err = reader.image(&format!("{reg}/kipoi/x:t")).await.unwrap_err();
        // The token service refuses anonymous requests (401).
        assert!(
            matches!(err, RegistryError::Status { status: 401, .. }),
            "{err}"
        );
        let seen = realm_seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(header(&seen[0], "authorization").is_none(), "{seen:?}");
    }

    /// A local registry with its token service on its own host (another port): the
    /// credentials go there, the token to the registry, and the image is read.
    #[tokio::test]
    async fn a_plain_http_realm_on_the_registrys_own_host_gets_the_credentials() {
        let (realm, realm_seen) = token_service("127.0.0.1");
        let (reg, reg_seen) = registry(
            "Bearer t0k".into(),
            format!(r#"Bearer realm="http://{realm}/token",service="test""#),
        );
        let reader = RegistryReader::new(Some(credentials())).unwrap();
        let image = reader.image(&format!("{reg}/kipoi/x:t")).await.unwrap();
        let image = image.unwrap();
        assert_eq!(image.digest, "sha256:m");
        assert_eq!(image.labels.get("k").map(String::as_str), Some("v"));
        let asked = realm_seen.lock().unwrap().clone();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(
            header(&asked[0], "authorization"),
            Some(basic_on_the_wire().as_str())
        );
        assert!(
            asked[0].contains("scope=repository%3Akipoi%2Fx%3Apull"),
            "{asked:?}"
        );
        assert!(reg_seen
            .lock()
            .unwrap()
            .iter()
            .any(|h| header(h, "authorization") == Some("Bearer t0k")));
        // The value kept for the next requests is marked sensitive.
        let kept = reader.auth.lock().await.clone().unwrap();
        assert!(kept.is_sensitive());
    }

    /// A local `docker-registry` with htpasswd: a Basic challenge, answered with Basic.
    #[tokio::test]
    async fn a_basic_challenge_is_answered_with_the_credentials() {
        let (reg, _) = registry(
            basic_on_the_wire(),
            r#"Basic realm="Registry Realm""#.into(),
        );
        let reader = RegistryReader::new(Some(credentials())).unwrap();
        let image = reader.image(&format!("{reg}/kipoi/x:t")).await.unwrap();
        assert_eq!(image.unwrap().digest, "sha256:m");
        let kept = reader.auth.lock().await.clone().unwrap();
        assert!(kept.is_sensitive());
    }

    #[test]
    fn where_credentials_may_go() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let allowed: &[(&str, &str)] = &[
            // Docker Hub.
            (
                "https://registry-1.docker.io/v2/library/busybox/manifests/latest",
                "https://auth.docker.io/token",
            ),
            // Any HTTPS realm, for a plain-HTTP local registry too.
            (
                "http://127.0.0.1:5000/v2/",
                "https://auth.example.org/token",
            ),
            // A local registry's token service beside it.
            ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/auth"),
            ("http://localhost:5000/v2/", "http://LOCALHOST:5001/auth"),
        ];
        for (registry, realm) in allowed {
            assert_eq!(
                credentials_may_go_to(&url(registry), &url(realm)),
                Ok(()),
                "{registry} -> {realm}"
            );
        }
        let refused: &[(&str, &str)] = &[
            ("http://127.0.0.1:5000/v2/", "http://127.0.0.2:5001/auth"),
            ("http://127.0.0.1:5000/v2/", "http://localhost:5001/auth"),
            ("http://127.0.0.1:5000/v2/", "http://auth.example.org/token"),
            // A downgrade: the registry is HTTPS, its realm is not (even on its own host).
            ("https://ghcr.io/v2/", "http://ghcr.io/token"),
            (
                "https://registry-1.docker.io/v2/",
                "http://auth.docker.io/token",
            ),
            ("https://ghcr.io/v2/", "ftp://ghcr.io/token"),
        ];
        for (registry, realm) in refused {
            assert!(
                credentials_may_go_to(&url(registry), &url(realm)).is_err(),
                "{registry} -> {realm}"
            );
        }
    }

    #[test]
    fn authorization_values_are_sensitive() {
        let basic = basic_authorization(&credentials()).unwrap();
        assert!(basic.is_sensitive());
        assert_eq!(basic.to_str().unwrap(), basic_on_the_wire());
        assert!(!format!("{basic:?}").contains(&basic_on_the_wire()));
    }

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
