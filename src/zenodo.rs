//! Zenodo deposition client (REST API `/api/deposit/depositions`, both the legacy service
//! and the InvenioRDM one that replaced it in October 2023).
//!
//! - The base URL is configurable (`ZENODO_URL`, default `https://zenodo.org`).
//! - The token (`ZENODO_ACCESS_TOKEN`) travels only in `Authorization: Bearer`, only to the
//!   base URL's origin, and never appears in URLs, logs or errors (a [`Secret`]; URLs are
//!   shown as [`RedactedUrl`]; `access_token=` query parameters handed to us are removed).
//! - Every request, downloads included, is retried with backoff on 429 (honouring
//!   `Retry-After` up to `max_retry_after`; a longer one fails at once), 500, 502, 503, 504
//!   and transport failures, within the limits of [`Replay`] (see there for why each POST is
//!   safe to repeat).
//! - Uploads stream from disk, hash in the same pass and are checked against the md5 Zenodo
//!   reports; a mismatch removes the upload and fails.
//!
//! Errors are [`ZenodoError`]: the step that failed (naming the deposition or file), and
//! beneath it the HTTP status with Zenodo's own message, or the transport/local cause.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Url};
use serde_json::{json, Value};

use crate::http::{HttpClient, HttpSettings};
use crate::redact::{RedactedUrl, Secret};
use crate::retry::{self, Decision, Outcome, Replay, RetryPolicy, RetryState};
use crate::transfer::{self, ProgressRef, Sent, TransferError, UploadHandle};

/// Where Zenodo lives unless `ZENODO_URL` or an argument says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://zenodo.org";
/// The environment variable holding the base URL.
pub const ENV_BASE_URL: &str = "ZENODO_URL";
/// The environment variable holding the personal access token.
pub const ENV_TOKEN: &str = "ZENODO_ACCESS_TOKEN";
/// Path of the deposition collection below the base URL.
pub const DEPOSITIONS_PATH: &str = "api/deposit/depositions";
/// Pages of drafts searched for an open draft before giving up.
const DRAFT_SEARCH_PAGES: u32 = 20;
/// Drafts per page in that search (Zenodo's maximum for authenticated users).
const DRAFT_SEARCH_PAGE_SIZE: u32 = 100;

// ------------------------------------------------------------------------------ secrets

/// A Zenodo personal access token (never printed; see [`crate::redact::Secret`]).
pub type AccessToken = Secret;

/// `url` for messages: credentials and any `access_token` value replaced by `***`.
pub fn display_url(url: &Url) -> String {
    RedactedUrl::new(url).to_string()
}

// ------------------------------------------------------------------------------ errors

/// A Zenodo operation that failed: which step, and why (see [`ZenodoErrorKind`]).
#[derive(Debug, thiserror::Error)]
#[error("could not {step}")]
pub struct ZenodoError {
    /// What we were doing, naming the deposition/file, e.g. "publish deposition `123`".
    pub step: String,
    #[source]
    pub kind: ZenodoErrorKind,
}

/// Why a Zenodo operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ZenodoErrorKind {
    /// Zenodo answered with an error status (after any retries).
    #[error("Zenodo answered {status} to {method} `{url}`: {message}{hint}")]
    Status {
        method: Method,
        url: String,
        status: u16,
        /// Zenodo's own message, with field errors appended.
        message: String,
        hint: &'static str,
    },
    /// The request never got an answer.
    #[error("{method} `{url}` got no answer after {attempts} attempt(s){note}")]
    Transport {
        method: Method,
        url: String,
        attempts: u32,
        /// ": timed out: …" when the last attempt timed out.
        note: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer is not the JSON the API documents.
    #[error("the answer to {method} `{url}` is not what Zenodo documents: {detail}")]
    Decode {
        method: Method,
        url: String,
        detail: String,
    },
    /// The local file could not be read (or written, for downloads).
    #[error(transparent)]
    Local(#[from] TransferError),
    /// Zenodo stored other bytes than we sent.
    #[error("`{file}` was sent with md5 {local} but Zenodo recorded {remote}; {cleanup}")]
    ChecksumMismatch {
        file: String,
        local: String,
        remote: String,
        cleanup: &'static str,
    },
    /// A URL we were given or built is unusable.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] crate::http::HttpSetupError),
    /// Zenodo's answers contradict each other or the API contract.
    #[error("{0}")]
    Unexpected(String),
}

impl ZenodoError {
    fn new(step: impl Into<String>, kind: ZenodoErrorKind) -> Self {
        Self {
            step: step.into(),
            kind,
        }
    }

    /// The HTTP status Zenodo answered, when the failure was an error answer.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ZenodoErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Authentication or authorization failed (401/403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

const AUTH_HINT: &str = " (check ZENODO_ACCESS_TOKEN: it is missing, invalid, lacks the \
                         `deposit:write`/`deposit:actions` scope, or the deposition belongs to \
                         another account)";

/// Zenodo's message from an error body: legacy `{message, errors:[{field, message}]}`,
/// RDM `{message, errors:[{field, messages:[..]}]}`, or a gateway HTML page.
fn server_message(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "(empty body)".to_owned();
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let mut msg = match v.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => v.to_string(),
        };
        if let Some(Value::Array(errors)) = v.get("errors") {
            let details: Vec<String> = errors
                .iter()
                .map(|e| {
                    let field = e.get("field").and_then(Value::as_str).unwrap_or("?");
                    let text = match (e.get("message"), e.get("messages")) {
                        (Some(Value::String(m)), _) => m.clone(),
                        (_, Some(Value::Array(ms))) => ms
                            .iter()
                            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(" "),
                        _ => e.to_string(),
                    };
                    format!("{field}: {text}")
                })
                .collect();
            if !details.is_empty() {
                msg = format!("{msg} ({})", details.join("; "));
            }
        }
        return msg;
    }
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
        if a + 7 <= b {
            return format!("non-JSON answer: {}", text[a + 7..b].trim());
        }
    }
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = collapsed.chars().take(160).collect();
    format!("non-JSON answer: {short}")
}

