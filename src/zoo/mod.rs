//! Model zoo access: what a zoo holds at a commit and what changed between two commits.
//!
//! Two sources behind one interface ([`Zoo`]): a local git checkout (the `git` CLI) and
//! GitHub's REST API. Both reduce a commit to a [`Tree`] (path → object id of every
//! file), so the change between two commits is always the **tree difference** (what
//! `git diff A B` compares), never the merge-base difference: the real zoo's history was
//! rewritten and the stored hash is not an ancestor of its master. No file contents are
//! needed for it, so repositories with absent large blobs (LFS, partial clones) work.
//!
//! What a model group is, is derived from the tree: a top-level folder that holds a
//! `model.yaml` or `model-template.yaml` somewhere below it.
//!
//! The index files upstream keeps in the zoo (`shared/containers/*.json`) are written back
//! to a branch `update-json` (see [`writeback`]): on GitHub through the contents API with
//! compare-and-swap and a pull request, in a local checkout with git plumbing only.

mod client;
mod edit;
mod github;
mod github_write;
mod local;
mod local_write;
pub mod writeback;

pub use client::{TransportCause, DEFAULT_API, TOKEN_VARS};
pub use edit::{ApplyError, EditOp, IndexEdit, NotAnObject};
pub use github::GitHubZoo;
pub use local::LocalZoo;
pub use local_write::{IDENTITY_EMAIL, IDENTITY_NAME};
pub use writeback::{
    Change, FileOutcome, FileReport, FileUpdate, PullRequestInfo, WriteBackReport, WriteOptions,
    CONTAINERS_DIR, PR_BODY, PR_TITLE, WRITE_BRANCH,
};

use std::collections::BTreeMap;

use crate::layout::{parse_models_tsv, Layout, RootKind, Tree, MODELS_TSV};
use crate::redact::RedactedUrl;

