//! The write-back in a local git checkout, with plumbing only.
//!
//! For each file: the content on the branch (or, when the branch is missing, on the branch
//! checked out) is edited; when it changes, the new blob is stored (`hash-object -w`), a
//! tree is built in a *temporary* index (`GIT_INDEX_FILE`, `read-tree`,
//! `update-index --cacheinfo`, `write-tree`), committed (`commit-tree`) and the branch is
//! moved with `update-ref <new> <old>`: a compare-and-swap that fails when the branch moved
//! meanwhile, after which the file is read again and the edit re-applied.
//!
//! The checkout's working tree, index and `HEAD` are never touched. A branch checked out in
//! some worktree is refused (moving it would leave that working tree behind). Without a
//! configured identity, commits are made as [`IDENTITY_NAME`] <[`IDENTITY_EMAIL`]>.

use super::edit::Applied;
use super::local::LocalZoo;
use super::writeback::{
    FileOutcome, FileReport, FileUpdate, PendingEdit, WriteBackReport, WriteOptions,
};
use super::ZooError;

/// How many commits of the default branch (touching the branch's paths) are searched for
/// the branch's content before it counts as not merged.
pub(super) const MERGED_SEARCH_DEPTH: usize = 200;

/// The committer (and author) name when the repository has no identity configured.
pub const IDENTITY_NAME: &str = "kipoi-containers";
/// The committer (and author) email when the repository has no identity configured.
pub const IDENTITY_EMAIL: &str = "kipoi-containers@users.noreply.github.com";

impl LocalZoo {
    /// The commit `branch` points at; `None` when there is no such branch.
    pub(super) async fn branch_head(&self, branch: &str) -> Result<Option<String>, ZooError> {
        crate::names::validate_revision(branch)?;
        self.commit_of(&format!("refs/heads/{branch}^{{commit}}"))
            .await
    }

