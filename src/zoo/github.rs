//! A model zoo on GitHub, read through the REST API (reqwest).
//!
//! Endpoints: `GET /repos/{o}/{r}` (default branch), `GET /repos/{o}/{r}/commits/{ref}`
//! (sha and tree of a revision), `GET /repos/{o}/{r}/git/trees/{sha}?recursive=1` (every
//! path with its blob sha: the tree difference needs no contents and no merge base), and
//! `GET /repos/{o}/{r}/contents/{path}?ref=` (base64, line-wrapped). A truncated recursive
//! tree is completed by walking its subtrees. The token goes in the `Authorization`
//! header only; 429/5xx and connection errors are retried with backoff.

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::StatusCode;
use serde::Deserialize;

use super::ZooError;
use crate::http::{HttpClient, HttpSettings};
use crate::layout::Tree;
use crate::names::validate_revision;
use crate::redact::{RedactedUrl, Secret};
use crate::retry::{Decision, Outcome, Replay, RetryPolicy, RetryState};

const DEFAULT_API: &str = "https://api.github.com";
/// Environment variables holding the token, in order of preference.
pub const TOKEN_VARS: &[&str] = &["GITHUB_PAT", "GITHUB_TOKEN"];

/// A zoo repository on GitHub.
#[derive(Debug)]
pub struct GitHubZoo {
    api: String,
    owner: String,
    repo: String,
    token: Option<Secret>,
    http: HttpClient,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct RepoInfo {
    default_branch: String,
}

#[derive(Deserialize)]
struct CommitInfo {
    sha: String,
    commit: CommitInner,
}

#[derive(Deserialize)]
struct CommitInner {
    tree: ShaOnly,
}

#[derive(Deserialize)]
struct ShaOnly {
    sha: String,
}

#[derive(Deserialize)]
struct TreeAnswer {
    tree: Vec<TreeEntry>,
    #[serde(default)]
    truncated: bool,
}

#[derive(Deserialize)]
struct TreeEntry {
    path: String,
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    sha: String,
}

#[derive(Deserialize)]
struct ContentAnswer {
    #[serde(default)]
    content: String,
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    download_url: Option<String>,
}

impl GitHubZoo {
    /// `api_url`, else `$GITHUB_API_URL`, else https://api.github.com; token from
    /// `$GITHUB_PAT`, else `$GITHUB_TOKEN` (none: anonymous reads).
    pub fn from_env(owner: &str, repo: &str, api_url: Option<&str>) -> Result<Self, ZooError> {
        let api = api_url
            .map(str::to_owned)
            .or_else(|| std::env::var("GITHUB_API_URL").ok())
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API.to_owned());
        Self::new(&api, owner, repo, Secret::from_env(TOKEN_VARS))
    }

    /// A client for `owner/repo` at `api`.
    pub fn new(
        api: &str,
        owner: &str,
        repo: &str,
        token: Option<Secret>,
    ) -> Result<Self, ZooError> {
        let http = HttpClient::new(HttpSettings::from_env()?)?;
        Ok(Self {
            api: api.trim().trim_end_matches('/').to_owned(),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            token,
            http,
            retry: RetryPolicy {
                max_retries: 3,
                ..RetryPolicy::default()
            },
        })
    }

    /// The same client with another retry policy (tests shorten the waits).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    #[must_use]
    pub fn describe(&self) -> String {
        format!("github:{}/{}", self.owner, self.repo)
    }

    fn repo_url(&self, rest: &str) -> String {
        format!(
            "{}/repos/{}/{}{rest}",
            self.api,
            encode_segment(&self.owner),
            encode_segment(&self.repo)
        )
    }

