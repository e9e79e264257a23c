//! A model zoo on GitHub, read through the REST API (reqwest).
//!
//! Endpoints: `GET /repos/{o}/{r}` (default branch), `GET /repos/{o}/{r}/commits/{ref}`
//! (sha and tree of a revision), `GET /repos/{o}/{r}/git/trees/{sha}?recursive=1` (every
//! path with its blob sha: the tree difference needs no contents and no merge base), and
//! `GET /repos/{o}/{r}/contents/{path}?ref=` (base64, line-wrapped). A truncated recursive
//! tree is completed by walking its subtrees. The token goes in the `Authorization`
//! header only; 429/5xx and connection errors are retried with backoff.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{Tree, ZooError};

const DEFAULT_API: &str = "https://api.github.com";
const ATTEMPTS: u32 = 4;

/// A GitHub token that never shows in `Debug` output.
#[derive(Clone)]
pub(crate) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A zoo repository on GitHub.
#[derive(Debug)]
pub struct GitHubZoo {
    api: String,
    owner: String,
    repo: String,
    token: Option<Token>,
    http: reqwest::Client,
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
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_API.to_owned());
        let token = ["GITHUB_PAT", "GITHUB_TOKEN"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
            .map(Token);
        Self::new(&api, owner, repo, token.map(|t| t.0))
    }

    /// A client for `owner/repo` at `api`.
    pub fn new(
        api: &str,
        owner: &str,
        repo: &str,
        token: Option<String>,
    ) -> Result<Self, ZooError> {
        crate::runtime::init_tls();
        let http = reqwest::Client::builder()
            .user_agent(concat!("kipoi-containers/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|source| ZooError::GitHubTransport {
                step: "client set-up".into(),
                source,
            })?;
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            token: token.map(Token),
            http,
        })
    }

    #[must_use]
    pub fn describe(&self) -> String {
        format!("github:{}/{}", self.owner, self.repo)
    }

    fn repo_url(&self, rest: &str) -> String {
        format!("{}/repos/{}/{}{rest}", self.api, self.owner, self.repo)
    }

    /// GET `url` as JSON, retrying 429/5xx/connection errors; `Ok(None)` on 404/422 when
    /// `missing_ok`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        step: &str,
        url: &str,
        missing_ok: bool,
    ) -> Result<Option<T>, ZooError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .get(url)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(t) = &self.token {
                req = req.bearer_auth(&t.0);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e)
                    if attempt < ATTEMPTS
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    log::warn!("GitHub {step}: {e}; retrying (attempt {attempt}/{ATTEMPTS})");
                    tokio::time::sleep(backoff(attempt, None)).await;
                    continue;
                }
                Err(source) => {
                    return Err(ZooError::GitHubTransport {
                        step: step.to_owned(),
                        source: source.without_url(),
                    })
                }
            };
            let status = resp.status();
            if status.is_success() {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|source| ZooError::GitHubTransport {
                        step: step.to_owned(),
                        source: source.without_url(),
                    })?;
                return serde_json::from_slice(&body).map(Some).map_err(|e| {
                    ZooError::GitHubShape {
                        step: step.to_owned(),
                        message: e.to_string(),
                    }
                });
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let remaining_zero = resp
                .headers()
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0");
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error()
                || (status == StatusCode::FORBIDDEN && retry_after.is_some());
            if transient && attempt < ATTEMPTS {
                log::warn!("GitHub {step}: {status}; retrying (attempt {attempt}/{ATTEMPTS})");
                tokio::time::sleep(backoff(attempt, retry_after)).await;
                continue;
            }
            if missing_ok
                && (status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY)
            {
                return Ok(None);
            }
            let text = resp.text().await.unwrap_or_default();
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
        let url = self.repo_url(&format!("/git/trees/{tree_sha}?recursive=1"));
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
        let url = self.repo_url(&format!("/git/trees/{tree_sha}"));
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
        let step = format!("reading `{path}` at {commit} of {}", self.describe());
        let url = self.repo_url(&format!(
            "/contents/{}?ref={}",
            encode_path(path),
            encode_path(commit)
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

/// Exponential backoff (0.5 s, 1 s, 2 s …) unless the server named a delay.
fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    retry_after.map_or_else(
        || Duration::from_millis(500 * 2u64.pow(attempt.saturating_sub(1).min(6))),
        |s| Duration::from_secs(s.min(120)),
    )
}

/// Percent-encodes a path for a URL, keeping `/` separators.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug() {
        let z = GitHubZoo::new("http://x", "o", "r", Some("ghp_secret123".into())).unwrap();
        assert!(!format!("{z:?}").contains("ghp_secret123"));
    }

    #[test]
    fn encodes_paths() {
        assert_eq!(encode_path("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(backoff(1, None), Duration::from_millis(500));
        assert_eq!(backoff(3, Some(2)), Duration::from_secs(2));
    }
}
