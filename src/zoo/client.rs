//! The engine's one GitHub REST client: octocrab for the transport (TLS, base URI, timeouts),
//! `crate::retry` for retrying, and GitHub's error bodies turned into [`ZooError`]s that name
//! the step. The token goes in an `Authorization` header that the engine adds to each request
//! itself, marked sensitive (octocrab's own token header is not), on paths of the API base
//! only; a redirect to another origin drops it (octocrab's redirect layer).
//!
//! Requests go through octocrab's untyped layer (`build_request` and `execute`, what its
//! `_get`/`_put`/`_post` do, plus the header), which hands back
//! the status, headers and body of every answer; success bodies are then parsed into
//! octocrab's models (or the engine's own structs where octocrab has none). Its typed
//! calls would map a non-JSON error page (GitHub's 502/504 HTML) to a parse error without
//! the status and drop `Retry-After`, and both are needed to decide whether to retry.
//!
//! octocrab's own retry layer is not compiled in (the `retry` feature is off), so every
//! repetition is decided here by a [`RetryState`]. A transport failure is reported to it in
//! the terms it knows: `Outcome::NoAnswer` with whether anything was sent (a refused
//! connection: no; a timeout, a dropped connection: the server may have acted).

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::ZooError;
use crate::redact::{RedactedUrl, Secret};
use crate::retry::{Decision, Outcome, Replay, RetryPolicy, RetryState};

/// The default API base.
pub const DEFAULT_API: &str = "https://api.github.com";
/// Environment variables holding the token, in order of preference.
pub const TOKEN_VARS: &[&str] = &["GITHUB_PAT", "GITHUB_TOKEN"];

/// The HTTP methods the engine uses on GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Put,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Post => "POST",
            Self::Patch => "PATCH",
        }
    }
}

/// A GitHub API client for one API base and token.
pub(crate) struct GitHubClient {
    api: String,
    /// `Bearer <token>`, marked sensitive (none: anonymous).
    authorization: Option<http::HeaderValue>,
    timeout: Duration,
    retry: RetryPolicy,
    /// The octocrab client of this process (rebuilt after a `fork`), made on first use:
    /// octocrab starts a background task, so it is built inside the engine's runtime.
    current: Mutex<Option<(u32, Box<Octocrab>)>>,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("api", &RedactedUrl::redact_str(&self.api))
            .field("token", &self.authorization.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A final answer from GitHub (after any retries), successful or not.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// An earlier attempt of this request may have been acted on without us seeing the
    /// answer (see [`RetryState::ambiguous`]).
    pub(crate) ambiguous: bool,
    body: String,
    rate_limited: bool,
}

/// GitHub's error body: `{"message", "errors": [...], "documentation_url"}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorItem {
    Detailed {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        field: Option<String>,
    },
    Text(String),
}

