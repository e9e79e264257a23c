//! A model zoo on GitHub, read through the REST API (octocrab, see [`super::client`]).
//!
//! Endpoints: `GET /repos/{o}/{r}` (default branch), `GET /repos/{o}/{r}/commits/{ref}`
//! (sha and tree of a revision), `GET /repos/{o}/{r}/git/trees/{sha}?recursive=1` (every
//! path with its blob sha: the tree difference needs no contents and no merge base), and
//! `GET /repos/{o}/{r}/contents/{path}?ref=` (base64, line-wrapped). A truncated recursive
//! tree is completed by walking its subtrees. The token goes in the `Authorization`
//! header only; 429/5xx and connection errors are retried with backoff. The write-back of
//! the index files is in [`super::writeback`].

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;

use super::client::{GitHubClient, DEFAULT_API, TOKEN_VARS};
use super::ZooError;
use crate::layout::Tree;
use crate::names::validate_revision;
use crate::redact::Secret;
use crate::retry::RetryPolicy;

/// A zoo repository on GitHub.
#[derive(Debug)]
pub struct GitHubZoo {
    pub(super) owner: String,
    pub(super) repo: String,
    pub(super) client: GitHubClient,
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

impl GitHubZoo {
    /// `api_url`, else `$GITHUB_API_URL`, else https://api.github.com; token from
    /// `$GITHUB_PAT`, else `$GITHUB_TOKEN` (none: anonymous reads; writes need one).
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
        let retry = RetryPolicy {
            max_retries: 3,
            ..RetryPolicy::default()
        };
        Ok(Self {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            client: GitHubClient::new(api, token, retry)?,
        })
    }

    /// The same client with another retry policy (tests shorten the waits).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.client.set_retry(retry);
        self
    }

    #[must_use]
    pub fn describe(&self) -> String {
        format!("github:{}/{}", self.owner, self.repo)
    }

    /// `/repos/{owner}/{repo}{rest}`, relative to the API base.
    pub(super) fn repo_path(&self, rest: &str) -> String {
        format!(
            "/repos/{}/{}{rest}",
            encode_segment(&self.owner),
            encode_segment(&self.repo)
        )
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        step: &str,
        path: &str,
        missing_ok: bool,
    ) -> Result<Option<T>, ZooError> {
        self.client.get_json(step, path, missing_ok).await
    }

    async fn commit(&self, rev: &str) -> Result<CommitInfo, ZooError> {
        validate_revision(rev)?;
        let step = format!("reading commit `{rev}` of {}", self.describe());
        let path = self.repo_path(&format!("/commits/{}", encode_path(rev)));
        self.get_json(&step, &path, true)
            .await?
            .ok_or_else(|| ZooError::UnknownRevision {
                zoo: self.describe(),
                rev: rev.to_owned(),
            })
    }

    /// The name of the repository's default branch.
    pub async fn default_branch(&self) -> Result<String, ZooError> {
        let step = format!("reading repository {}", self.describe());
        let info: Option<octocrab::models::Repository> =
            self.get_json(&step, &self.repo_path(""), false).await?;
        Ok(info
            .and_then(|i| i.default_branch)
            .unwrap_or_else(|| "master".into()))
    }

    /// Full sha of `rev`; `None`: head of the default branch.
    pub async fn resolve(&self, rev: Option<&str>) -> Result<String, ZooError> {
        let rev = match rev {
            Some(r) => r.to_owned(),
            None => self.default_branch().await?,
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
        let path = self.repo_path(&format!(
            "/git/trees/{}?recursive=1",
            encode_segment(tree_sha)
        ));
        let answer: TreeAnswer =
            self.get_json(&step, &path, false)
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
        let path = self.repo_path(&format!("/git/trees/{}", encode_segment(tree_sha)));
        let level: TreeAnswer =
            self.get_json(&step, &path, false)
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
        self.get_content(&step, commit, path)
            .await?
            .map(|(_, bytes)| bytes)
            .ok_or_else(|| ZooError::FileNotFound {
                path: path.to_owned(),
                commit: commit.to_owned(),
            })
    }

    /// The blob sha and bytes of `path` at `rev` (a sha or a branch) from the contents
    /// API; `None` when the file (or the revision) does not exist. `rev` and `path` are
    /// validated before any request.
    pub(super) async fn get_content(
        &self,
        step: &str,
        rev: &str,
        path: &str,
    ) -> Result<Option<(String, Vec<u8>)>, ZooError> {
        validate_revision(rev)?;
        validate_path(path, rev)?;
        let url = self.repo_path(&format!(
            "/contents/{}?ref={}",
            encode_path(path),
            encode_query(rev)
        ));
        let Some(answer) = self
            .get_json::<octocrab::models::repos::Content>(step, &url, true)
            .await?
        else {
            return Ok(None);
        };
        let bad = |message: String| ZooError::BadFile {
            path: path.to_owned(),
            commit: rev.to_owned(),
            message,
        };
        let encoding = answer.encoding.as_deref().unwrap_or_default();
        if answer.r#type != "file" {
            return Err(bad(format!("GitHub lists it as a `{}`", answer.r#type)));
        }
        if encoding != "base64" {
            return Err(bad(format!(
                "GitHub sent encoding `{encoding}` (files over 1 MB are not served inline{})",
                answer
                    .download_url
                    .map(|_| "; a raw download exists")
                    .unwrap_or_default()
            )));
        }
        let compact: String = answer
            .content
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| bad(format!("invalid base64 from GitHub: {e}")))?;
        Ok(Some((answer.sha, bytes)))
    }
}

/// Checks a file path (relative, no `.`/`..` or empty segments) before it goes in a URL.
pub(super) fn validate_path(path: &str, rev: &str) -> Result<(), ZooError> {
    crate::names::validate_model_name(path).map_err(|e| ZooError::BadFile {
        path: path.escape_debug().to_string(),
        commit: rev.to_owned(),
        message: e.to_string(),
    })
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
pub(super) fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a path, keeping its `/` separators. Callers validate the path first
/// (no `.`/`..` segments), so the result cannot climb out of the endpoint.
pub(super) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug() {
        let z = GitHubZoo::new("http://x", "o", "r", Secret::new("not-a-real-token")).unwrap();
        assert!(!format!("{z:?}").contains("not-a-real-token"));
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
