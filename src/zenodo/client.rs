//! The HTTP side of the Zenodo client: one request with retries ([`crate::retry`]), the
//! token in the header only, transport/status errors with Zenodo's message, and a generic
//! JSON API (the upstream `zenodoclient.Client` methods).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::ACCEPT;
use reqwest::{Method, RequestBuilder, Url};
use serde_json::Value;

use super::display_url;
use super::error::{server_message, ZenodoError, ZenodoErrorKind, AUTH_HINT};
use super::{ZenodoConfig, DEPOSITIONS_PATH};
use crate::http::HttpClient;
use crate::redact::RedactedUrl;
use crate::retry::{self, Decision, Outcome, Replay, RetryState};
use crate::transfer::{TransferError, UploadHandle};

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

pub(super) struct Call<'a> {
    pub(super) step: &'a str,
    pub(super) method: Method,
    pub(super) url: &'a Url,
    pub(super) replay: Replay,
}

/// A final answer (any status) after retries.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Bytes,
    pub(super) attempts: u32,
    /// An earlier attempt may have been processed by the server without us seeing the answer.
    pub(super) ambiguous: bool,
    /// Why a transient answer was not retried, when that is not obvious (a `Retry-After`
    /// beyond `max_retry_after`).
    pub(super) not_retried: Option<String>,
}

impl Answer {
    pub(super) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Per-attempt state whose local failure must stop retries (uploads).
pub(super) trait Attempt {
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
            .field("base_url", &RedactedUrl::new(&self.config.base_url))
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
    /// header) and the fragment (never sent), and appends `query`. A URL that does not parse
    /// is named redacted (no user info, nothing after `?`).
    pub(super) fn caller_url(
        &self,
        step: &str,
        raw: &str,
        query: &[(String, String)],
    ) -> Result<Url, ZenodoError> {
        let mut url = Url::parse(raw).map_err(|e| {
            ZenodoError::new(
                step,
                ZenodoErrorKind::InvalidUrl {
                    url: RedactedUrl::redact_str(raw),
                    reason: e.to_string(),
                },
            )
        })?;
        url.set_fragment(None);
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

    pub(super) fn with_query(url: &Url, query: &[(String, String)]) -> Url {
        let mut url = url.clone();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The HTTP client (timeouts, proxies) every Zenodo request goes through.
    pub(super) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// A request with the Accept header and, for the configured origin only, the token.
    pub(super) fn request(&self, method: Method, url: &Url) -> Result<RequestBuilder, ZenodoError> {
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
    pub(super) fn transport_error(
        &self,
        call: &Call<'_>,
        attempts: u32,
        err: reqwest::Error,
    ) -> ZenodoError {
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
    pub(super) async fn execute<X: Attempt>(
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
            // reqwest's errors print the request's URL, query included: it is removed here,
            // before the error reaches a log line or an error (which name `shown` instead).
            let outcome = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry::parse_retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(body) => Ok((status, retry_after, body)),
                        Err(e) => Err(e.without_url()),
                    }
                }
                Err(e) => Err(e.without_url()),
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
    pub(super) async fn send_json(
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

    pub(super) fn status_error(call: &Call<'_>, answer: &Answer) -> ZenodoError {
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

    pub(super) fn decode(call: &Call<'_>, answer: &Answer) -> Result<Value, ZenodoError> {
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
    pub(super) fn expect_json(call: &Call<'_>, answer: &Answer) -> Result<Value, ZenodoError> {
        if answer.ok() {
            Self::decode(call, answer)
        } else {
            Err(Self::status_error(call, answer))
        }
    }

    pub(super) fn shape_error(call: &Call<'_>, detail: impl Into<String>) -> ZenodoError {
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

    pub(super) async fn delete_at(&self, step: &str, url: &Url) -> Result<(), ZenodoError> {
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

    // -------------------------------------------------------------- depositions

    /// Sends `call` (no body) and expects a JSON array back.
    pub(super) async fn send_for_array(&self, call: &Call<'_>) -> Result<Vec<Value>, ZenodoError> {
        let answer = self.send_json(call, None).await?;
        match Self::expect_json(call, &answer)? {
            Value::Array(items) => Ok(items),
            other => Err(Self::shape_error(
                call,
                format!("expected a JSON array, got {}", json_kind(&other)),
            )),
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::redact::Secret;

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

    /// A caller's URL that does not parse is named without its user info or query.
    #[test]
    fn an_unparsable_caller_url_is_named_without_its_credentials() {
        let client =
            ZenodoClient::new(ZenodoConfig::new("http://127.0.0.1:9", None).unwrap()).unwrap();
        let secret = "not-a-real-token-caller";
        let raw =
            format!("http://user:{secret}@127.0.0.1:99999/api/records/1?access_token={secret}");
        let err = client.caller_url("t", &raw, &[]).unwrap_err();
        let text = crate::errchain::chain(&err);
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("127.0.0.1:99999/api/records/1"), "{text}");
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

    /// reqwest's error text holds the request's URL, query included: a retried transport
    /// failure (refused connection, stalled server) must show neither in the retry's log
    /// line nor in the final error any credential the URL carries.
    #[tokio::test]
    async fn a_retried_transport_error_shows_no_credential_of_the_url() {
        crate::testlog::install();
        let secret = "not-a-real-token-retried";
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stalled_addr = stalled.local_addr().unwrap();
        std::thread::spawn(move || {
            // Accepts, reads nothing, answers nothing: every attempt times out.
            let held: Vec<_> = stalled.incoming().collect();
            drop(held);
        });
        for (addr, marker) in [(closed, "refused-5f3a"), (stalled_addr, "stalled-5f3a")] {
            let mut cfg = ZenodoConfig::new(&format!("http://{addr}"), None).unwrap();
            cfg.retry.max_retries = 1;
            cfg.retry.initial_backoff = std::time::Duration::from_millis(1);
            cfg.http.read_timeout = std::time::Duration::from_millis(300);
            let client = ZenodoClient::new(cfg).unwrap();
            let url = format!(
                "http://{addr}/api/records/{marker}?access_token={secret}&token={secret}&X-Amz-Signature={secret}"
            );
            let err = client.get_json(&url, &[]).await.unwrap_err();
            let text = format!("{}\n{err:?}", crate::errchain::chain(&err));
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains(marker), "{text}");
            assert!(text.contains("after 2 attempt(s)"), "{text}");
            let logged = crate::testlog::lines_with(marker);
            assert!(
                logged.iter().any(|l| l.contains("retry 1/1")),
                "no retry logged: {logged:?}"
            );
            let leaked = crate::testlog::lines_with(secret);
            assert!(leaked.is_empty(), "{leaked:?}");
        }
    }

    /// The token goes in an `Authorization` header marked sensitive (never logged by
    /// reqwest/hyper, never indexed by HTTP/2 header compression).
    #[test]
    fn the_authorization_header_is_sensitive() {
        let token = Secret::new("not-a-real-token-header").unwrap();
        let client =
            ZenodoClient::new(ZenodoConfig::new("http://127.0.0.1:9", Some(token)).unwrap())
                .unwrap();
        let url = Url::parse("http://127.0.0.1:9/api/deposit/depositions").unwrap();
        let request = client.request(Method::GET, &url).unwrap().build().unwrap();
        let value = request
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer not-a-real-token-header");
        assert!(!format!("{:?}", request.headers()).contains("not-a-real-token-header"));
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