    /// The merge base of commits `a` and `b`; `None` when they share no history.
    pub(super) async fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>, ZooError> {
        match self.git(&["merge-base", "--end-of-options", a, b]).await {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_owned())),
            Err(ZooError::Git { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether some commit of the default branch since `merge_base` (the newest
    /// [`MERGED_SEARCH_DEPTH`] touching them) holds `head`'s version of every path `head`
    /// changed since `merge_base`: a squash merge, a cherry-pick, the same edit by hand.
    pub(super) async fn merged_elsewhere(
        &self,
        head: &str,
        merge_base: &str,
        base_head: &str,
    ) -> Result<bool, ZooError> {
        let changed = self
            .git(&[
                "diff",
                "--name-only",
                "-z",
                "--no-renames",
                merge_base,
                head,
            ])
            .await?;
        let paths: Vec<String> = changed
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        if paths.is_empty() {
            return Ok(true);
        }
        let listing = |commit: &str| -> Vec<String> {
            let mut args: Vec<String> = ["ls-tree", "-z", "--full-tree", commit, "--"]
                .iter()
                .map(|a| (*a).to_owned())
                .collect();
            args.extend(paths.iter().cloned());
            args
        };
        let want = self.git(&as_args(&listing(head))).await?;
        let range = format!("{merge_base}..{base_head}");
        let depth = format!("--max-count={MERGED_SEARCH_DEPTH}");
        let mut args = vec!["rev-list", depth.as_str(), range.as_str(), "--"];
        args.extend(paths.iter().map(String::as_str));
        let commits = self.git(&args).await?;
        for commit in String::from_utf8_lossy(&commits).split_whitespace() {
            if self.git(&as_args(&listing(commit))).await? == want {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Points `branch` at `to` if it still points at `from` (`update-ref` compare-and-swap);
    /// `false` when it moved meanwhile. A branch checked out in a worktree is refused.
    pub(super) async fn move_branch(
        &self,
        branch: &str,
        from: &str,
        to: &str,
    ) -> Result<bool, ZooError> {
        self.ensure_not_checked_out(branch).await?;
        let refname = format!("refs/heads/{branch}");
        let reflog = "kipoi-containers: its changes are in the default branch";
        match self
            .git(&["update-ref", "-m", reflog, &refname, to, from])
            .await
        {
            Ok(_) => Ok(true),
            // Refused because the branch is no longer at `from`: someone moved it. Any other
            // failure (a stale lock, permissions) is an error.
            Err(e @ ZooError::Git { .. }) => match self.branch_head(branch).await? {
                Some(head) if head == from => Err(e),
                _ => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    /// The branch checked out (its name and head), or `HEAD` and its commit when detached.
    pub(super) async fn base_branch(&self) -> Result<(String, String), ZooError> {
        let name = match self.git(&["symbolic-ref", "-q", "--short", "HEAD"]).await {
            Ok(out) => String::from_utf8_lossy(&out).trim().to_owned(),
            Err(ZooError::Git { .. }) => "HEAD".to_owned(),
            Err(e) => return Err(e),
        };
        let sha = self.resolve(None).await?;
        Ok((name, sha))
    }

    /// The mode, blob sha and bytes of `path` in `commit`; `None` when absent.
    pub(super) async fn blob_at(
        &self,
        commit: &str,
        path: &str,
    ) -> Result<Option<(String, String, Vec<u8>)>, ZooError> {
        let out = self
            .git(&["ls-tree", "-z", "--full-tree", commit, "--", path])
            .await?;
        let Some(record) = out.split(|b| *b == 0).find(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let record = String::from_utf8_lossy(record);
        let (meta, _) = record.split_once('\t').unwrap_or((&record, ""));
        let mut parts = meta.split(' ');
        let (Some(mode), Some(kind), Some(blob)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        if kind != "blob" {
            return Err(ZooError::BadFile {
                path: path.to_owned(),
                commit: commit.to_owned(),
                message: format!("it is a {kind}, not a file"),
            });
        }
        let bytes = self.git(&["cat-file", "blob", blob]).await?;
        Ok(Some((mode.to_owned(), blob.to_owned(), bytes)))
    }

    /// Refuses a branch checked out in any worktree of this repository.
    async fn ensure_not_checked_out(&self, branch: &str) -> Result<(), ZooError> {
        let out = self.git(&["worktree", "list", "--porcelain"]).await?;
        let wanted = format!("branch refs/heads/{branch}");
        if String::from_utf8_lossy(&out)
            .lines()
            .any(|line| line == wanted)
        {
            return Err(ZooError::BranchCheckedOut {
                zoo: self.describe(),
                branch: branch.to_owned(),
            });
        }
        Ok(())
    }

    /// Environment for `commit-tree`: the fixed identity when none is configured.
    async fn identity_env(&self) -> Result<Vec<(&'static str, &'static str)>, ZooError> {
        let configured = |key: &'static str| async move {
            match self.git(&["config", "--get", key]).await {
                Ok(out) => Ok(!String::from_utf8_lossy(&out).trim().is_empty()),
                Err(ZooError::Git { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let has_env = std::env::var_os("GIT_COMMITTER_NAME").is_some()
            && std::env::var_os("GIT_COMMITTER_EMAIL").is_some();
        if has_env || (configured("user.name").await? && configured("user.email").await?) {
            return Ok(Vec::new());
        }
        Ok(vec![
            ("GIT_AUTHOR_NAME", IDENTITY_NAME),
            ("GIT_AUTHOR_EMAIL", IDENTITY_EMAIL),
            ("GIT_COMMITTER_NAME", IDENTITY_NAME),
            ("GIT_COMMITTER_EMAIL", IDENTITY_EMAIL),
        ])
    }

    /// A commit on `parent` with `path` set to `text` (mode kept, else 100644), built in a
    /// temporary index.
    async fn commit_file(
        &self,
        parent: &str,
        path: &str,
        mode: Option<&str>,
        text: &str,
        message: &str,
        identity: &[(&str, &str)],
    ) -> Result<String, ZooError> {
        let line = |out: Vec<u8>| String::from_utf8_lossy(&out).trim().to_owned();
        let blob = line(
            self.git_full(
                &["hash-object", "-w", "--stdin"],
                &[],
                Some(text.as_bytes()),
            )
            .await?,
        );
        let scratch = tempfile::Builder::new()
            .prefix("kipoi-containers-index-")
            .tempdir()
            .map_err(|source| ZooError::Scratch { source })?;
        let index = scratch.path().join("index");
        let index = index.to_string_lossy();
        let env = [("GIT_INDEX_FILE", index.as_ref())];
        self.git_with_env(&["read-tree", parent], &env).await?;
        let cacheinfo = format!("{},{blob},{path}", mode.unwrap_or("100644"));
        self.git_with_env(&["update-index", "--add", "--cacheinfo", &cacheinfo], &env)
            .await?;
        let tree = line(self.git_with_env(&["write-tree"], &env).await?);
        let commit = line(
            self.git_full(
                &["commit-tree", &tree, "-p", parent, "-F", "-"],
                identity,
                Some(message.as_bytes()),
            )
            .await?,
        );
        Ok(commit)
    }

    /// See [`super::Zoo::write_back`].
    pub(super) async fn write_back(
        &self,
        files: &[FileUpdate],
        opts: &WriteOptions,
    ) -> Result<WriteBackReport, ZooError> {
        let zoo = self.describe();
        let branch = opts.branch.as_str();
        let refname = format!("refs/heads/{branch}");
        self.ensure_not_checked_out(branch).await?;
        let identity = self.identity_env().await?;
        let mut branch_created = false;
        let mut reports = Vec::with_capacity(files.len());
        for file in files {
            let mut pending = PendingEdit::new(&file.change);
            let mut retries = 0u32;
            let outcome = loop {
                let old = self.branch_head(branch).await?;
                let (rev, parent) = match &old {
                    Some(sha) => (branch.to_owned(), sha.clone()),
                    None => self.base_branch().await?,
                };
                let current = match self.blob_at(&parent, &file.path).await? {
                    Some((mode, _, bytes)) => {
                        let text = String::from_utf8(bytes).map_err(|e| ZooError::BadFile {
                            path: file.path.clone(),
                            commit: parent.clone(),
                            message: format!("not UTF-8 text: {e}"),
                        })?;
                        Some((mode, text))
                    }
                    None => None,
                };
                let new_text = match pending.apply(
                    &zoo,
                    &rev,
                    &file.path,
                    current.as_ref().map(|c| c.1.as_str()),
                )? {
                    Applied::Unchanged => break FileOutcome::Unchanged,
                    Applied::Changed(text) => text,
                };
                let commit = self
                    .commit_file(
                        &parent,
                        &file.path,
                        current.as_ref().map(|c| c.0.as_str()),
                        &new_text,
                        &file.message(),
                        &identity,
                    )
                    .await?;
                // Compare-and-swap: an empty old value means "must not exist yet".
                let expected = old.as_deref().unwrap_or("");
                let reflog = format!("kipoi-containers: {}", file.message());
                match self
                    .git(&["update-ref", "-m", &reflog, &refname, &commit, expected])
                    .await
                {
                    Ok(_) => {
                        branch_created |= old.is_none();
                        log::info!(
                            "{zoo}: wrote `{}` on `{branch}` ({})",
                            file.path,
                            commit.get(..12).unwrap_or(&commit)
                        );
                        break FileOutcome::Written {
                            commit: Some(commit),
                        };
                    }
                    Err(ZooError::Git { stderr, .. }) => {
                        opts.after_conflict(&mut retries, &zoo, &file.path, &stderr)
                            .await?;
                    }
                    Err(e) => return Err(e),
                }
            };
            reports.push(FileReport {
                path: file.path.clone(),
                outcome,
            });
        }
        Ok(WriteBackReport {
            zoo,
            branch: branch.to_owned(),
            branch_created,
            branch_reset_from: None,
            files: reports,
            pull_request: None,
        })
    }
}

fn as_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