// ------------------------------------------------------------------------------ config

/// Everything a [`ZenodoClient`] needs.
#[derive(Debug, Clone)]
pub struct ZenodoConfig {
    /// The service root, e.g. `https://zenodo.org/` (always ends with `/`).
    pub base_url: Url,
    pub token: Option<Secret>,
    pub retry: RetryPolicy,
    /// User agent and timeouts (from `KIPOI_HTTP_TIMEOUT` by default).
    pub http: HttpSettings,
}

impl ZenodoConfig {
    /// A configuration for `base_url` with defaults for everything else.
    pub fn new(base_url: &str, token: Option<Secret>) -> Result<Self, ZenodoError> {
        let http = HttpSettings::from_env()
            .map_err(|e| ZenodoError::new("configure the Zenodo client", e.into()))?;
        Ok(Self {
            base_url: parse_base_url(base_url)?,
            token,
            retry: RetryPolicy::default(),
            http,
        })
    }

    /// Base URL from `base_url`, else `ZENODO_URL`, else the default; token from `token`,
    /// else `ZENODO_ACCESS_TOKEN`.
    pub fn from_env(base_url: Option<&str>, token: Option<&str>) -> Result<Self, ZenodoError> {
        let env_base = std::env::var(ENV_BASE_URL)
            .ok()
            .filter(|s| !s.trim().is_empty());
        let base = base_url
            .map(str::to_owned)
            .or(env_base)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let token = match token {
            Some(t) => Secret::new(t),
            None => Secret::from_env(&[ENV_TOKEN]),
        };
        Self::new(&base, token)
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ZenodoError> {
    let invalid = |reason: String| {
        ZenodoError::new(
            "configure the Zenodo client",
            ZenodoErrorKind::InvalidUrl {
                url: raw.to_owned(),
                reason,
            },
        )
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https are supported".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL has no query or fragment".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

// ------------------------------------------------------------------------------ views

/// A deposition as Zenodo returned it, with typed accessors for the fields we use.
#[derive(Debug, Clone)]
pub struct Deposition(Value);

/// One file of a deposition (`GET …/files`, or `files[]` of a deposition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositFile {
    pub id: String,
    pub filename: String,
    pub filesize: u64,
    /// md5 as lower-case hex (any `md5:` prefix removed).
    pub checksum: String,
}

/// md5 as lower-case hex: `md5:<hex>` (bucket answers) and `<hex>` (deposit files) agree.
pub fn normalize_md5(checksum: &str) -> String {
    let c = checksum.trim();
    c.strip_prefix("md5:").unwrap_or(c).to_ascii_lowercase()
}

/// The id in the last path segment of a Zenodo link (`…/depositions/123` → 123).
pub fn id_from_link(link: &str) -> Option<u64> {
    let path = link.split(['?', '#']).next()?;
    path.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

fn as_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Deposition {
    pub fn from_value(v: Value) -> Self {
        Self(v)
    }
    pub fn raw(&self) -> &Value {
        &self.0
    }
    pub fn into_raw(self) -> Value {
        self.0
    }
    pub fn id(&self) -> Option<u64> {
        self.0.get("id").and_then(as_id)
    }
    /// `unsubmitted`, `inprogress` or `done`.
    pub fn state(&self) -> Option<&str> {
        self.0.get("state").and_then(Value::as_str)
    }
    pub fn is_published(&self) -> bool {
        self.state() == Some("done")
    }
    pub fn conceptrecid(&self) -> Option<String> {
        match self.0.get("conceptrecid")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn link(&self, name: &str) -> Option<&str> {
        self.0.get("links")?.get(name)?.as_str()
    }
    pub fn bucket_url(&self) -> Option<&str> {
        self.link("bucket")
    }
    pub fn latest_draft_id(&self) -> Option<u64> {
        self.link("latest_draft").and_then(id_from_link)
    }
    /// `metadata.prereserve_doi.recid`, the record id the published files live under.
    pub fn record_id(&self) -> Option<u64> {
        self.0
            .get("metadata")?
            .get("prereserve_doi")?
            .get("recid")
            .and_then(as_id)
            .or_else(|| self.0.get("record_id").and_then(as_id))
    }
    pub fn files(&self) -> Vec<DepositFile> {
        match self.0.get("files") {
            Some(Value::Array(files)) => files.iter().filter_map(DepositFile::from_value).collect(),
            _ => Vec::new(),
        }
    }
}

impl DepositFile {
    pub fn from_value(v: &Value) -> Option<Self> {
        Some(Self {
            id: match v.get("id")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            filename: v.get("filename")?.as_str()?.to_owned(),
            filesize: v.get("filesize").and_then(Value::as_u64).unwrap_or(0),
            checksum: normalize_md5(v.get("checksum").and_then(Value::as_str).unwrap_or("")),
        })
    }
}

/// Search parameters of `GET /api/deposit/depositions`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Elasticsearch query string.
    pub q: Option<String>,
    /// `draft` or `published`.
    pub status: Option<String>,
    /// `bestmatch`, `mostrecent`, `-` reverses.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub size: Option<u32>,
    pub all_versions: Option<bool>,
}

impl ListQuery {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_owned(), v));
            }
        };
        push("q", self.q.clone());
        push("status", self.status.clone());
        push("sort", self.sort.clone());
        push("page", self.page.map(|p| p.to_string()));
        push("size", self.size.map(|s| s.to_string()));
        push("all_versions", self.all_versions.map(|b| b.to_string()));
        out
    }
}

