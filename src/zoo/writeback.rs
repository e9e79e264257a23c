//! Writing the index files back into the zoo: what to write, what happened.
//!
//! Upstream keeps `model-to-docker.json` and `model-to-singularity.json` in the zoo under
//! `shared/containers/`; a sync commits its changes to them on a branch `update-json`
//! (created from the default branch's head when missing, reused when present, moved to the
//! default branch's head when everything it holds was merged) and opens a pull request
//! "Update container jsons" from it. This module holds the shared vocabulary;
//! the two zoo kinds implement it:
//!
//! - GitHub (`github_write.rs`): contents API with the blob sha as compare-and-swap, a
//!   conflicting write re-read and the edit re-applied, then the pull request (an already
//!   open one is found and returned).
//! - A local checkout (`local_write.rs`): git plumbing on a temporary index, `update-ref`
//!   with the old value as compare-and-swap; the checkout's working tree, index and `HEAD`
//!   are never touched. There is no pull request.
//!
//! Each file is given as a [`Change`] to apply to its current content (never a blind
//! overwrite), and is committed only when the result differs from what is there.

use serde::Serialize;
use serde_json::{Map, Value};

use super::edit::{apply_to_text, Applied, IndexEdit};
use super::{Zoo, ZooError};
use crate::retry::RetryPolicy;

/// The branch the index files are written to (upstream's name).
pub const WRITE_BRANCH: &str = "update-json";
/// Where upstream keeps the index files in the zoo.
pub const CONTAINERS_DIR: &str = "shared/containers";
/// The title of the pull request (upstream's).
pub const PR_TITLE: &str = "Update container jsons";
/// The body of the pull request (upstream's).
pub const PR_BODY: &str = "Automatic pr created from kipoi-containers";

/// How a file's content should change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Apply this edit to whatever the file holds (re-applied after a conflict).
    Edit(IndexEdit),
    /// Make the file hold this object: the edit is the difference between the content
    /// first read and this object, so keys someone else adds meanwhile survive (upstream's
    /// `write_json_to_kipoi(dict, …)` with a merge instead of a clobber).
    Converge(Map<String, Value>),
}

/// One file to write.
#[derive(Debug, Clone, PartialEq)]
pub struct FileUpdate {
    /// Path in the zoo, e.g. `shared/containers/model-to-docker.json`.
    pub path: String,
    pub change: Change,
}

impl FileUpdate {
    /// Apply `edit` to `path`.
    #[must_use]
    pub fn edit(path: impl Into<String>, edit: IndexEdit) -> Self {
        Self {
            path: path.into(),
            change: Change::Edit(edit),
        }
    }

    /// Make `path` hold `target` (merging with concurrent writers' other keys).
    #[must_use]
    pub fn converge(path: impl Into<String>, target: Map<String, Value>) -> Self {
        Self {
            path: path.into(),
            change: Change::Converge(target),
        }
    }

    /// `shared/containers/<file_name>`.
    #[must_use]
    pub fn index_path(file_name: &str) -> String {
        format!("{CONTAINERS_DIR}/{file_name}")
    }

    /// The commit message (upstream's: `Updating <file name>`).
    #[must_use]
    pub fn message(&self) -> String {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        format!("Updating {name}")
    }
}

/// How to write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// The branch to commit to.
    pub branch: String,
    /// Open (or find) a pull request from `branch` to the default branch when the branch
    /// holds commits the default branch does not (GitHub only).
    pub open_pr: bool,
    /// How often, and with what pauses, a conflicting write is re-read and retried.
    pub conflict_retry: RetryPolicy,
}

