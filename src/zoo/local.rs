//! A model zoo in a local git repository, read with the `git` CLI (plumbing commands
//! only, so user configuration such as external diff drivers cannot interfere). `git` runs
//! as an async child process: no runtime thread waits on it, and a cancelled call kills it.

use std::path::{Path, PathBuf};

use super::ZooError;
use crate::layout::Tree;
use crate::names::validate_revision;
use crate::redact::RedactedUrl;

/// A local git checkout (or bare repository) of a model zoo.
#[derive(Debug, Clone)]
pub struct LocalZoo {
    repo: PathBuf,
}

impl LocalZoo {
    /// Opens `path`; fails with a clear message if it is not a git repository.
    pub async fn open(path: &Path) -> Result<Self, ZooError> {
        let zoo = Self {
            repo: path.to_path_buf(),
        };
        // A URL given for a path (a clone URL may carry a token) is named redacted.
        let shown = || RedactedUrl::redact_if_url(&path.display().to_string());
        if !tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Err(ZooError::NotARepo(shown()));
        }
        match zoo.git(&["rev-parse", "--git-dir"]).await {
            Ok(_) => Ok(zoo),
            Err(ZooError::Git { .. }) => Err(ZooError::NotARepo(shown())),
            Err(e) => Err(e),
        }
    }

    #[must_use]
    pub fn describe(&self) -> String {
        self.repo.display().to_string()
    }

    /// The checkout's directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.repo
    }

    /// Runs `git -C <repo> <args>` and returns its stdout.
    pub(crate) async fn git(&self, args: &[&str]) -> Result<Vec<u8>, ZooError> {
        self.git_with_env(args, &[]).await
    }

    /// [`Self::git`] with extra environment variables.
    pub(crate) async fn git_with_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Vec<u8>, ZooError> {
        self.git_full(args, env, None).await
    }

    /// [`Self::git`] with extra environment variables and bytes on stdin.
    pub(crate) async fn git_full(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>, ZooError> {
        use tokio::io::AsyncWriteExt as _;
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C")
            .arg(&self.repo)
            .args(["-c", "core.quotePath=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(ZooError::GitMissing)?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let (Some(data), Some(mut stdin)) = (input, stdin) {
                // A git that exits early closes its stdin: its own error says why.
                let _ = stdin.write_all(data).await;
            }
        };
        let (_, out) = tokio::join!(feed, child.wait_with_output());
        let out = out.map_err(ZooError::GitMissing)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(ZooError::Git {
                repo: self.describe(),
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Full sha of `rev` (default: `HEAD`).
    pub async fn resolve(&self, rev: Option<&str>) -> Result<String, ZooError> {
        let rev = rev.unwrap_or("HEAD");
        validate_revision(rev)?;
        self.commit_of(&format!("{rev}^{{commit}}"))
            .await?
            .ok_or_else(|| ZooError::UnknownRevision {
                zoo: self.describe(),
                rev: rev.to_owned(),
            })
    }

    /// The full sha `spec` (a validated revision with `^{commit}`) names; `None` when it
    /// names no commit. Other git failures are errors.
    pub(super) async fn commit_of(&self, spec: &str) -> Result<Option<String>, ZooError> {
        match self
            .git(&["rev-parse", "--verify", "--quiet", "--end-of-options", spec])
            .await
        {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_owned())),
            Err(ZooError::Git { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `git ls-tree -r -z`: reads tree objects only, never blob contents.
    pub async fn tree(&self, commit: &str) -> Result<Tree, ZooError> {
        let sha = self.resolve(Some(commit)).await?;
        let out = self
            .git(&["ls-tree", "-r", "-z", "--full-tree", &sha])
            .await?;
        let mut tree = Tree::default();
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let record = String::from_utf8_lossy(record);
            // "<mode> SP <type> SP <object> TAB <path>"
            let Some((meta, path)) = record.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split(' ');
            let (Some(mode), Some(_kind), Some(object)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            tree.files
                .insert(path.to_owned(), format!("{mode}:{object}"));
        }
        Ok(tree)
    }

    /// Writes the files of `commit` into the directory `dest` (created; made read-only
    /// afterwards is up to the caller): a checkout of exactly that commit for model tests,
    /// without touching the repository's working tree or index.
    pub async fn export(&self, commit: &str, dest: &Path) -> Result<(), ZooError> {
        let sha = self.resolve(Some(commit)).await?;
        let archive = self.git(&["archive", "--format=tar", &sha]).await?;
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dest)?;
            let mut tar = tar::Archive::new(archive.as_slice());
            tar.set_preserve_permissions(true);
            tar.unpack(&dest)
        })
        .await
        .map_err(|e| ZooError::GitMissing(std::io::Error::other(e)))?
        .map_err(|source| ZooError::Export {
            commit: sha,
            source,
        })
    }

    /// The bytes of `path` at `commit`.
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Vec<u8>, ZooError> {
        let sha = self.resolve(Some(commit)).await?;
        let spec = format!("{sha}:{path}");
        // Errors carry git's own words: "path … does not exist", or why a blob absent
        // from a partial clone could not be fetched.
        self.git(&["cat-file", "blob", &spec]).await
    }
}