/// The result of an upload: Zenodo's bucket object and what we sent.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The bucket object (`key`, `size`, `checksum: "md5:<hex>"`, …).
    pub object: Value,
    pub md5: String,
    pub size: u64,
}

// ------------------------------------------------------------------------------ client

// Which requests are repeated ([`Replay`], from [`crate::retry`]):
//
// GET, PUT (metadata replaces, an upload replaces the object under its key) and DELETE
// (a repeated one finds 404, read as done) are idempotent: `Replay::Always`.
//
// Two POSTs are made safe by what follows them, so they are also `Always`:
// - `actions/newversion`: if the first call did open a draft, the repeat answers (legacy)
//   the same draft or (RDM) 400 "Please remove all files first.", after which
//   [`ZenodoClient::new_version`] looks the open draft up and continues from it;
// - `actions/publish`: a repeat after a publish that went through answers 4xx, after which
//   [`ZenodoClient::publish`] reads the deposition and accepts `state: done`.
//
// Creating a deposition is not idempotent (a repeat could leave a second, empty draft), so
// it is `Replay::UnprocessedOnly`. Generic POSTs get the same rule.

struct Call<'a> {
    step: &'a str,
    method: Method,
    url: &'a Url,
    replay: Replay,
}

/// A final answer (any status) after retries.
struct Answer {
    status: u16,
    body: Bytes,
    attempts: u32,
    /// An earlier attempt may have been processed by the server without us seeing the answer.
    ambiguous: bool,
    /// Why a transient answer was not retried, when that is not obvious (a `Retry-After`
    /// beyond `max_retry_after`).
    not_retried: Option<String>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Per-attempt state whose local failure must stop retries (uploads).
trait Attempt {
    fn local_error(&self) -> Option<TransferError>;
}

impl Attempt for () {
    fn local_error(&self) -> Option<TransferError> {
        None
    }
}

impl Attempt for UploadHandle {
    fn local_error(&self) -> Option<TransferError> {
        self.take_local_error()
    }
}

/// A Zenodo REST client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ZenodoClient {
    http: HttpClient,
    config: Arc<ZenodoConfig>,
}

impl fmt::Debug for ZenodoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZenodoClient")
            .field("base_url", &self.config.base_url.as_str())
            .field("token", &self.config.token)
            .finish_non_exhaustive()
    }
}

impl ZenodoClient {
    pub fn new(config: ZenodoConfig) -> Result<Self, ZenodoError> {
        let http = HttpClient::new(config.http.clone())
            .map_err(|e| ZenodoError::new("set up the Zenodo client", e.into()))?;
        Ok(Self {
            http,
            config: Arc::new(config),
        })
    }

    /// The client configured from the environment (see [`ZenodoConfig::from_env`]).
    pub fn from_env() -> Result<Self, ZenodoError> {
        Self::new(ZenodoConfig::from_env(None, None)?)
    }

    pub fn config(&self) -> &ZenodoConfig {
        &self.config
    }

