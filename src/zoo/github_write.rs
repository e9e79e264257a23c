//! The write-back on GitHub: branch, contents compare-and-swap, pull request.
//!
//! - Branch: `GET /git/ref/heads/{branch}`; when missing, `POST /git/refs` at the default
//!   branch's head (422 "Reference already exists" means someone else just made it: reused).
//! - File: `GET /contents/{path}?ref=` (blob sha + text), the edit applied, and when the
//!   result differs `PUT /contents/{path}` with that sha. GitHub refuses a PUT whose sha is
//!   not the file's current blob (409, or 422 "sha wasn't supplied" for a file created
//!   meanwhile): the file is read again and the same edit re-applied, so both writers'
//!   changes survive; bounded by [`WriteOptions::conflict_retry`].
//! - Pull request: `POST /pulls`; 422 "A pull request already exists" is success (the open
//!   one is looked up with `GET /pulls?head=OWNER:BRANCH&base=…`), 422 "No commits between"
//!   means there is nothing to propose.
//!
//! Everything here needs a token, checked before the first request.

use base64::Engine as _;
use http::StatusCode;
use serde_json::json;

use super::client::Method;
use super::edit::Applied;
use super::github::{encode_path, encode_query, GitHubZoo};
use super::writeback::{
    FileOutcome, FileReport, FileUpdate, PendingEdit, PullRequestInfo, WriteBackReport,
    WriteOptions, PR_BODY, PR_TITLE,
};
use super::ZooError;
use crate::retry::Replay;

/// The answer to a contents PUT.
enum Put {
    Written {
        commit: String,
    },
    /// The sha no longer matches (someone else wrote): read again and retry.
    Conflict {
        message: String,
    },
    /// The branch vanished between our read and our write.
    BranchMissing,
}

impl GitHubZoo {
    pub(super) fn require_token(&self) -> Result<(), ZooError> {
        if self.client.has_token() {
            Ok(())
        } else {
            Err(ZooError::MissingToken {
                zoo: self.describe(),
            })
        }
    }

    /// The commit sha `branch` points at; `None` when there is no such branch.
    pub(super) async fn branch_head(&self, branch: &str) -> Result<Option<String>, ZooError> {
        crate::names::validate_revision(branch)?;
        let step = format!("reading branch `{branch}` of {}", self.describe());
        let path = self.repo_path(&format!("/git/ref/heads/{}", encode_path(branch)));
        let found: Option<octocrab::models::repos::Ref> =
            self.client.get_json(&step, &path, true).await?;
        Ok(found.and_then(|r| match r.object {
            octocrab::models::repos::Object::Commit { sha, .. }
            | octocrab::models::repos::Object::Tag { sha, .. } => Some(sha),
            _ => None,
        }))
    }

    /// The merge base of commits `a` and `b` (the compare API's `merge_base_commit`);
    /// `None` when they share no history.
    pub(super) async fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>, ZooError> {
        crate::names::validate_revision(a)?;
        crate::names::validate_revision(b)?;
        let step = format!(
            "comparing {} with {} in {}",
            a.get(..12).unwrap_or(a),
            b.get(..12).unwrap_or(b),
            self.describe()
        );
        let path = self.repo_path(&format!(
            "/compare/{}...{}?per_page=1",
            encode_path(a),
            encode_path(b)
        ));
        let found: Option<serde_json::Value> = self.client.get_json(&step, &path, true).await?;
        Ok(found.and_then(|v| {
            v.pointer("/merge_base_commit/sha")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        }))
    }

    /// Whether a pull request from `branch` to `base` was merged (a merge, a squash or a
    /// rebase) while the branch pointed at `head`: GitHub's own record of what reached
    /// `base`.
    pub(super) async fn merged_elsewhere(
        &self,
        branch: &str,
        base: &str,
        head: &str,
    ) -> Result<bool, ZooError> {
        let (_, pulls) = self.pulls("closed", branch, base).await?;
        Ok(pulls
            .iter()
            .any(|pr| pr.merged_at.is_some() && pr.head.sha == head))
    }