impl WriteOptions {
    /// After the write of `path` to the branch lost a race (`why`): counts the retry, gives
    /// up with [`ZooError::WriteConflict`] past the policy's attempts, else waits before the
    /// caller reads the file again and re-applies its edit.
    pub(super) async fn after_conflict(
        &self,
        retries: &mut u32,
        zoo: &str,
        path: &str,
        why: &str,
    ) -> Result<(), ZooError> {
        *retries += 1;
        if *retries > self.conflict_retry.max_retries {
            return Err(ZooError::WriteConflict {
                zoo: zoo.to_owned(),
                branch: self.branch.clone(),
                path: path.to_owned(),
                attempts: *retries,
            });
        }
        let wait = self.conflict_retry.delay(*retries, None);
        log::warn!(
            "{zoo}: `{path}` changed on `{}` while it was written ({why}); reading it again and re-applying the edit in {:.1}s",
            self.branch,
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            branch: WRITE_BRANCH.to_owned(),
            open_pr: true,
            conflict_retry: RetryPolicy {
                max_retries: 5,
                initial_backoff: std::time::Duration::from_millis(200),
                max_backoff: std::time::Duration::from_secs(5),
                ..RetryPolicy::default()
            },
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FileOutcome {
    /// The edit changed nothing: no commit.
    Unchanged,
    /// Committed on the branch. `commit` is `None` only when the answer to our write was
    /// lost and a re-read showed our content in place.
    Written { commit: Option<String> },
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    #[serde(flatten)]
    pub outcome: FileOutcome,
}

/// The pull request that proposes the branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequestInfo {
    pub number: u64,
    pub url: String,
    /// `false`: it was already open and is reused.
    pub created: bool,
}

/// What a write-back did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteBackReport {
    pub zoo: String,
    pub branch: String,
    /// The branch did not exist and was created by this write-back.
    pub branch_created: bool,
    /// The branch held nothing the default branch lacks (its pull request was merged,
    /// squashed or not) and was moved to the default branch's head first: the commit it
    /// pointed at.
    pub branch_reset_from: Option<String>,
    pub files: Vec<FileReport>,
    pub pull_request: Option<PullRequestInfo>,
}

impl WriteBackReport {
    /// Whether any file was committed.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.files
            .iter()
            .any(|f| matches!(f.outcome, FileOutcome::Written { .. }))
    }

    /// One line for logs and summaries.
    #[must_use]
    pub fn summary(&self) -> String {
        let written: Vec<String> = self
            .files
            .iter()
            .filter_map(|f| match &f.outcome {
                FileOutcome::Written { commit: Some(c) } => {
                    Some(format!("`{}` ({})", f.path, c.get(..12).unwrap_or(c)))
                }
                FileOutcome::Written { commit: None } => Some(format!("`{}`", f.path)),
                FileOutcome::Unchanged => None,
            })
            .collect();
        let mut out = String::new();
        if let Some(old) = &self.branch_reset_from {
            out.push_str(&format!(
                "{}: `{}` ({}) held nothing the default branch lacks; restarted from the default branch. ",
                self.zoo,
                self.branch,
                old.get(..12).unwrap_or(old)
            ));
        }
        out += &if written.is_empty() {
            format!("{}: nothing to write on `{}`", self.zoo, self.branch)
        } else {
            format!(
                "{}: wrote {} on `{}`",
                self.zoo,
                written.join(", "),
                self.branch
            )
        };
        if let Some(pr) = &self.pull_request {
            out.push_str(&format!(
                "; pull request #{} {} ({})",
                pr.number,
                if pr.created { "opened" } else { "already open" },
                pr.url
            ));
        }
        out
    }
}

/// The edit a file gets, fixed at its first read.
pub(super) struct PendingEdit<'a> {
    change: &'a Change,
    fixed: Option<IndexEdit>,
}

impl<'a> PendingEdit<'a> {
    pub(super) fn new(change: &'a Change) -> Self {
        Self {
            change,
            fixed: None,
        }
    }