    /// GET `url` as JSON, retrying 429/5xx/connection errors and timeouts; `Ok(None)` on
    /// 404/422 when `missing_ok`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        step: &str,
        url: &str,
        missing_ok: bool,
    ) -> Result<Option<T>, ZooError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| ZooError::GitHubShape {
            step: step.to_owned(),
            message: format!("invalid URL `{}`: {e}", RedactedUrl::redact_str(url)),
        })?;
        let shown = RedactedUrl::new(&parsed);
        let http = self.http.client()?;
        let mut retry = RetryState::new(self.retry.clone(), Replay::Always);
        loop {
            let attempt = retry.start_attempt();
            let mut req = http
                .get(parsed.clone())
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(t) = &self.token {
                req = req.bearer_auth(t.expose());
            }
            let sent = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    resp.bytes().await.map(|body| (status, headers, body))
                }
                Err(e) => Err(e),
            };
            let (status, headers, body) = match sent {
                Ok(answer) => answer,
                Err(source) => match retry.decide(Outcome::Transport(&source)) {
                    Decision::RetryAfter(wait) => {
                        log::warn!(
                            "GitHub {step}: GET `{shown}` failed ({}); retry {attempt} in {:.1}s",
                            crate::errchain::chain(&source),
                            wait.as_secs_f64()
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Decision::GiveUp { .. } => {
                        let note = crate::http::timeout_note(&source, self.http.settings())
                            .map(|n| format!(": {n}"))
                            .unwrap_or_default();
                        return Err(ZooError::GitHubTransport {
                            step: step.to_owned(),
                            method: "GET",
                            url: shown.to_string(),
                            attempts: retry.attempts(),
                            note,
                            source: source.without_url(),
                        });
                    }
                },
            };
            if status.is_success() {
                return serde_json::from_slice(&body).map(Some).map_err(|e| {
                    ZooError::GitHubShape {
                        step: step.to_owned(),
                        message: e.to_string(),
                    }
                });
            }
            let retry_after = crate::retry::parse_retry_after(&headers);
            let remaining_zero = headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0");
            // GitHub's secondary rate limit answers 403 with a Retry-After: that is a 429.
            let effective = if status == StatusCode::FORBIDDEN && retry_after.is_some() {
                429
            } else {
                status.as_u16()
            };
            if let Decision::RetryAfter(wait) = retry.decide(Outcome::Status {
                status: effective,
                retry_after,
            }) {
                log::warn!(
                    "GitHub {step}: {status}; retry {attempt} in {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if missing_ok
                && (status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY)
            {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&body);
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            let hint = match status {
                StatusCode::UNAUTHORIZED => "; check the token in GITHUB_PAT / GITHUB_TOKEN",
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS if remaining_zero => {
                    "; rate limit exhausted: set GITHUB_PAT for 5000 requests/hour, or wait"
                }
                StatusCode::NOT_FOUND => {
                    "; check the repository name and that the token can read it"
                }
                _ => "",
            };
            return Err(ZooError::GitHub {
                step: step.to_owned(),
                status: status.as_u16(),
                message,
                hint,
            });
        }
    }

    async fn commit(&self, rev: &str) -> Result<CommitInfo, ZooError> {
        validate_revision(rev)?;
        let step = format!("reading commit `{rev}` of {}", self.describe());
        let url = self.repo_url(&format!("/commits/{}", encode_path(rev)));
        self.get_json(&step, &url, true)
            .await?
            .ok_or_else(|| ZooError::UnknownRevision {
                zoo: self.describe(),
                rev: rev.to_owned(),
            })
    }

    /// Full sha of `rev`; `None`: head of the default branch.
    pub async fn resolve(&self, rev: Option<&str>) -> Result<String, ZooError> {
        let rev = match rev {
            Some(r) => r.to_owned(),
            None => {
                let step = format!("reading repository {}", self.describe());
                let info: Option<RepoInfo> =
                    self.get_json(&step, &self.repo_url(""), false).await?;
                info.map(|i| i.default_branch)
                    .unwrap_or_else(|| "master".into())
            }
        };
        Ok(self.commit(&rev).await?.sha)
    }

    /// Every file of `commit` from the git trees API.
    pub async fn tree(&self, commit: &str) -> Result<Tree, ZooError> {
        let root = self.commit(commit).await?.commit.tree.sha;
        let mut tree = Tree::default();
        self.walk(&root, "", &mut tree).await?;
        Ok(tree)
    }

    async fn walk(&self, tree_sha: &str, prefix: &str, out: &mut Tree) -> Result<(), ZooError> {
        let step = format!("reading tree `{prefix}` of {}", self.describe());
        let url = self.repo_url(&format!(
            "/git/trees/{}?recursive=1",
            encode_segment(tree_sha)
        ));
        let answer: TreeAnswer =
            self.get_json(&step, &url, false)
                .await?
                .ok_or_else(|| ZooError::GitHubShape {
                    step: step.clone(),
                    message: "no tree".into(),
                })?;
        if !answer.truncated {
            for e in answer.tree.into_iter().filter(|e| e.kind != "tree") {
                out.files.insert(
                    format!("{prefix}{}", e.path),
                    format!("{}:{}", e.mode, e.sha),
                );
            }
            return Ok(());
        }
        // Truncated: list this level only and recurse into each subtree.
        log::debug!("GitHub tree `{prefix}` truncated; walking its subtrees");
        let url = self.repo_url(&format!("/git/trees/{}", encode_segment(tree_sha)));
        let level: TreeAnswer =
            self.get_json(&step, &url, false)
                .await?
                .ok_or_else(|| ZooError::GitHubShape {
                    step: step.clone(),
                    message: "no tree".into(),
                })?;
        for e in level.tree {
            let path = format!("{prefix}{}", e.path);
            if e.kind == "tree" {
                Box::pin(self.walk(&e.sha, &format!("{path}/"), out)).await?;
            } else {
                out.files.insert(path, format!("{}:{}", e.mode, e.sha));
            }
        }
        Ok(())
    }

    /// The bytes of `path` at `commit` (contents API; whitespace in the base64 stripped).
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Vec<u8>, ZooError> {
        validate_revision(commit)?;
        crate::names::validate_model_name(path).map_err(|e| ZooError::BadFile {
            path: path.escape_debug().to_string(),
            commit: commit.to_owned(),
            message: e.to_string(),
        })?;
        let step = format!("reading `{path}` at {commit} of {}", self.describe());
        let url = self.repo_url(&format!(
            "/contents/{}?ref={}",
            encode_path(path),
            encode_query(commit)
        ));
        let answer: ContentAnswer =
            self.get_json(&step, &url, true)
                .await?
                .ok_or_else(|| ZooError::FileNotFound {
                    path: path.to_owned(),
                    commit: commit.to_owned(),
                })?;
        if answer.encoding != "base64" {
            return Err(ZooError::BadFile {
                path: path.to_owned(),
                commit: commit.to_owned(),
                message: format!(
                    "GitHub sent encoding `{}` (files over 1 MB are not served inline{})",
                    answer.encoding,
                    answer
                        .download_url
                        .map(|_| "; a raw download exists")
                        .unwrap_or_default()
                ),
            });
        }
        let compact: String = answer.content.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| ZooError::BadFile {
                path: path.to_owned(),
                commit: commit.to_owned(),
                message: format!("invalid base64 from GitHub: {e}"),
            })
    }
}