impl Answer {
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body parsed as `T`; a mismatch names the JSON path (octocrab's models are strict).
    pub(crate) fn json<T: DeserializeOwned>(&self, step: &str) -> Result<T, ZooError> {
        let mut de = serde_json::Deserializer::from_str(&self.body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| ZooError::GitHubShape {
            step: step.to_owned(),
            message: format!("at `{}`: {}", e.path(), e.inner()),
        })
    }

    /// GitHub's own words: `message`, then each of `errors[]` (its `message`, else its
    /// `field`/`code`); the start of the body when it is not GitHub's JSON.
    pub(crate) fn message(&self) -> String {
        let Ok(parsed) = serde_json::from_str::<ErrorBody>(&self.body) else {
            let text: String = self.body.chars().take(200).collect();
            return if text.trim_start().starts_with('<') {
                // A gateway's HTML page: its status says it all.
                self.status
                    .canonical_reason()
                    .unwrap_or("error page")
                    .to_owned()
            } else {
                text.trim().to_owned()
            };
        };
        let mut out = parsed.message.unwrap_or_default().trim().to_owned();
        for item in parsed.errors {
            let detail = match item {
                ErrorItem::Text(t) => t,
                ErrorItem::Detailed {
                    message: Some(m), ..
                } => m,
                ErrorItem::Detailed { code, field, .. } => match (field, code) {
                    (Some(f), Some(c)) => format!("{f}: {c}"),
                    (None, Some(c)) => c,
                    (Some(f), None) => f,
                    (None, None) => continue,
                },
            };
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(detail.trim());
        }
        out
    }

    /// The error this answer means for `step`, with a hint for auth and rate limits.
    pub(crate) fn into_error(self, step: &str) -> ZooError {
        let hint = match self.status {
            StatusCode::UNAUTHORIZED => "; check the token in GITHUB_PAT / GITHUB_TOKEN",
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS if self.rate_limited => {
                "; rate limit exhausted: set GITHUB_PAT for 5000 requests/hour, or wait"
            }
            StatusCode::FORBIDDEN => {
                "; check that the token in GITHUB_PAT / GITHUB_TOKEN may do this"
            }
            StatusCode::NOT_FOUND => "; check the repository name and that the token can read it",
            _ => "",
        };
        ZooError::GitHub {
            step: step.to_owned(),
            status: self.status.as_u16(),
            message: self.message(),
            hint,
        }
    }
}

/// Why a request got no answer, rendered once: octocrab's wrappers repeat their cause's
/// text in their own message, so each cause is kept only where it first appears.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct TransportCause {
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportKind {
    /// Nothing reached the server (connection refused, host unreachable).
    NotSent,
    /// The server may have acted (timeout, connection dropped mid-answer).
    MaybeProcessed,
    /// Not a transport problem (a bad URI, a request that cannot be built).
    Fatal,
}

fn describe_transport(err: &octocrab::Error) -> (TransportCause, TransportKind, bool) {
    let mut texts: Vec<String> = Vec::new();
    let mut kind = match err {
        octocrab::Error::Service { .. } | octocrab::Error::Hyper { .. } => {
            TransportKind::MaybeProcessed
        }
        _ => TransportKind::Fatal,
    };
    let mut timed_out = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            timed_out = true;
        }
        texts.push(text);
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused
                | K::AddrNotAvailable
                | K::NetworkUnreachable
                | K::HostUnreachable => kind = TransportKind::NotSent,
                K::TimedOut => timed_out = true,
                _ => {}
            }
        }
        cur = e.source();
    }
    if kind == TransportKind::NotSent && timed_out {
        kind = TransportKind::MaybeProcessed;
    }
    let mut parts: Vec<String> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut own = text.as_str();
        if let Some(next) = texts.get(i + 1) {
            own = own.strip_suffix(next.as_str()).map_or(own, |s| {
                s.trim_end_matches(|c: char| c == ':' || c.is_whitespace())
            });
        }
        let own = own.trim();
        if own.is_empty() || matches!(own, "Service Error" | "Hyper Error" | "HTTP Error") {
            continue;
        }
        if parts.last().map(String::as_str) != Some(own) {
            parts.push(own.to_owned());
        }
    }
    let text = if parts.is_empty() {
        "no answer".to_owned()
    } else {
        parts.join(": ")
    };
    (TransportCause { text }, kind, timed_out)
}

impl GitHubClient {
    /// A client for `api` (trailing `/` ignored) with `token` (none: anonymous reads), the
    /// timeouts from `KIPOI_HTTP_TIMEOUT`, and `retry` for transient failures.
    pub(crate) fn new(
        api: &str,
        token: Option<Secret>,
        retry: RetryPolicy,
    ) -> Result<Self, ZooError> {
        let api = api.trim().trim_end_matches('/').to_owned();
        let bad_token = || ZooError::GitHubSetup {
            api: RedactedUrl::redact_str(&api),
            source: TransportCause {
                text: "the token in GITHUB_PAT / GITHUB_TOKEN is not a valid HTTP header value"
                    .into(),
            },
        };
        let authorization = match &token {
            Some(token) => Some(
                crate::redact::credential_header(&format!("Bearer {}", token.expose()))
                    .ok_or_else(bad_token)?,
            ),
            None => None,
        };
        Ok(Self {
            api,
            authorization,
            timeout: crate::http::timeout_from_env()?,
            retry,
            current: Mutex::new(None),
        })
    }

    pub(crate) fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    pub(crate) fn has_token(&self) -> bool {
        self.authorization.is_some()
    }

    /// The URL of `path` as it may be shown.
    pub(crate) fn shown_url(&self, path: &str) -> String {
        RedactedUrl::redact_str(&format!("{}{path}", self.api))
    }