/// Errors of zoo access.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    #[error("`git {args}` failed in `{repo}`: {stderr}")]
    Git {
        repo: String,
        args: String,
        stderr: String,
    },
    #[error("could not run `git`; install it (Debian package `git`)")]
    GitMissing(#[source] std::io::Error),
    #[error("could not write the files of commit `{commit}` into a directory for the tests")]
    Export {
        commit: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not a git repository; pass a zoo checkout or `github:OWNER/REPO`")]
    NotARepo(String),
    #[error("unknown revision `{rev}` in {zoo}")]
    UnknownRevision { zoo: String, rev: String },
    #[error("GitHub {step} failed: {status} {message}{hint}")]
    GitHub {
        step: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error(
        "GitHub {step} failed: {method} `{url}` got no answer after {attempts} attempt(s){note}"
    )]
    GitHubTransport {
        step: String,
        method: &'static str,
        url: String,
        attempts: u32,
        /// ": timed out: …" when the cause was a timeout.
        note: String,
        #[source]
        source: TransportCause,
    },
    #[error("the GitHub client for `{api}` could not be set up")]
    GitHubSetup {
        api: String,
        #[source]
        source: TransportCause,
    },
    #[error(
        "writing to {zoo} needs a GitHub token: set GITHUB_PAT or GITHUB_TOKEN (nothing was sent)"
    )]
    MissingToken { zoo: String },
    #[error(
        "`{path}` on branch `{branch}` of {zoo} kept changing while it was written; gave up after {attempts} attempts"
    )]
    WriteConflict {
        zoo: String,
        branch: String,
        path: String,
        attempts: u32,
    },
    #[error("cannot edit `{path}` at `{rev}` of {zoo}")]
    Edit {
        zoo: String,
        rev: String,
        path: String,
        #[source]
        source: edit::ApplyError,
    },
    #[error("refusing to write `{path}` to {zoo}: the edited index file is invalid")]
    InvalidIndex {
        zoo: String,
        path: String,
        #[source]
        source: crate::index::IndexError,
    },
    #[error(
        "{zoo} has branch `{branch}` checked out; writing it would leave the working tree behind: check out another branch"
    )]
    BranchCheckedOut { zoo: String, branch: String },
    #[error("could not create a temporary git index")]
    Scratch {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    HttpSetup(#[from] crate::http::HttpSetupError),
    #[error(transparent)]
    BadRevision(#[from] crate::names::InvalidRevision),
    #[error("GitHub {step}: unexpected answer: {message}")]
    GitHubShape { step: String, message: String },
    #[error("`{path}` does not exist at {commit}")]
    FileNotFound { path: String, commit: String },
    #[error("`{path}` at {commit}: {message}")]
    BadFile {
        path: String,
        commit: String,
        message: String,
    },
    #[error("invalid zoo `{0}`: expected a path to a git checkout or `github:OWNER/REPO`")]
    BadSpec(String),
    #[error("invalid zoo repository `{0}`: expected `OWNER/REPO`, `github:OWNER/REPO` or the path of a git checkout")]
    BadRepoSpec(String),
}

/// A model zoo source.
#[derive(Debug)]
pub enum Zoo {
    Local(LocalZoo),
    GitHub(GitHubZoo),
}

impl Zoo {
    /// Opens a zoo from a spec: a path to a git checkout, or `github:OWNER/REPO`.
    /// GitHub uses `api_url` (default `$GITHUB_API_URL`, then https://api.github.com) and
    /// the token in `$GITHUB_PAT` or `$GITHUB_TOKEN` (optional for reads).
    pub async fn open(spec: &str, api_url: Option<&str>) -> Result<Self, ZooError> {
        if let Some(repo) = spec.strip_prefix("github:") {
            let (owner, name) = repo
                .split_once('/')
                .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| ZooError::BadSpec(RedactedUrl::redact_if_url(spec)))?;
            Ok(Self::GitHub(GitHubZoo::from_env(owner, name, api_url)?))
        } else {
            Ok(Self::Local(
                LocalZoo::open(std::path::Path::new(spec)).await?,
            ))
        }
    }

    /// Opens a zoo named the way upstream's helpers name the model repository: `OWNER/REPO`
    /// (a GitHub repository, unless a git checkout exists at that relative path),
    /// `github:OWNER/REPO`, or the path of a git checkout.
    pub async fn open_repo(spec: &str, api_url: Option<&str>) -> Result<Self, ZooError> {
        if spec.starts_with("github:") || tokio::fs::try_exists(spec).await.unwrap_or(false) {
            return Self::open(spec, api_url).await;
        }
        let is_name = |s: &str| {
            !s.is_empty()
                && !matches!(s, "." | "..")
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        match spec.split_once('/') {
            Some((owner, name)) if is_name(owner) && is_name(name) => {
                Ok(Self::GitHub(GitHubZoo::from_env(owner, name, api_url)?))
            }
            _ if spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) => {
                Err(ZooError::NotARepo(RedactedUrl::redact_if_url(spec)))
            }
            _ => Err(ZooError::BadRepoSpec(spec.to_owned())),
        }
    }

    /// A short description for messages (`github:kipoi/models`, a path).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Local(z) => z.describe(),
            Self::GitHub(z) => z.describe(),
        }
    }

    /// The full commit sha of `rev` (a sha, a branch, a tag); `None` is the default
    /// branch's head.
    pub async fn resolve(&self, rev: Option<&str>) -> Result<String, ZooError> {
        match self {
            Self::Local(z) => z.resolve(rev).await,
            Self::GitHub(z) => z.resolve(rev).await,
        }
    }

    /// Every file of `commit` with its object id (no contents are read).
    pub async fn tree(&self, commit: &str) -> Result<Tree, ZooError> {
        match self {
            Self::Local(z) => z.tree(commit).await,
            Self::GitHub(z) => z.tree(commit).await,
        }
    }

    /// The bytes of `path` at `commit`.
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Vec<u8>, ZooError> {
        match self {
            Self::Local(z) => z.read_file(commit, path).await,
            Self::GitHub(z) => z.read_file(commit, path).await,
        }
    }

    /// Paths that differ between `from` and `to` (tree difference).
    pub async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>, ZooError> {
        Ok(self.tree(from).await?.diff(&self.tree(to).await?))
    }

    /// The sync plan from `from` (a revision; the stored hash) to `to` (default: the
    /// default branch's head) against `index`.
    pub async fn plan(
        &self,
        from: &str,
        to: Option<&str>,
        index: &crate::index::Index,
    ) -> Result<crate::plan::Plan, ZooError> {
        Ok(self.plan_with_tree(from, to, index).await?.0)
    }

    /// [`Self::plan`], and the tree of the target commit (the sync derives each unit's
    /// content hash from it).
    pub async fn plan_with_tree(
        &self,
        from: &str,
        to: Option<&str>,
        index: &crate::index::Index,
    ) -> Result<(crate::plan::Plan, Tree), ZooError> {
        let from_sha = self.resolve(Some(from)).await?;
        let to_sha = self.resolve(to).await?;
        let (base, head) = if from_sha == to_sha {
            let t = self.tree(&to_sha).await?;
            (t.clone(), t)
        } else {
            (self.tree(&from_sha).await?, self.tree(&to_sha).await?)
        };
        let changed = base.diff(&head);
        let (base_layout, head_layout) = (base.layout(), head.layout());
        let mut head_models = BTreeMap::new();
        for group in crate::plan::touched_groups(&changed, &head_layout) {
            let models = self.models_of_group(&to_sha, &head_layout, &group).await?;
            head_models.insert(group, models);
        }
        log::info!(
            "{}: {} paths changed between {} and {}",
            self.describe(),
            changed.len(),
            short(&from_sha),
            short(&to_sha)
        );
        let plan = crate::plan::plan(&crate::plan::PlanInput {
            zoo: self.describe(),
            from: from_sha,
            to: to_sha,
            changed,
            base: &base_layout,
            head: &head_layout,
            head_models: &head_models,
            index,
        });
        Ok((plan, head))
    }

    /// The models of `group` at `commit` given that commit's `layout`: the `model`
    /// column of `models.tsv` beside a `model-template.yaml`, else every folder holding
    /// a `model.yaml`, else (a template without TSV) the folder itself.
    pub async fn models_of_group(
        &self,
        commit: &str,
        layout: &Layout,
        group: &str,
    ) -> Result<Vec<String>, ZooError> {
        let mut models = Vec::new();
        for (root, kind) in layout.roots_under(group) {
            match kind {
                RootKind::Model => models.push(root.clone()),
                // Whether the TSV exists comes from the tree, so any failure to read it
                // (a missing blob in a partial clone, a network error) is an error, never
                // "this template defines one model".
                RootKind::Template if layout.tables.contains(root.as_str()) => {
                    let tsv = format!("{root}/{MODELS_TSV}");
                    let bytes = self.read_file(commit, &tsv).await?;
                    let text = String::from_utf8_lossy(&bytes);
                    let listed =
                        parse_models_tsv(root, &text).map_err(|message| ZooError::BadFile {
                            path: tsv.clone(),
                            commit: commit.to_owned(),
                            message,
                        })?;
                    models.extend(listed);
                }
                RootKind::Template => models.push(root.clone()),
            }
        }
        Ok(models)
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clone URL given where a zoo is expected may carry a token: the error names it
    /// redacted.
    #[tokio::test]
    async fn a_zoo_spec_that_is_a_url_is_named_without_its_credentials() {
        let secret = "not-a-real-token-zoo";
        let url = format!("https://x-access-token:{secret}@github.com/kipoi/models");
        let specs = [
            url.clone(),
            format!("https://github.com/kipoi/models?access_token={secret}"),
            format!("github:https://{secret}@github.com/kipoi/models"),
        ];
        for spec in &specs {
            for err in [
                Zoo::open(spec, None).await.unwrap_err(),
                Zoo::open_repo(spec, None).await.unwrap_err(),
            ] {
                let text = crate::errchain::chain(&err);
                assert!(!text.contains(secret), "{spec}: {text}");
                assert!(text.contains("github.com/kipoi/models"), "{spec}: {text}");
            }
        }
        // A path is shown as it is.
        let err = Zoo::open("/nonexistent-kc/a@b/zoo", None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent-kc/a@b/zoo"), "{err}");
    }
}