    /// Applies the edit to `current` (the file's text; `None`: absent) and checks the
    /// result: an index file (recognised by name) must keep its shape.
    pub(super) fn apply(
        &mut self,
        zoo: &str,
        rev: &str,
        path: &str,
        current: Option<&str>,
    ) -> Result<Applied, ZooError> {
        let edit_failed = |source| ZooError::Edit {
            zoo: zoo.to_owned(),
            rev: rev.to_owned(),
            path: path.to_owned(),
            source,
        };
        if self.fixed.is_none() {
            let edit = match self.change {
                Change::Edit(edit) => edit.clone(),
                Change::Converge(target) => {
                    let base = match current {
                        Some(text) => match serde_json::from_str::<Value>(text) {
                            Ok(Value::Object(map)) => map,
                            // Not an object: `apply` below reports it.
                            Ok(_) => Map::new(),
                            Err(e) => return Err(edit_failed(super::edit::ApplyError::Json(e))),
                        },
                        None => Map::new(),
                    };
                    IndexEdit::diff(&base, target)
                }
            };
            self.fixed = Some(edit);
        }
        let edit = self.fixed.get_or_insert_with(IndexEdit::new);
        let (applied, value) = apply_to_text(edit, current).map_err(edit_failed)?;
        if let Applied::Changed(_) = applied {
            validate_index(zoo, path, &value)?;
        }
        Ok(applied)
    }
}

/// An index file (by name) must have its shape before it is written.
fn validate_index(zoo: &str, path: &str, value: &Value) -> Result<(), ZooError> {
    use crate::index::{
        validate_value, DockerToModel, IndexKind, ModelToDocker, ModelToSingularity,
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let checked = match IndexKind::from_file_name(std::path::Path::new(name)) {
        Some(IndexKind::ModelToDocker) => validate_value::<ModelToDocker>(name, value),
        Some(IndexKind::DockerToModel) => validate_value::<DockerToModel>(name, value),
        Some(IndexKind::ModelToSingularity) => validate_value::<ModelToSingularity>(name, value),
        None => Ok(()),
    };
    checked.map_err(|source| ZooError::InvalidIndex {
        zoo: zoo.to_owned(),
        path: path.to_owned(),
        source,
    })
}

/// Checks the branch name and every path before anything is read or sent.
pub(super) fn validate_request(files: &[FileUpdate], opts: &WriteOptions) -> Result<(), ZooError> {
    crate::names::validate_revision(&opts.branch)?;
    for file in files {
        super::github::validate_path(&file.path, &opts.branch)?;
    }
    Ok(())
}

/// Where the work branch stands against the default branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WorkBranch {
    Missing,
    /// It holds changes the default branch lacks (or cannot be compared with it).
    Live {
        head: String,
    },
    /// Its head reached the default branch `base` (see [`Zoo::work_branch`]).
    Merged {
        head: String,
        base: String,
        base_head: String,
        /// `head` is an ancestor of `base_head` (merged as it is, not squashed).
        ancestor: bool,
    },
}

impl Zoo {
    /// Writes `files` to `opts.branch` (created from the default branch's head when
    /// missing) and, on GitHub, proposes it in a pull request. Each file is committed only
    /// when its change alters it.
    ///
    /// GitHub needs a token (`GITHUB_PAT` or `GITHUB_TOKEN`): without one this fails before
    /// any request.
    pub async fn write_back(
        &self,
        files: &[FileUpdate],
        opts: &WriteOptions,
    ) -> Result<WriteBackReport, ZooError> {
        validate_request(files, opts)?;
        if let Self::GitHub(z) = self {
            z.require_token()?;
        }
        let reset_from = self.restart_merged_branch(&opts.branch).await?;
        let mut report = match self {
            Self::GitHub(z) => z.write_back(files, opts).await?,
            Self::Local(z) => z.write_back(files, opts).await?,
        };
        report.branch_reset_from = reset_from;
        log::info!("{}", report.summary());
        Ok(report)
    }

    /// The default branch's name and head (a local checkout: the branch checked out).
    async fn default_head(&self) -> Result<(String, String), ZooError> {
        match self {
            Self::GitHub(z) => {
                let name = z.default_branch().await?;
                let head =
                    z.branch_head(&name)
                        .await?
                        .ok_or_else(|| ZooError::UnknownRevision {
                            zoo: z.describe(),
                            rev: name.clone(),
                        })?;
                Ok((name, head))
            }
            Self::Local(z) => z.base_branch().await,
        }
    }