    fn octocrab(&self) -> Result<Octocrab, ZooError> {
        let pid = std::process::id();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((owner, client)) = current.as_ref() {
            if *owner == pid {
                return Ok(Octocrab::clone(client));
            }
        }
        crate::runtime::init_tls();
        let setup = |source: octocrab::Error| ZooError::GitHubSetup {
            api: RedactedUrl::redact_str(&self.api),
            source: describe_transport(&source).0,
        };
        let builder = Octocrab::builder()
            .base_uri(self.api.as_str())
            .map_err(setup)?
            .add_header(http::header::ACCEPT, "application/vnd.github+json".into())
            .set_connect_timeout(Some(self.timeout))
            .set_read_timeout(Some(self.timeout))
            .set_write_timeout(Some(self.timeout));
        let client = builder.build().map_err(setup)?;
        *current = Some((pid, Box::new(client.clone())));
        Ok(client)
    }

    /// The request `method path` (path and query, starting with `/`, relative to the API
    /// base) with the token's `Authorization` header and the JSON `body`; what octocrab's
    /// `_get`/`_put`/`_post`/`_patch` build, plus the header.
    fn request(
        &self,
        client: &Octocrab,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<http::Request<octocrab::OctoBody>, octocrab::Error> {
        let (method, body) = match method {
            Method::Get => (http::Method::GET, None),
            Method::Put => (http::Method::PUT, body),
            Method::Post => (http::Method::POST, body),
            Method::Patch => (http::Method::PATCH, body),
        };
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(authorization) = &self.authorization {
            builder = builder.header(http::header::AUTHORIZATION, authorization.clone());
        }
        client.build_request(builder, body)
    }

    /// Sends `method path` (path and query, starting with `/`, relative to the API base)
    /// with an optional JSON body; retries transient failures as `replay` allows and
    /// returns the final answer, whatever its status.
    pub(crate) async fn send(
        &self,
        step: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        replay: Replay,
    ) -> Result<Answer, ZooError> {
        let client = self.octocrab()?;
        let mut retry = RetryState::new(self.retry.clone(), replay);
        loop {
            let attempt = retry.start_attempt();
            let sent = match self.request(&client, method, path, body) {
                Ok(request) => client.execute(request).await,
                Err(e) => Err(e),
            };
            let answer = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match client.body_to_string(resp).await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let (status, headers, text) = match answer {
                Ok(a) => a,
                Err(err) => {
                    let (cause, kind, timed_out) = describe_transport(&err);
                    let decision = match kind {
                        TransportKind::Fatal => Decision::GiveUp { note: None },
                        TransportKind::NotSent => retry.decide(Outcome::NoAnswer { sent: false }),
                        TransportKind::MaybeProcessed => {
                            retry.decide(Outcome::NoAnswer { sent: true })
                        }
                    };
                    if let Decision::RetryAfter(wait) = decision {
                        log::warn!(
                            "GitHub {step}: {} `{}` failed ({cause}); retry {attempt} in {:.1}s",
                            method.as_str(),
                            self.shown_url(path),
                            wait.as_secs_f64()
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let note = if timed_out {
                        format!(
                            ": timed out: no answer within {:.0}s (set {} to wait longer)",
                            self.timeout.as_secs_f64(),
                            crate::http::ENV_TIMEOUT
                        )
                    } else {
                        String::new()
                    };
                    return Err(ZooError::GitHubTransport {
                        step: step.to_owned(),
                        method: method.as_str(),
                        url: self.shown_url(path),
                        attempts: retry.attempts(),
                        note,
                        source: cause,
                    });
                }
            };
            let rate_limited = headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0");
            let answer = Answer {
                status,
                ambiguous: retry.ambiguous(),
                body: text,
                rate_limited,
            };
            if status.is_success() {
                return Ok(answer);
            }
            let retry_after = crate::retry::parse_retry_after(&headers);
            // GitHub's secondary rate limit answers 403 with a Retry-After: that is a 429.
            let effective = if status == StatusCode::FORBIDDEN && retry_after.is_some() {
                429
            } else {
                status.as_u16()
            };
            match retry.decide(Outcome::Status {
                status: effective,
                retry_after,
            }) {
                Decision::RetryAfter(wait) => {
                    log::warn!(
                        "GitHub {step}: {} `{}` answered {status}; retry {attempt} in {:.1}s",
                        method.as_str(),
                        self.shown_url(path),
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Decision::GiveUp { note } => {
                    if let Some(note) = note {
                        log::warn!("GitHub {step}: {note}");
                    }
                    return Ok(answer);
                }
            }
        }
    }

    /// GET `path` as `T`; `Ok(None)` on 404/422 when `missing_ok`.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        step: &str,
        path: &str,
        missing_ok: bool,
    ) -> Result<Option<T>, ZooError> {
        let answer = self
            .send(step, Method::Get, path, None, Replay::Always)
            .await?;
        if answer.is_success() {
            return answer.json(step).map(Some);
        }
        if missing_ok
            && matches!(
                answer.status,
                StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
            )
        {
            return Ok(None);
        }
        Err(answer.into_error(step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            ambiguous: false,
            body: body.to_owned(),
            rate_limited: false,
        }
    }

    #[test]
    fn messages_from_github_error_bodies() {
        let cases: &[(&str, u16, &str, &str)] = &[
            (
                "plain",
                401,
                r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#,
                "Bad credentials",
            ),
            (
                "pull already exists",
                422,
                r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for kipoi:update-json."}],"documentation_url":"x"}"#,
                "Validation Failed: A pull request already exists for kipoi:update-json.",
            ),
            (
                "field and code",
                422,
                r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"}]}"#,
                "Validation Failed: head: invalid",
            ),
            (
                "gateway html",
                502,
                "<!DOCTYPE html><html><h1>502</h1></html>",
                "Bad Gateway",
            ),
            ("plain text", 500, " oops \n", "oops"),
        ];
        for (name, status, body, expected) in cases {
            assert_eq!(answer(*status, body).message(), *expected, "{name}");
        }
    }

    #[test]
    fn auth_errors_name_the_variables() {
        let err = answer(401, r#"{"message":"Bad credentials"}"#).into_error("reading x");
        let text = err.to_string();
        assert!(
            text.contains("401") && text.contains("GITHUB_PAT") && text.contains("GITHUB_TOKEN"),
            "{text}"
        );
        let err = answer(403, r#"{"message":"Resource not accessible"}"#).into_error("writing x");
        assert!(err.to_string().contains("GITHUB_PAT"), "{err}");
    }

    /// Every request carries the token in an `Authorization` header marked sensitive.
    #[tokio::test]
    async fn the_authorization_header_is_sensitive() {
        let c = GitHubClient::new(
            "http://127.0.0.1:9",
            Secret::new("not-a-real-token-gh"),
            RetryPolicy::default(),
        )
        .unwrap();
        let octocrab = c.octocrab().unwrap();
        let body = serde_json::json!({"a": 1});
        for (method, body) in [
            (Method::Get, None),
            (Method::Put, Some(&body)),
            (Method::Post, Some(&body)),
            (Method::Patch, Some(&body)),
        ] {
            let request = c.request(&octocrab, method, "/repos/o/r", body).unwrap();
            let value = request.headers().get(http::header::AUTHORIZATION).unwrap();
            assert!(value.is_sensitive(), "{method:?}");
            assert_eq!(value.to_str().unwrap(), "Bearer not-a-real-token-gh");
            assert_eq!(request.uri(), "/repos/o/r");
            assert_eq!(request.method().as_str(), method.as_str());
        }
        // Anonymous: no header.
        let anonymous =
            GitHubClient::new("http://127.0.0.1:9", None, RetryPolicy::default()).unwrap();
        let request = anonymous
            .request(&octocrab, Method::Get, "/repos/o/r", None)
            .unwrap();
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        // A token that cannot be a header value is refused, without being shown.
        let err = GitHubClient::new(
            "http://127.0.0.1:9",
            Secret::new("not-a-real\ntoken"),
            RetryPolicy::default(),
        )
        .unwrap_err();
        let text = crate::errchain::chain(&err);
        assert!(
            text.contains("GITHUB_PAT") && !text.contains("not-a-real"),
            "{text}"
        );
    }

    #[test]
    fn debug_hides_the_api_credentials() {
        let c = GitHubClient::new(
            "https://u:not-a-real-pw@ghe.example/api/v3?access_token=not-a-real-token",
            None,
            RetryPolicy::default(),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("not-a-real"), "{shown}");
        assert!(shown.contains("ghe.example/api/v3"), "{shown}");
    }

    #[test]
    fn debug_hides_the_token() {
        let c = GitHubClient::new(
            "http://x",
            Secret::new("not-a-real-token"),
            RetryPolicy::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("not-a-real-token"));
    }
}