/// Characters escaped in one URL path segment (RFC 3986 `pchar` minus sub-delimiters
/// that proxies and servers treat specially).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'+')
    .add(b'&')
    .add(b'=')
    .add(b';');
/// Characters escaped in a query value.
const QUERY: &AsciiSet = &SEGMENT.add(b':').add(b'@').add(b'$').add(b',');

/// Percent-encodes one path segment (a `/` inside is escaped).
fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a path, keeping its `/` separators. Callers validate the path first
/// (no `.`/`..` segments), so the result cannot climb out of the endpoint.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug() {
        let z = GitHubZoo::new("http://x", "o", "r", Secret::new("ghp_secret123")).unwrap();
        assert!(!format!("{z:?}").contains("ghp_secret123"));
    }

    #[tokio::test]
    async fn hostile_revisions_never_reach_the_network() {
        // Port 9 (discard) is closed: a request would fail with a transport error instead.
        let z = GitHubZoo::new("http://127.0.0.1:9", "o", "r", Secret::new("tok")).unwrap();
        for rev in ["../../../../user", "a/../b", "-x", "x y"] {
            let err = z.resolve(Some(rev)).await.unwrap_err();
            assert!(matches!(err, ZooError::BadRevision(_)), "{rev}: {err:?}");
            let err = z.read_file(rev, "A/model.yaml").await.unwrap_err();
            assert!(matches!(err, ZooError::BadRevision(_)), "{rev}: {err:?}");
        }
        let err = z.read_file("master", "../x").await.unwrap_err();
        assert!(matches!(err, ZooError::BadFile { .. }), "{err:?}");
    }

    #[test]
    fn encodes_paths() {
        assert_eq!(encode_path("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(encode_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(encode_query("a&b=c"), "a%26b%3Dc");
    }
}