    /// The base URL without its trailing `/`, as upstream's `ZENODO_BASE`.
    pub fn base(&self) -> String {
        self.config
            .base_url
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    /// `{base}/api/deposit/depositions[/{rest}]`.
    pub fn depositions_url(&self, rest: &str) -> Result<Url, ZenodoError> {
        let rel = if rest.is_empty() {
            DEPOSITIONS_PATH.to_owned()
        } else {
            format!("{DEPOSITIONS_PATH}/{}", rest.trim_start_matches('/'))
        };
        self.config.base_url.join(&rel).map_err(|e| {
            ZenodoError::new(
                "build a Zenodo URL",
                ZenodoErrorKind::InvalidUrl {
                    url: rel,
                    reason: e.to_string(),
                },
            )
        })
    }

    /// Parses a caller's URL, removes any `access_token` parameter (the token goes in the
    /// header) and appends `query`.
    fn caller_url(
        &self,
        step: &str,
        raw: &str,
        query: &[(String, String)],
    ) -> Result<Url, ZenodoError> {
        let mut url = Url::parse(raw).map_err(|e| {
            ZenodoError::new(
                step,
                ZenodoErrorKind::InvalidUrl {
                    url: raw.split('?').next().unwrap_or_default().to_owned(),
                    reason: e.to_string(),
                },
            )
        })?;
        let had_token = url
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("access_token"));
        if had_token {
            log::warn!(
                "removed an `access_token` query parameter from `{}`: the token is sent in the Authorization header only",
                display_url(&url)
            );
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("access_token"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .chain(
                query
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("access_token"))
                    .cloned(),
            )
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        Ok(url)
    }

    fn with_query(url: &Url, query: &[(String, String)]) -> Url {
        let mut url = url.clone();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A request with the Accept header and, for the configured origin only, the token.
    fn request(&self, method: Method, url: &Url) -> Result<RequestBuilder, ZenodoError> {
        let http = self
            .http
            .client()
            .map_err(|e| ZenodoError::new("set up the Zenodo client", e.into()))?;
        let mut rb = http
            .request(method, url.clone())
            .header(ACCEPT, "application/json");
        if let Some(token) = &self.config.token {
            if url.origin() == self.config.base_url.origin() {
                rb = rb.bearer_auth(token.expose());
            } else {
                log::debug!(
                    "not sending the Zenodo token to `{}`, which is not the configured Zenodo origin",
                    display_url(url)
                );
            }
        }
        Ok(rb)
    }

    /// The transport error of a request that got no answer.
    fn transport_error(&self, call: &Call<'_>, attempts: u32, err: reqwest::Error) -> ZenodoError {
        let note = crate::http::timeout_note(&err, self.http.settings())
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        ZenodoError::new(
            call.step,
            ZenodoErrorKind::Transport {
                method: call.method.clone(),
                url: display_url(call.url),
                attempts,
                note,
                source: err.without_url(),
            },
        )
    }

    /// Sends a request built by `make` (called once per attempt) and retries according to
    /// the policy and `call.replay`. Returns the final answer, whatever its status.
    async fn execute<X: Attempt>(
        &self,
        call: &Call<'_>,
        mut make: impl FnMut() -> Result<(RequestBuilder, X), ZenodoError>,
    ) -> Result<(Answer, X), ZenodoError> {
        let shown = display_url(call.url);
        let mut state = RetryState::new(self.config.retry.clone(), call.replay);
        loop {
            let attempt = state.start_attempt();
            let (rb, extra) = make()?;
            log::debug!("{} `{shown}` (attempt {attempt})", call.method);
            let outcome = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry::parse_retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(body) => Ok((status, retry_after, body)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok((status, retry_after, body)) => {
                    let mut not_retried = None;
                    if !(200..300).contains(&status) {
                        match state.decide(Outcome::Status {
                            status,
                            retry_after,
                        }) {
                            Decision::RetryAfter(delay) => {
                                log::warn!(
                                    "{}: Zenodo answered {status} to {} `{shown}` ({}); retry {attempt}/{} in {:.1}s",
                                    call.step,
                                    call.method,
                                    server_message(&body),
                                    state.policy().max_retries,
                                    delay.as_secs_f64()
                                );
                                tokio::time::sleep(delay).await;
                                continue;
                            }
                            Decision::GiveUp { note } => not_retried = note,
                        }
                    }
                    return Ok((
                        Answer {
                            status,
                            body,
                            attempts: attempt,
                            ambiguous: state.ambiguous(),
                            not_retried,
                        },
                        extra,
                    ));
                }
                Err(err) => {
                    if let Some(local) = extra.local_error() {
                        return Err(ZenodoError::new(call.step, ZenodoErrorKind::Local(local)));
                    }
                    match state.decide(Outcome::Transport(&err)) {
                        Decision::RetryAfter(delay) => {
                            log::warn!(
                                "{}: {} `{shown}` failed ({}); retry {attempt}/{} in {:.1}s",
                                call.step,
                                call.method,
                                crate::errchain::chain(&err),
                                state.policy().max_retries,
                                delay.as_secs_f64()
                            );
                            tokio::time::sleep(delay).await;
                        }
                        Decision::GiveUp { .. } => {
                            return Err(self.transport_error(call, attempt, err));
                        }
                    }
                }
            }
        }
    }

    /// Sends a request without a body (or with a JSON one) and returns the final answer.
    async fn send_json(
        &self,
        call: &Call<'_>,
        body: Option<&Value>,
    ) -> Result<Answer, ZenodoError> {
        let (answer, ()) = self
            .execute(call, || {
                let mut rb = self.request(call.method.clone(), call.url)?;
                if let Some(b) = body {
                    rb = rb.json(b);
                }
                Ok((rb, ()))
            })
            .await?;
        Ok(answer)
    }

    fn status_error(call: &Call<'_>, answer: &Answer) -> ZenodoError {
        let hint = if matches!(answer.status, 401 | 403) {
            AUTH_HINT
        } else {
            ""
        };
        let mut message = server_message(&answer.body);
        if answer.attempts > 1 {
            message = format!("{message} [after {} attempts]", answer.attempts);
        }
        if let Some(note) = &answer.not_retried {
            message = format!("{message}; {note}");
        }
        ZenodoError::new(
            call.step,
            ZenodoErrorKind::Status {
                method: call.method.clone(),
                url: display_url(call.url),
                status: answer.status,
                message,
                hint,
            },
        )
    }

    fn decode(call: &Call<'_>, answer: &Answer) -> Result<Value, ZenodoError> {
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            ZenodoError::new(
                call.step,
                ZenodoErrorKind::Decode {
                    method: call.method.clone(),
                    url: display_url(call.url),
                    detail: format!("invalid JSON: {e}"),
                },
            )
        })
    }

    /// Success → decoded JSON; error status → [`ZenodoErrorKind::Status`].
    fn expect_json(call: &Call<'_>, answer: &Answer) -> Result<Value, ZenodoError> {
        if answer.ok() {
            Self::decode(call, answer)
        } else {
            Err(Self::status_error(call, answer))
        }
    }