    /// Where `branch` stands against the default branch.
    ///
    /// A branch whose head reached the default branch holds nothing to propose and is
    /// [`WorkBranch::Merged`]: its head is an ancestor of the default branch (a merge), or
    /// on GitHub a merged pull request had this head (a squash or a rebase), or in a local
    /// checkout a commit of the default branch holds the head's version of every path the
    /// branch changed. Reading it would give the index as it was then, and writing on it
    /// would propose again what is merged, against a default branch that may have moved
    /// on (and revert what changed there since).
    pub(super) async fn work_branch(&self, branch: &str) -> Result<WorkBranch, ZooError> {
        crate::names::validate_revision(branch)?;
        let head = match self {
            Self::GitHub(z) => z.branch_head(branch).await?,
            Self::Local(z) => z.branch_head(branch).await?,
        };
        let Some(head) = head else {
            return Ok(WorkBranch::Missing);
        };
        let (base, base_head) = self.default_head().await?;
        if base == branch || head == base_head {
            return Ok(WorkBranch::Live { head });
        }
        let merge_base = match self {
            Self::GitHub(z) => z.merge_base(&base_head, &head).await?,
            Self::Local(z) => z.merge_base(&base_head, &head).await?,
        };
        let Some(merge_base) = merge_base else {
            return Ok(WorkBranch::Live { head });
        };
        // An ancestor of the default branch was merged as it is; otherwise the evidence
        // is the zoo's: GitHub's merged pull requests, a local history's content.
        let ancestor = merge_base == head;
        let merged = ancestor
            || match self {
                Self::GitHub(z) => z.merged_elsewhere(branch, &base, &head).await?,
                Self::Local(z) => z.merged_elsewhere(&head, &merge_base, &base_head).await?,
            };
        if !merged {
            return Ok(WorkBranch::Live { head });
        }
        Ok(WorkBranch::Merged {
            head,
            base,
            base_head,
            ancestor,
        })
    }

    /// Moves a [`WorkBranch::Merged`] branch to the default branch's head, so what is
    /// written next is proposed against the current default branch. Returns the commit it
    /// pointed at; `None` when it was left alone (missing, live, or moved meanwhile).
    async fn restart_merged_branch(&self, branch: &str) -> Result<Option<String>, ZooError> {
        let WorkBranch::Merged {
            head,
            base,
            base_head,
            ancestor,
        } = self.work_branch(branch).await?
        else {
            return Ok(None);
        };
        let moved = match self {
            Self::GitHub(z) => z.move_branch(branch, &head, &base_head, ancestor).await?,
            Self::Local(z) => z.move_branch(branch, &head, &base_head).await?,
        };
        if moved {
            log::info!(
                "{}: branch `{branch}` ({}) holds nothing `{base}` lacks (its changes were merged); moved it to `{base}` ({})",
                self.describe(),
                head.get(..12).unwrap_or(&head),
                base_head.get(..12).unwrap_or(&base_head)
            );
            Ok(Some(head))
        } else {
            log::info!(
                "{}: branch `{branch}` moved while it was checked; leaving it as it is",
                self.describe()
            );
            Ok(None)
        }
    }

    /// Whether `branch` exists.
    pub async fn branch_exists(&self, branch: &str) -> Result<bool, ZooError> {
        crate::names::validate_revision(branch)?;
        match self {
            Self::GitHub(z) => Ok(z.branch_head(branch).await?.is_some()),
            Self::Local(z) => Ok(z.branch_head(branch).await?.is_some()),
        }
    }

    /// The bytes of `path` on `branch` when that branch holds changes of its own, else on
    /// the default branch (a local checkout: the branch checked out): a missing branch, or
    /// one whose changes were all merged ([`WorkBranch::Merged`]), is read through the
    /// default branch. `None` when the file is absent there. Returns the branch read, too.
    pub async fn read_preferring_branch(
        &self,
        branch: &str,
        path: &str,
    ) -> Result<(String, Option<Vec<u8>>), ZooError> {
        crate::names::validate_revision(branch)?;
        super::github::validate_path(path, branch)?;
        let (rev, commit) = match self.work_branch(branch).await? {
            WorkBranch::Live { head } => (branch.to_owned(), head),
            WorkBranch::Merged {
                base, base_head, ..
            } => {
                log::info!(
                    "{}: `{branch}` holds nothing `{base}` lacks; reading `{path}` on `{base}`",
                    self.describe()
                );
                (base, base_head)
            }
            WorkBranch::Missing => self.default_head().await?,
        };
        let found = match self {
            Self::GitHub(z) => {
                let step = format!("reading `{path}` on `{rev}` of {}", z.describe());
                z.get_content(&step, &rev, path)
                    .await?
                    .map(|(_, bytes)| bytes)
            }
            Self::Local(z) => z.blob_at(&commit, path).await?.map(|(_, _, b)| b),
        };
        Ok((rev, found))
    }