    /// The pull requests in `state` (`open`, `closed`) from `branch` to `base` (first page,
    /// up to 100), with the step's description for errors.
    async fn pulls(
        &self,
        state: &str,
        branch: &str,
        base: &str,
    ) -> Result<(String, Vec<octocrab::models::pulls::PullRequest>), ZooError> {
        let step = format!(
            "listing the {state} pull requests from `{branch}` to `{base}` of {}",
            self.describe()
        );
        let path = self.repo_path(&format!(
            "/pulls?state={state}&head={}&base={}&per_page=100",
            encode_query(&format!("{}:{branch}", self.owner)),
            encode_query(base)
        ));
        let pulls = self
            .client
            .get_json(&step, &path, false)
            .await?
            .unwrap_or_default();
        Ok((step, pulls))
    }

    /// Points `branch` at `to` if it still points at `from`; `false` when it moved
    /// meanwhile (then it is left alone). When `from` is an ancestor of `to` (a merged
    /// branch) the update is a fast-forward, which GitHub refuses if the branch moved: a
    /// compare-and-swap. Otherwise (a squash-merged branch) it must be forced, and GitHub has
    /// no compare-and-swap for that: the head is read again just before, which leaves a
    /// window of one request in which a concurrent write to the branch would be dropped.
    pub(super) async fn move_branch(
        &self,
        branch: &str,
        from: &str,
        to: &str,
        fast_forward: bool,
    ) -> Result<bool, ZooError> {
        self.require_token()?;
        if self.branch_head(branch).await?.as_deref() != Some(from) {
            return Ok(false);
        }
        let step = format!(
            "moving branch `{branch}` to {} in {}",
            to.get(..12).unwrap_or(to),
            self.describe()
        );
        let body = json!({"sha": to, "force": !fast_forward});
        let path = self.repo_path(&format!("/git/refs/heads/{}", encode_path(branch)));
        // Replaying sets the same value again.
        let answer = self
            .client
            .send(&step, Method::Patch, &path, Some(&body), Replay::Always)
            .await?;
        if answer.is_success() {
            let _: octocrab::models::repos::Ref = answer.json(&step)?;
            return Ok(true);
        }
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
            let message = answer.message();
            // Gone, or moved so that this is no longer a fast-forward.
            if message.contains("does not exist") || message.contains("not a fast forward") {
                return Ok(false);
            }
        }
        Err(answer.into_error(&step))
    }

    /// Creates `refs/heads/{branch}` at `sha`; `false` when it already existed.
    async fn create_branch(&self, branch: &str, sha: &str) -> Result<bool, ZooError> {
        let step = format!(
            "creating branch `{branch}` at {} of {}",
            sha.get(..12).unwrap_or(sha),
            self.describe()
        );
        let body = json!({"ref": format!("refs/heads/{branch}"), "sha": sha});
        let answer = self
            .client
            .send(
                &step,
                Method::Post,
                &self.repo_path("/git/refs"),
                Some(&body),
                Replay::UnprocessedOnly,
            )
            .await?;
        if answer.is_success() {
            let _: octocrab::models::repos::Ref = answer.json(&step)?;
            log::info!("{}: created branch `{branch}`", self.describe());
            return Ok(true);
        }
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY
            && answer.message().contains("already exists")
        {
            log::info!(
                "{}: branch `{branch}` was created meanwhile; reusing it",
                self.describe()
            );
            return Ok(false);
        }
        Err(answer.into_error(&step))
    }

    /// PUT `text` as `file.path` on `branch`, expecting its current blob to be `sha`
    /// (`None`: the file must not exist). The flag: an earlier attempt of this PUT may
    /// have been applied without us seeing the answer.
    async fn put_file(
        &self,
        file: &FileUpdate,
        branch: &str,
        text: &str,
        sha: Option<&str>,
    ) -> Result<(Put, bool), ZooError> {
        let step = format!(
            "writing `{}` on branch `{branch}` of {}",
            file.path,
            self.describe()
        );
        let mut body = json!({
            "message": file.message(),
            "content": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            "branch": branch,
        });
        if let (Some(sha), Some(obj)) = (sha, body.as_object_mut()) {
            obj.insert("sha".into(), sha.into());
        }
        let path = self.repo_path(&format!("/contents/{}", encode_path(&file.path)));
        // Replaying is safe: the sha makes a repeated PUT a conflict, never a clobber.
        let answer = self
            .client
            .send(&step, Method::Put, &path, Some(&body), Replay::Always)
            .await?;
        let ambiguous = answer.ambiguous;
        if answer.is_success() {
            let update: octocrab::models::repos::FileUpdate = answer.json(&step)?;
            let commit = update.commit.sha.unwrap_or_default();
            return Ok((Put::Written { commit }, ambiguous));
        }
        let message = answer.message();
        let put = match answer.status {
            StatusCode::CONFLICT => Put::Conflict { message },
            StatusCode::UNPROCESSABLE_ENTITY if message.contains("sha") => {
                Put::Conflict { message }
            }
            StatusCode::NOT_FOUND if message.contains("Branch") => Put::BranchMissing,
            _ => return Err(answer.into_error(&step)),
        };
        Ok((put, ambiguous))
    }

    /// See [`super::Zoo::write_back`].
    pub(super) async fn write_back(
        &self,
        files: &[FileUpdate],
        opts: &WriteOptions,
    ) -> Result<WriteBackReport, ZooError> {
        self.require_token()?;
        let zoo = self.describe();
        let branch = opts.branch.as_str();
        let mut default: Option<String> = None;
        let mut branch_exists = self.branch_head(branch).await?.is_some();
        let mut branch_created = false;
        let mut reports = Vec::with_capacity(files.len());
        for file in files {
            let mut pending = PendingEdit::new(&file.change);
            let mut retries = 0u32;
            let mut maybe_written = false;
            let outcome = loop {
                let rev = if branch_exists {
                    branch.to_owned()
                } else {
                    self.cached_default(&mut default).await?
                };
                let step = format!("reading `{}` on `{rev}` of {zoo}", file.path);
                let current = match self.get_content(&step, &rev, &file.path).await? {
                    Some((sha, bytes)) => Some((sha, utf8(&file.path, &rev, bytes)?)),
                    None => None,
                };
                let text = current.as_ref().map(|(_, t)| t.as_str());
                let new_text = match pending.apply(&zoo, &rev, &file.path, text)? {
                    Applied::Unchanged if maybe_written => {
                        break FileOutcome::Written { commit: None }
                    }
                    Applied::Unchanged => break FileOutcome::Unchanged,
                    Applied::Changed(new_text) => new_text,
                };
                if !branch_exists {
                    let base_name = self.cached_default(&mut default).await?;
                    let base = self.branch_head(&base_name).await?.ok_or_else(|| {
                        ZooError::UnknownRevision {
                            zoo: zoo.clone(),
                            rev: base_name.clone(),
                        }
                    })?;
                    branch_created |= self.create_branch(branch, &base).await?;
                    branch_exists = true;
                }
                let sha = current.as_ref().map(|(sha, _)| sha.as_str());
                let (put, ambiguous) = self.put_file(file, branch, &new_text, sha).await?;
                maybe_written |= ambiguous;
                let why = match put {
                    Put::Written { commit } => {
                        log::info!(
                            "{zoo}: wrote `{}` on `{branch}` ({})",
                            file.path,
                            commit.get(..12).unwrap_or(&commit)
                        );
                        break FileOutcome::Written {
                            commit: Some(commit),
                        };
                    }
                    Put::Conflict { message } => message,
                    Put::BranchMissing => {
                        branch_exists = false;
                        format!("branch `{branch}` vanished")
                    }
                };
                opts.after_conflict(&mut retries, &zoo, &file.path, &why)
                    .await?;
            };
            reports.push(FileReport {
                path: file.path.clone(),
                outcome,
            });
        }
        let pull_request = if opts.open_pr && branch_exists {
            let base_name = self.cached_default(&mut default).await?;
            let head = self.branch_head(branch).await?;
            let base = self.branch_head(&base_name).await?;
            if head.is_some() && head != base {
                self.pull_request_to(branch, &base_name).await?
            } else {
                None
            }
        } else {
            None
        };
        Ok(WriteBackReport {
            zoo,
            branch: branch.to_owned(),
            branch_created,
            branch_reset_from: None,
            files: reports,
            pull_request,
        })
    }

    async fn cached_default(&self, cache: &mut Option<String>) -> Result<String, ZooError> {
        if let Some(name) = cache {
            return Ok(name.clone());
        }
        let name = self.default_branch().await?;
        *cache = Some(name.clone());
        Ok(name)
    }

    /// See [`super::Zoo::open_pull_request`].
    pub(super) async fn open_pull_request(
        &self,
        branch: &str,
    ) -> Result<Option<PullRequestInfo>, ZooError> {
        self.require_token()?;
        let base = self.default_branch().await?;
        self.pull_request_to(branch, &base).await
    }

    /// Opens the pull request `branch` → `base`, or finds the open one.
    async fn pull_request_to(
        &self,
        branch: &str,
        base: &str,
    ) -> Result<Option<PullRequestInfo>, ZooError> {
        let step = format!(
            "opening a pull request from `{branch}` to `{base}` of {}",
            self.describe()
        );
        let body = json!({"title": PR_TITLE, "body": PR_BODY, "head": branch, "base": base});
        let answer = self
            .client
            .send(
                &step,
                Method::Post,
                &self.repo_path("/pulls"),
                Some(&body),
                Replay::UnprocessedOnly,
            )
            .await?;
        if answer.is_success() {
            let pr: octocrab::models::pulls::PullRequest = answer.json(&step)?;
            let info = pull_info(&pr, true);
            log::info!(
                "{}: opened pull request #{} ({})",
                self.describe(),
                info.number,
                info.url
            );
            return Ok(Some(info));
        }
        let message = answer.message();
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
            if message.contains("already exists") {
                return self.find_open_pull(branch, base).await.map(Some);
            }
            if message.contains("No commits between") {
                log::info!(
                    "{}: `{branch}` holds nothing `{base}` lacks; no pull request",
                    self.describe()
                );
                return Ok(None);
            }
        }
        Err(answer.into_error(&step))
    }

    async fn find_open_pull(&self, branch: &str, base: &str) -> Result<PullRequestInfo, ZooError> {
        let (step, pulls) = self.pulls("open", branch, base).await?;
        let pr = pulls.first().ok_or_else(|| ZooError::GitHubShape {
            step: step.clone(),
            message: "GitHub said a pull request already exists but lists none open".into(),
        })?;
        let info = pull_info(pr, false);
        log::info!(
            "{}: pull request #{} is already open ({})",
            self.describe(),
            info.number,
            info.url
        );
        Ok(info)
    }
}

fn pull_info(pr: &octocrab::models::pulls::PullRequest, created: bool) -> PullRequestInfo {
    PullRequestInfo {
        number: pr.number,
        url: pr
            .html_url
            .as_ref()
            .map_or_else(|| pr.url.clone(), ToString::to_string),
        created,
    }
}

fn utf8(path: &str, rev: &str, bytes: Vec<u8>) -> Result<String, ZooError> {
    String::from_utf8(bytes).map_err(|e| ZooError::BadFile {
        path: path.to_owned(),
        commit: rev.to_owned(),
        message: format!("not UTF-8 text: {e}"),
    })
}