    fn shape_error(call: &Call<'_>, detail: impl Into<String>) -> ZenodoError {
        ZenodoError::new(
            call.step,
            ZenodoErrorKind::Decode {
                method: call.method.clone(),
                url: display_url(call.url),
                detail: detail.into(),
            },
        )
    }

    // -------------------------------------------------------------- generic JSON API

    /// `GET url?query` → JSON.
    pub async fn get_json(
        &self,
        url: &str,
        query: &[(String, String)],
    ) -> Result<Value, ZenodoError> {
        let step = "read from Zenodo";
        let url = self.caller_url(step, url, query)?;
        let step = format!("read `{}` from Zenodo", display_url(&url));
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        Self::expect_json(&call, &answer)
    }

    /// `PUT url` with a JSON body → JSON.
    pub async fn put_json(
        &self,
        url: &str,
        query: &[(String, String)],
        body: &Value,
    ) -> Result<Value, ZenodoError> {
        let url = self.caller_url("write to Zenodo", url, query)?;
        let step = format!("write `{}` on Zenodo", display_url(&url));
        let call = Call {
            step: &step,
            method: Method::PUT,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, Some(body)).await?;
        Self::expect_json(&call, &answer)
    }

    /// `POST url` (JSON body when given) → (status, JSON). Repeated only when the server
    /// certainly did not act (see [`Replay`]), since an arbitrary POST may not be idempotent.
    pub async fn post_json(
        &self,
        url: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), ZenodoError> {
        let url = self.caller_url("post to Zenodo", url, query)?;
        let step = format!("post to `{}`", display_url(&url));
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::UnprocessedOnly,
        };
        let answer = self.send_json(&call, body).await?;
        let value = Self::expect_json(&call, &answer)?;
        Ok((answer.status, value))
    }

    /// `DELETE url`. A 404 on a repeat after an ambiguous failure counts as done.
    pub async fn delete_url(
        &self,
        url: &str,
        query: &[(String, String)],
    ) -> Result<(), ZenodoError> {
        let url = self.caller_url("delete on Zenodo", url, query)?;
        let step = format!("delete `{}` on Zenodo", display_url(&url));
        self.delete_at(&step, &url).await
    }

    async fn delete_at(&self, step: &str, url: &Url) -> Result<(), ZenodoError> {
        let call = Call {
            step,
            method: Method::DELETE,
            url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        if answer.ok() || (answer.status == 404 && answer.ambiguous) {
            Ok(())
        } else {
            Err(Self::status_error(&call, &answer))
        }
    }

    /// Streams `path` to `url` with `PUT` (a bucket object URL `…/api/files/<bucket>/<name>`),
    /// hashing in the same pass, and checks the md5 Zenodo answers. On a mismatch the object
    /// is deleted again and the call fails.
    pub async fn upload_to(
        &self,
        url: &str,
        path: &Path,
        progress: ProgressRef,
    ) -> Result<Uploaded, ZenodoError> {
        let url = self.caller_url("upload to Zenodo", url, &[])?;
        self.upload_at(&url, path, progress).await
    }

    async fn upload_at(
        &self,
        url: &Url,
        path: &Path,
        progress: ProgressRef,
    ) -> Result<Uploaded, ZenodoError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(percent_decode)
            .unwrap_or_default();
        let step = format!(
            "upload `{}` as `{name}` to `{}`",
            path.display(),
            display_url(url)
        );
        let call = Call {
            step: &step,
            method: Method::PUT,
            url,
            replay: Replay::Always,
        };
        log::info!("uploading `{}` to `{}`", path.display(), display_url(url));
        let (answer, handle) = self
            .execute(&call, || {
                let upload = transfer::file_upload(path, progress.clone())
                    .map_err(|e| ZenodoError::new(&step, ZenodoErrorKind::Local(e)))?;
                let (body, len, handle) = upload.into_body();
                let rb = self
                    .request(Method::PUT, url)?
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len)
                    .body(body);
                Ok((rb, handle))
            })
            .await?;
        if !answer.ok() {
            return Err(Self::status_error(&call, &answer));
        }
        let sent: Sent = handle
            .finish()
            .await
            .map_err(|e| ZenodoError::new(&step, ZenodoErrorKind::Local(e)))?;
        let object = Self::decode(&call, &answer)?;
        let remote = object
            .get("checksum")
            .and_then(Value::as_str)
            .map(normalize_md5)
            .ok_or_else(|| Self::shape_error(&call, "the bucket object has no `checksum`"))?;
        if remote != sent.md5 {
            let cleanup = match self
                .delete_at(&format!("remove the corrupt upload `{name}`"), url)
                .await
            {
                Ok(()) => "the upload was removed",
                Err(e) => {
                    log::warn!("{}", crate::errchain::chain(&e));
                    "removing the upload failed too: delete it by hand"
                }
            };
            return Err(ZenodoError::new(
                step,
                ZenodoErrorKind::ChecksumMismatch {
                    file: name,
                    local: sent.md5,
                    remote,
                    cleanup,
                },
            ));
        }
        log::info!(
            "uploaded `{name}` ({} bytes, md5 {}) in {} attempt(s)",
            sent.bytes,
            sent.md5,
            answer.attempts
        );
        Ok(Uploaded {
            object,
            md5: sent.md5,
            size: sent.bytes,
        })
    }

    /// Downloads `url` into `dest` (following redirects such as `/record/…` → `/records/…`),
    /// hashing in the same pass; with `expected_md5`, a mismatch keeps nothing and fails.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        expected_md5: Option<&str>,
        progress: ProgressRef,
    ) -> Result<Sent, ZenodoError> {
        let url = self.caller_url("download from Zenodo", url, &[])?;
        let step = format!("download `{}` to `{}`", display_url(&url), dest.display());
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        let mut state = RetryState::new(self.config.retry.clone(), Replay::Always);
        loop {
            let attempt = state.start_attempt();
            let resp = match self.request(Method::GET, &url)?.send().await {
                Ok(r) => r,
                Err(e) => match state.decide(Outcome::Transport(&e)) {
                    Decision::RetryAfter(delay) => {
                        log::warn!(
                            "{step}: {}; retry {attempt} in {:.1}s",
                            crate::errchain::chain(&e),
                            delay.as_secs_f64()
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    Decision::GiveUp { .. } => return Err(self.transport_error(&call, attempt, e)),
                },
            };
            let status = resp.status().as_u16();
            if !resp.status().is_success() {
                let retry_after = retry::parse_retry_after(resp.headers());
                let body = resp.bytes().await.unwrap_or_default();
                let not_retried = match state.decide(Outcome::Status {
                    status,
                    retry_after,
                }) {
                    Decision::RetryAfter(delay) => {
                        log::warn!(
                            "{step}: Zenodo answered {status} ({}); retry {attempt} in {:.1}s",
                            server_message(&body),
                            delay.as_secs_f64()
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    Decision::GiveUp { note } => note,
                };
                return Err(Self::status_error(
                    &call,
                    &Answer {
                        status,
                        body,
                        attempts: attempt,
                        ambiguous: false,
                        not_retried,
                    },
                ));
            }
            match transfer::download_to(resp, dest, expected_md5, progress.clone()).await {
                Ok(sent) => return Ok(sent),
                Err(TransferError::Interrupted { source, path }) => {
                    match state.decide(Outcome::Transport(&source)) {
                        Decision::RetryAfter(delay) => {
                            log::warn!(
                                "{step}: interrupted ({}); retry {attempt} in {:.1}s",
                                crate::errchain::chain(&source),
                                delay.as_secs_f64()
                            );
                            tokio::time::sleep(delay).await;
                        }
                        Decision::GiveUp { .. } => {
                            return Err(ZenodoError::new(
                                &step,
                                ZenodoErrorKind::Local(TransferError::Interrupted { path, source }),
                            ))
                        }
                    }
                }
                Err(e) => return Err(ZenodoError::new(&step, ZenodoErrorKind::Local(e))),
            }
        }
    }

    // -------------------------------------------------------------- depositions

    /// Sends `call` (no body) and expects a JSON array back.
    async fn send_for_array(&self, call: &Call<'_>) -> Result<Vec<Value>, ZenodoError> {
        let answer = self.send_json(call, None).await?;
        match Self::expect_json(call, &answer)? {
            Value::Array(items) => Ok(items),
            other => Err(Self::shape_error(
                call,
                format!("expected a JSON array, got {}", json_kind(&other)),
            )),
        }
    }

    /// `GET /api/deposit/depositions` with search parameters (Z1).
    pub async fn list_depositions(&self, query: &ListQuery) -> Result<Vec<Value>, ZenodoError> {
        let url = Self::with_query(&self.depositions_url("")?, &query.pairs());
        let step = "list depositions".to_owned();
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        self.send_for_array(&call).await
    }

    /// `POST /api/deposit/depositions` (Z2): a new, empty draft (or with `metadata`).
    pub async fn create_deposition(
        &self,
        metadata: Option<&Value>,
    ) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url("")?;
        let step = "create a deposition".to_owned();
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::UnprocessedOnly,
        };
        let body = match metadata {
            Some(m) => json!({ "metadata": m }),
            None => json!({}),
        };
        let answer = self.send_json(&call, Some(&body)).await?;
        let dep = Deposition(Self::expect_json(&call, &answer)?);
        let id = dep
            .id()
            .ok_or_else(|| Self::shape_error(&call, "the new deposition has no `id`"))?;
        log::info!("created deposition `{id}`");
        Ok(dep)
    }

    /// `GET /api/deposit/depositions/{id}` (Z3).
    pub async fn get_deposition(&self, id: u64) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url(&id.to_string())?;
        let step = format!("read deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        Ok(Deposition(Self::expect_json(&call, &answer)?))
    }

    /// `PUT /api/deposit/depositions/{id}` with `{"metadata": …}` (Z4); replaces all metadata.
    pub async fn update_metadata(
        &self,
        id: u64,
        metadata: &Value,
    ) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url(&id.to_string())?;
        let step = format!("update the metadata of deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::PUT,
            url: &url,
            replay: Replay::Always,
        };
        let body = json!({ "metadata": metadata });
        let answer = self.send_json(&call, Some(&body)).await?;
        Ok(Deposition(Self::expect_json(&call, &answer)?))
    }

    /// `DELETE /api/deposit/depositions/{id}` (Z5): deletes a draft.
    pub async fn delete_deposition(&self, id: u64) -> Result<(), ZenodoError> {
        let url = self.depositions_url(&id.to_string())?;
        self.delete_at(&format!("delete draft deposition `{id}`"), &url)
            .await
    }

    /// `POST …/{id}/actions/newversion` (Z6) → the id of the new draft, read from
    /// `links.latest_draft` (legacy answers the original deposition, RDM the draft itself).
    ///
    /// When a draft of this record is already open — legacy answers it again, RDM answers
    /// 400 "Please remove all files first." — the open draft is found and returned, so a run
    /// that died after opening a draft does not block every later update.
    pub async fn new_version(&self, id: u64) -> Result<u64, ZenodoError> {
        let url = self.depositions_url(&format!("{id}/actions/newversion"))?;
        let step = format!("create a new version of deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        if answer.ok() {
            let dep = Deposition(Self::decode(&call, &answer)?);
            let draft = dep.latest_draft_id().ok_or_else(|| {
                Self::shape_error(&call, "the answer has no usable `links.latest_draft`")
            })?;
            if draft == id && dep.is_published() {
                return Err(ZenodoError::new(
                    step,
                    ZenodoErrorKind::Unexpected(format!(
                        "Zenodo answered {} but `links.latest_draft` still points at the published deposition `{id}`",
                        answer.status
                    )),
                ));
            }
            log::info!("opened draft `{draft}` as a new version of deposition `{id}`");
            return Ok(draft);
        }
        let text = String::from_utf8_lossy(&answer.body).to_ascii_lowercase();
        let draft_exists = answer.status == 400 && text.contains("remove all files");
        if draft_exists || (answer.ambiguous && matches!(answer.status, 400 | 403 | 404)) {
            if let Some(draft) = self.find_open_draft(id).await? {
                log::info!(
                    "deposition `{id}` already has an open draft `{draft}`; continuing from it"
                );
                return Ok(draft);
            }
        }
        Err(Self::status_error(&call, &answer))
    }

    /// The open (unpublished) draft of the record `id` belongs to, if any: first through the
    /// record's `links.latest_draft`, then by searching the account's drafts for the same
    /// `conceptrecid`.
    pub async fn find_open_draft(&self, id: u64) -> Result<Option<u64>, ZenodoError> {
        let record = self.get_deposition(id).await?;
        if let Some(latest) = record.latest_draft_id() {
            if latest != id {
                let draft = self.get_deposition(latest).await?;
                if !draft.is_published() {
                    return Ok(Some(latest));
                }
            }
        }
        let Some(concept) = record.conceptrecid() else {
            return Ok(None);
        };
        for page in 1..=DRAFT_SEARCH_PAGES {
            let items = self
                .list_depositions(&ListQuery {
                    status: Some("draft".into()),
                    sort: Some("mostrecent".into()),
                    page: Some(page),
                    size: Some(DRAFT_SEARCH_PAGE_SIZE),
                    all_versions: Some(true),
                    ..ListQuery::default()
                })
                .await?;
            for item in &items {
                let dep = Deposition(item.clone());
                if dep.conceptrecid().as_deref() == Some(concept.as_str())
                    && !dep.is_published()
                    && dep.id().is_some_and(|d| d != id)
                {
                    return Ok(dep.id());
                }
            }
            if items.len() < DRAFT_SEARCH_PAGE_SIZE as usize {
                break;
            }
        }
        Ok(None)
    }

    /// `GET …/{id}/files` (Z8).
    pub async fn list_files(&self, id: u64) -> Result<Vec<Value>, ZenodoError> {
        let url = self.depositions_url(&format!("{id}/files"))?;
        let step = format!("list the files of deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        self.send_for_array(&call).await
    }

    /// `DELETE …/{id}/files/{file_id}` (Z9).
    pub async fn delete_file(&self, id: u64, file_id: &str) -> Result<(), ZenodoError> {
        let mut url = self.depositions_url(&format!("{id}/files"))?;
        url.path_segments_mut()
            .map_err(|()| {
                ZenodoError::new(
                    "build a Zenodo URL",
                    ZenodoErrorKind::InvalidUrl {
                        url: self.base(),
                        reason: "the base URL cannot have paths".into(),
                    },
                )
            })?
            .push(file_id);
        self.delete_at(
            &format!("delete file `{file_id}` of deposition `{id}`"),
            &url,
        )
        .await
    }

    /// `PUT {bucket}/{filename}` (Z10), streamed and md5-checked (see [`Self::upload_to`]).
    pub async fn upload_file(
        &self,
        bucket_url: &str,
        filename: &str,
        path: &Path,
        progress: ProgressRef,
    ) -> Result<Uploaded, ZenodoError> {
        let mut url = self.caller_url("upload to Zenodo", bucket_url, &[])?;
        let shown = display_url(&url);
        url.path_segments_mut()
            .map_err(|()| {
                ZenodoError::new(
                    format!("upload `{filename}`"),
                    ZenodoErrorKind::InvalidUrl {
                        url: shown,
                        reason: "a bucket URL must be hierarchical".into(),
                    },
                )
            })?
            .pop_if_empty()
            .push(filename);
        self.upload_at(&url, path, progress).await
    }

    /// `POST …/{id}/actions/publish` (Z7). A repeat after a publish that went through
    /// (answered 4xx) is accepted when the deposition reads back as published.
    pub async fn publish(&self, id: u64) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url(&format!("{id}/actions/publish"))?;
        let step = format!("publish deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        if answer.ok() {
            let dep = Deposition(Self::decode(&call, &answer)?);
            log::info!("published deposition `{id}`");
            return Ok(dep);
        }
        if answer.ambiguous && matches!(answer.status, 400 | 403 | 404 | 409) {
            let dep = self.get_deposition(id).await?;
            if dep.is_published() {
                log::info!("deposition `{id}` was published by an earlier attempt");
                return Ok(dep);
            }
        }
        Err(Self::status_error(&call, &answer))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let t = AccessToken::new("s3cr3t-token").unwrap();
        assert_eq!(format!("{t}"), "***");
        assert_eq!(format!("{t:?}"), "Secret(***)");
        let cfg = ZenodoConfig::new("http://127.0.0.1:1", Some(t)).unwrap();
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        let client = ZenodoClient::new(cfg).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert!(AccessToken::new("  ").is_none());
    }

    #[test]
    fn display_url_redacts_access_token() {
        let u = Url::parse("https://zenodo.org/api/x?access_token=abc&q=1").unwrap();
        let shown = display_url(&u);
        assert!(!shown.contains("abc"), "{shown}");
        assert!(shown.contains("q=1"), "{shown}");
    }

    #[test]
    fn caller_url_strips_token_and_appends_query() {
        let client =
            ZenodoClient::new(ZenodoConfig::new("http://127.0.0.1:9", None).unwrap()).unwrap();
        let url = client
            .caller_url(
                "t",
                "http://127.0.0.1:9/api/deposit/depositions?access_token=abc&status=draft",
                &[
                    ("size".into(), "3".into()),
                    ("access_token".into(), "x".into()),
                ],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/deposit/depositions?status=draft&size=3"
        );
    }

    #[test]
    fn base_url_forms() {
        let cases = [
            (
                "https://zenodo.org",
                "https://zenodo.org/api/deposit/depositions/5",
            ),
            (
                "https://zenodo.org/",
                "https://zenodo.org/api/deposit/depositions/5",
            ),
            (
                "http://h:1/prefix",
                "http://h:1/prefix/api/deposit/depositions/5",
            ),
        ];
        for (base, expected) in cases {
            let c = ZenodoClient::new(ZenodoConfig::new(base, None).unwrap()).unwrap();
            assert_eq!(c.depositions_url("5").unwrap().as_str(), expected, "{base}");
        }
        assert!(ZenodoConfig::new("ftp://x", None).is_err());
        assert!(ZenodoConfig::new("not a url", None).is_err());
    }

    #[test]
    fn server_messages_of_both_generations() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "legacy",
                br#"{"status":400,"message":"Validation error.","errors":[{"field":"metadata.title","message":"Field may not be null."}]}"#,
                "Validation error. (metadata.title: Field may not be null.)",
            ),
            (
                "rdm",
                br#"{"status":400,"message":"A validation error occurred.","errors":[{"field":"files.enabled","messages":["Please remove all files first."]}]}"#,
                "A validation error occurred. (files.enabled: Please remove all files first.)",
            ),
            (
                "gateway",
                b"<html><head><title>502 Bad Gateway</title></head><body>x</body></html>",
                "non-JSON answer: 502 Bad Gateway",
            ),
            ("empty", b"", "(empty body)"),
        ];
        for (name, body, expected) in cases {
            assert_eq!(server_message(body), *expected, "{name}");
        }
    }

    #[test]
    fn ids_and_checksums() {
        assert_eq!(
            id_from_link("https://zenodo.org/api/deposit/depositions/123"),
            Some(123)
        );
        assert_eq!(
            id_from_link("https://zenodo.org/api/records/9/?x=1"),
            Some(9)
        );
        assert_eq!(id_from_link("https://zenodo.org/api/x"), None);
        assert_eq!(normalize_md5("md5:ABCdef"), "abcdef");
        assert_eq!(normalize_md5("abcdef"), "abcdef");
        assert_eq!(percent_decode("a%20b.sif"), "a b.sif");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn deposition_view() {
        let d = Deposition::from_value(json!({
            "id": 7, "state": "done", "conceptrecid": "6",
            "links": {"bucket": "https://z/api/files/abc", "latest_draft": "https://z/api/deposit/depositions/8"},
            "metadata": {"prereserve_doi": {"doi": "10.5281/zenodo.7", "recid": 7}},
            "files": [{"id": "f1", "filename": "a.sif", "filesize": 3, "checksum": "md5:AA"}]
        }));
        assert_eq!(d.id(), Some(7));
        assert!(d.is_published());
        assert_eq!(d.conceptrecid().as_deref(), Some("6"));
        assert_eq!(d.bucket_url(), Some("https://z/api/files/abc"));
        assert_eq!(d.latest_draft_id(), Some(8));
        assert_eq!(d.record_id(), Some(7));
        assert_eq!(
            d.files(),
            vec![DepositFile {
                id: "f1".into(),
                filename: "a.sif".into(),
                filesize: 3,
                checksum: "aa".into()
            }]
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_a_transport_error_naming_the_step() {
        let mut cfg = ZenodoConfig::new("http://127.0.0.1:9", None).unwrap();
        cfg.retry.max_retries = 1;
        cfg.retry.initial_backoff = std::time::Duration::from_millis(1);
        let client = ZenodoClient::new(cfg).unwrap();
        let err = client.get_deposition(42).await.unwrap_err();
        assert_eq!(err.to_string(), "could not read deposition `42`");
        let chain = crate::errchain::chain(&err);
        assert!(
            chain.contains("got no answer after 2 attempt(s)"),
            "{chain}"
        );
        assert!(matches!(err.kind, ZenodoErrorKind::Transport { .. }));
    }
}