    /// Opens (or finds the open) pull request from `branch` to the default branch. `None`
    /// for a local zoo, and when the branch holds nothing the default branch lacks.
    pub async fn open_pull_request(
        &self,
        branch: &str,
    ) -> Result<Option<PullRequestInfo>, ZooError> {
        crate::names::validate_revision(branch)?;
        match self {
            Self::GitHub(z) => z.open_pull_request(branch).await,
            Self::Local(z) => {
                log::info!(
                    "{}: a local zoo has no pull requests; branch `{branch}` holds the changes",
                    z.describe()
                );
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converge_is_fixed_at_the_first_read_and_merges_later() {
        let target = json!({"A": "a2", "B": "b", "N": "new"});
        let Value::Object(target) = target else {
            unreachable!()
        };
        let change = Change::Converge(target);
        let mut pending = PendingEdit::new(&change);
        let first = pending
            .apply("z", "r", "x.json", Some(r#"{"A": "a", "B": "b"}"#))
            .unwrap();
        assert!(matches!(first, Applied::Changed(_)));
        // Someone added T and we re-read: T survives, our keys are set.
        let again = pending
            .apply(
                "z",
                "r",
                "x.json",
                Some(r#"{"A": "a", "B": "b", "T": "t"}"#),
            )
            .unwrap();
        assert_eq!(
            again,
            Applied::Changed(crate::pyjson::to_string_indent4(
                &json!({"A": "a2", "B": "b", "T": "t", "N": "new"})
            ))
        );
    }

    #[test]
    fn an_invalid_index_is_refused_before_writing() {
        let edit = IndexEdit::new().set("Basset", json!(42));
        let change = Change::Edit(edit);
        let mut pending = PendingEdit::new(&change);
        let err = pending
            .apply(
                "z",
                "r",
                "shared/containers/model-to-docker.json",
                Some(r#"{"Basset": "kipoi/kipoi-docker:sharedpy3keras2tf2"}"#),
            )
            .unwrap_err();
        assert!(matches!(err, ZooError::InvalidIndex { .. }), "{err:?}");
        let text = crate::errchain::chain(&err);
        assert!(
            text.contains("model-to-docker.json") && text.contains("Basset"),
            "{text}"
        );
    }

    #[test]
    fn messages_and_summary() {
        let f = FileUpdate::edit(
            FileUpdate::index_path("model-to-docker.json"),
            IndexEdit::new(),
        );
        assert_eq!(f.path, "shared/containers/model-to-docker.json");
        assert_eq!(f.message(), "Updating model-to-docker.json");
        let mut report = WriteBackReport {
            zoo: "github:kipoi/models".into(),
            branch: WRITE_BRANCH.into(),
            branch_created: false,
            branch_reset_from: None,
            files: vec![FileReport {
                path: f.path.clone(),
                outcome: FileOutcome::Unchanged,
            }],
            pull_request: None,
        };
        assert!(!report.changed());
        assert_eq!(
            report.summary(),
            "github:kipoi/models: nothing to write on `update-json`"
        );
        report.files[0].outcome = FileOutcome::Written {
            commit: Some("0123456789abcdef0123".into()),
        };
        report.pull_request = Some(PullRequestInfo {
            number: 7,
            url: "https://github.com/kipoi/models/pull/7".into(),
            created: false,
        });
        assert!(report.changed());
        assert_eq!(
            report.summary(),
            "github:kipoi/models: wrote `shared/containers/model-to-docker.json` (0123456789ab) on `update-json`; pull request #7 already open (https://github.com/kipoi/models/pull/7)"
        );
    }
}
