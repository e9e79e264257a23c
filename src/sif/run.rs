//! Running a command inside a SIF: with `apptainer` or `singularity` when one is on `PATH`,
//! otherwise without them — the SIF's primary squashfs partition mounted with `squashfuse`
//! at its offset on a private mount point, and entered with `bwrap` (bubblewrap).
//!
//! What the bwrap runner gives the command (what `apptainer exec --contain --cleanenv`
//! gives it, as far as a model test depends on it):
//! - the image's root file system, read-only; writable tmpfs on `/tmp`, `/var/tmp` and the
//!   image's `$HOME` (apptainer's `--contain`: a fresh, empty home and temporary dirs);
//! - `/proc`, a minimal `/dev`, `/sys` read-only; the host's `/etc/resolv.conf` and
//!   `/etc/hosts` when it shares the host's network;
//! - a clean environment (`PATH`, `HOME` and the caller's variables), then the image's
//!   `/.singularity.d/env/*.sh` sourced in order, as apptainer's action script does, then
//!   the command (`exec`);
//! - host directories bound read-only ([`Bind`]; destinations under `/tmp`, or
//!   directories that exist in the image) and, when asked, no network (`--unshare-net`);
//! - its own PID namespace: nothing it starts outlives it.
//!
//! Cleanup cannot be skipped: a [`Session`] drop guard kills the command's process group,
//! unmounts the partition (`fusermount -u`, then waits until the mount is gone) and removes
//! the mount point — also when the future is dropped (Ctrl-C in Python, a cancelled task),
//! through [`crate::runtime::spawn_cleanup`].
//!
//! [`test_model`] runs `kipoi test` inside a SIF the way the Docker path does
//! ([`crate::docker::Engine::test_model`]): with a zoo checkout bound read-only and mirrored
//! into a tmpfs as symlinks (`cp -as`), so kipoi can create its `downloaded/` folders and
//! the checkout stays untouched; without one, upstream's `--source=kipoi`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncRead};
use tokio::process::{Child, Command};

use super::read::{FsType, Sif, SifInspection};
use super::SifError;
use crate::docker::{model_test_args, push_tail, strip_ansi, ModelTestResult, TestOptions};

/// Chooses the runner: `apptainer`, `singularity` or `bwrap` (unset or `auto`: the first
/// available in that order).
pub const ENV_RUNNER: &str = "KIPOI_SIF_RUNNER";
/// Where a zoo checkout is bound read-only inside the SIF, and the writable mirror of it (a
/// tree of symlinks on the `/tmp` tmpfs) a model test runs in.
pub const ZOO_BIND_RO: &str = "/tmp/kipoi-zoo-ro";
pub const ZOO_DIR: &str = "/tmp/kipoi-zoo";
/// `PATH` before the image's environment scripts set theirs (apptainer's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Sources the image's environment as apptainer's action script does, then runs `"$@"`.
const ACTION_SCRIPT: &str = r#"for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
exec "$@""#;
/// How long an unmount may keep failing (the mount busy while killed processes exit)
/// before it is detached lazily.
const UNMOUNT_PATIENCE: Duration = Duration::from_secs(10);
/// How long output readers may take after the command ended.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The program that runs a SIF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerKind {
    Apptainer,
    Singularity,
    /// `squashfuse` + `bwrap`, no apptainer needed.
    Bwrap,
    /// Only ever asked for (`--runner auto`): the first available of the three, whatever
    /// [`ENV_RUNNER`] says (an argument wins over the environment). Never what ran.
    Auto,
}

impl RunnerKind {
    /// `apptainer`, `singularity`, `bwrap` or `auto`; `None` for anything else.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "apptainer" => Some(Self::Apptainer),
            "singularity" => Some(Self::Singularity),
            "bwrap" | "bubblewrap" | "squashfuse" => Some(Self::Bwrap),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Apptainer => "apptainer",
            Self::Singularity => "singularity",
            Self::Bwrap => "bwrap",
            Self::Auto => "auto",
        }
    }
}

impl fmt::Display for RunnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A host directory (or file) bound read-only into the SIF at `dest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the SIF. With the bwrap runner it must be under `/tmp` or an
    /// existing directory of the image (the image's root is read-only).
    pub dest: String,
}

/// Where the command's output goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Read, logged at debug level, and its last lines kept in [`RunOutput::tail`].
    #[default]
    Capture,
    /// The caller's stdout and stderr (a command line tool).
    Inherit,
}

/// How to run a command in a SIF. `Default`: no binds, the host's network, the image's
/// `$HOME` as working directory, no time limit, output captured, runner from
/// [`ENV_RUNNER`] or the first available.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Read-only binds.
    pub binds: Vec<Bind>,
    /// No network at all (only a loopback device).
    pub isolate_network: bool,
    /// Working directory inside the SIF.
    pub workdir: Option<String>,
    /// Variables set before the image's environment scripts run (they keep a value set
    /// here, as with `APPTAINERENV_*`, except `PATH`).
    pub env: Vec<(String, String)>,
    /// Kill the command (its whole process group) after this long.
    pub timeout: Option<Duration>,
    pub output: Output,
    /// `None`: [`ENV_RUNNER`], else apptainer, singularity, bwrap — the first available
    /// (`Some(Auto)`: the first available, whatever [`ENV_RUNNER`] says).
    pub runner: Option<RunnerKind>,
}

/// What a command run in a SIF did.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    /// The exit code; 128 + N when killed by signal N; -1 when killed for its time limit.
    pub exit_code: i32,
    pub timed_out: bool,
    /// The last lines of its output (stdout and stderr as they arrived); empty with
    /// [`Output::Inherit`].
    pub tail: String,
    pub runner: RunnerKind,
    pub seconds: f64,
}

/// The runner chosen for one run, with the programs it needs.
#[derive(Clone, Debug)]
enum Runner {
    /// `apptainer` or `singularity`.
    Apptainer { kind: RunnerKind, program: PathBuf },
    Bwrap {
        bwrap: PathBuf,
        squashfuse: PathBuf,
        fusermount: PathBuf,
    },
}

impl Runner {
    fn kind(&self) -> RunnerKind {
        match self {
            Self::Apptainer { kind, .. } => *kind,
            Self::Bwrap { .. } => RunnerKind::Bwrap,
        }
    }
}

/// The first executable `name` on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn choose_runner(sif: &Path, wanted: Option<RunnerKind>) -> Result<Runner, SifError> {
    let no_runner = |problem: String| SifError::NoRunner {
        sif: sif.to_path_buf(),
        problem,
    };
    let wanted = match wanted {
        Some(RunnerKind::Auto) => None,
        Some(kind) => Some(kind),
        None => match std::env::var(ENV_RUNNER) {
            Ok(v) if !v.trim().is_empty() && v.trim() != "auto" => {
                Some(RunnerKind::parse(&v).ok_or_else(|| {
                    no_runner(format!(
                        "`{ENV_RUNNER}` must be `apptainer`, `singularity`, `bwrap` or `auto`, got `{v}`"
                    ))
                })?)
            }
            _ => None,
        },
    };
    let apptainer = |kind: RunnerKind| {
        find_program(kind.name()).map(|program| Runner::Apptainer { kind, program })
    };
    let bwrap = || -> Result<Runner, Vec<&'static str>> {
        let bwrap = find_program("bwrap");
        let squashfuse = find_program("squashfuse");
        let fusermount = find_program("fusermount3").or_else(|| find_program("fusermount"));
        match (bwrap, squashfuse, fusermount) {
            (Some(bwrap), Some(squashfuse), Some(fusermount)) => Ok(Runner::Bwrap {
                bwrap,
                squashfuse,
                fusermount,
            }),
            (b, s, f) => Err([
                (b.is_none(), "bwrap"),
                (s.is_none(), "squashfuse"),
                (f.is_none(), "fusermount3 (or fusermount)"),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect()),
        }
    };
    match wanted {
        Some(kind @ (RunnerKind::Apptainer | RunnerKind::Singularity)) => apptainer(kind)
            .ok_or_else(|| no_runner(format!("`{kind}` is not on PATH"))),
        Some(RunnerKind::Bwrap) => bwrap().map_err(|missing| {
            no_runner(format!(
                "the bwrap runner needs {} on PATH",
                missing.join(", ")
            ))
        }),
        Some(RunnerKind::Auto) | None => apptainer(RunnerKind::Apptainer)
            .or_else(|| apptainer(RunnerKind::Singularity))
            .map_or_else(bwrap, Ok)
            .map_err(|missing| {
                no_runner(format!(
                    "neither `apptainer` nor `singularity` is on PATH, and running without them needs {} (missing)",
                    missing.join(", ")
                ))
            }),
    }
}

// ------------------------------------------------------------------------------------------
// the drop guard

/// Sends SIGKILL to process group `pgid` (ESRCH, nothing left, is fine).
fn kill_group(pgid: u32) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        if e != rustix::io::Errno::SRCH {
            log::warn!("could not kill process group {pgid}: {e}");
        }
    }
}

/// Whether `point` is a mount point of this process's mount namespace.
fn is_mounted(point: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = point.as_os_str().as_encoded_bytes();
    table.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|field| unescape_mount_field(field) == wanted)
    })
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_field(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u16, |acc, d| acc * 8 + u16::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// A squashfuse mount of a SIF's partition on a private temporary directory.
#[derive(Debug)]
struct Mount {
    /// The temporary directory holding the mount point (removed once unmounted).
    dir: Option<tempfile::TempDir>,
    point: PathBuf,
    fusermount: PathBuf,
}

impl Mount {
    /// Unmounts (retrying while the mount is busy, then detaching it lazily), waits until
    /// the mount is gone, and removes the mount point. Never fails: problems are logged.
    async fn release(mut self) {
        let started = Instant::now();
        let mut lazy = false;
        while is_mounted(&self.point) {
            if started.elapsed() > UNMOUNT_PATIENCE + Duration::from_secs(5) {
                break;
            }
            let mut cmd = Command::new(&self.fusermount);
            if started.elapsed() > UNMOUNT_PATIENCE && !lazy {
                log::warn!(
                    "`{}` is still busy after {:.0}s: detaching it lazily",
                    self.point.display(),
                    UNMOUNT_PATIENCE.as_secs_f64()
                );
                cmd.arg("-z");
                lazy = true;
            }
            let out = cmd
                .arg("-u")
                .arg(&self.point)
                .stdin(Stdio::null())
                .output()
                .await;
            if !is_mounted(&self.point) {
                break;
            }
            if let Ok(out) = &out {
                log::debug!(
                    "unmounting `{}`: {}",
                    self.point.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match self.dir.take() {
            Some(dir) if !is_mounted(&self.point) => {
                log::debug!("unmounted `{}`", self.point.display());
                if let Err(e) = dir.close() {
                    log::warn!("could not remove the mount point: {e}");
                }
            }
            Some(dir) => {
                // Never delete a directory something may still be mounted on.
                let kept = dir.keep();
                log::warn!(
                    "`{}` could not be unmounted; left in place (`fusermount -u` it, then remove `{}`)",
                    self.point.display(),
                    kept.display()
                );
            }
            None => {}
        }
    }
}

/// Everything a run leaves behind until it is cleaned up: the running process (squashfuse
/// while mounting, then the command) with its process group, and the mount. Dropped before
/// [`Session::close`] (the future was cancelled), it cleans up on the runtime.
#[derive(Debug, Default)]
struct Session {
    child: Option<Child>,
    group: Option<u32>,
    mount: Option<Mount>,
}

impl Session {
    /// Cleans up and waits for it. The cleanup runs as a tracked task of its own, so it
    /// finishes even when this future is dropped half-way (Ctrl-C while unmounting).
    async fn close(&mut self) {
        let (child, group, mount) = (self.child.take(), self.group.take(), self.mount.take());
        let (done, finished) = tokio::sync::oneshot::channel();
        crate::runtime::spawn_cleanup(async move {
            cleanup(child, group, mount).await;
            let _ = done.send(());
        });
        let _ = finished.await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.child.is_none() && self.group.is_none() && self.mount.is_none() {
            return;
        }
        let (child, group, mount) = (self.child.take(), self.group.take(), self.mount.take());
        crate::runtime::spawn_cleanup(cleanup(child, group, mount));
    }
}

/// Kills the process group, reaps the process, then unmounts: in that order, since a
/// mount with processes inside it is busy.
async fn cleanup(child: Option<Child>, group: Option<u32>, mount: Option<Mount>) {
    if let Some(pgid) = group {
        kill_group(pgid);
    }
    if let Some(mut child) = child {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if let Some(mount) = mount {
        mount.release().await;
    }
}

// ------------------------------------------------------------------------------------------
// running

/// Runs `command` inside the SIF `sif` and waits for it. The SIF is always unmounted and
/// every process the command started is killed before this returns, and also when the
/// returned future is dropped. A command that fails is an `Ok` with its exit code.
pub async fn run(sif: &Path, command: &[String], opts: &RunOptions) -> Result<RunOutput, SifError> {
    let Some(program) = command.first() else {
        return Err(SifError::BadCommand {
            sif: sif.to_path_buf(),
            problem: "the command is empty".to_owned(),
        });
    };
    if program.is_empty() {
        return Err(SifError::BadCommand {
            sif: sif.to_path_buf(),
            problem: "the program name is empty".to_owned(),
        });
    }
    for bind in &opts.binds {
        if !bind.dest.starts_with('/') || bind.dest.split('/').any(|c| c == "..") {
            return Err(SifError::BadCommand {
                sif: sif.to_path_buf(),
                problem: format!(
                    "bind destination `{}` must be an absolute path without `..`",
                    bind.dest
                ),
            });
        }
    }
    let runner = choose_runner(sif, opts.runner)?;
    let sif_owned = sif.to_path_buf();
    let inspection = tokio::task::spawn_blocking(move || SifInspection::open(&sif_owned))
        .await
        .map_err(|join| SifError::Io {
            path: sif.to_path_buf(),
            step: "read",
            source: std::io::Error::other(join),
        })??;
    log::info!(
        "running `{}` in `{}` with {}",
        shell_words(command),
        sif.display(),
        runner.kind()
    );
    let started = Instant::now();
    let mut session = Session::default();
    let outcome = match &runner {
        Runner::Apptainer { kind, program } => {
            let cmd = apptainer_command(*kind, program, sif, command, opts);
            execute(cmd, sif, program, &mut session, opts).await
        }
        Runner::Bwrap {
            bwrap,
            squashfuse,
            fusermount,
        } => match mount(&inspection.sif, sif, squashfuse, fusermount, &mut session).await {
            Ok(root) => {
                let home = image_home(&inspection, &root);
                let cmd = bwrap_command(bwrap, &root, &home, command, opts);
                execute(cmd, sif, bwrap, &mut session, opts).await
            }
            Err(e) => Err(e),
        },
    };
    session.close().await;
    let (exit_code, timed_out, tail) = outcome?;
    let out = RunOutput {
        exit_code,
        timed_out,
        tail,
        runner: runner.kind(),
        seconds: started.elapsed().as_secs_f64(),
    };
    log::info!(
        "`{program}` in `{}` ({}): exit code {}{} after {:.1}s",
        sif.display(),
        out.runner,
        out.exit_code,
        if out.timed_out {
            " (killed: time limit)"
        } else {
            ""
        },
        out.seconds
    );
    Ok(out)
}

/// The command line for logs: words quoted when they contain anything but safe characters.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `apptainer exec --cleanenv --contain …`: the same isolation the bwrap runner gives.
fn apptainer_command(
    kind: RunnerKind,
    program: &Path,
    sif: &Path,
    command: &[String],
    opts: &RunOptions,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["exec", "--cleanenv", "--contain"]);
    if opts.isolate_network {
        cmd.args(["--net", "--network", "none"]);
    }
    for bind in &opts.binds {
        let mut spec = bind.source.as_os_str().to_owned();
        spec.push(format!(":{}:ro", bind.dest));
        cmd.arg("--bind").arg(spec);
    }
    if let Some(dir) = &opts.workdir {
        cmd.args(["--pwd", dir]);
    }
    cmd.arg(sif).args(command);
    let prefix = match kind {
        RunnerKind::Singularity => "SINGULARITYENV_",
        _ => "APPTAINERENV_",
    };
    for (name, value) in &opts.env {
        cmd.env(format!("{prefix}{name}"), value);
    }
    cmd
}

/// Mounts the primary partition of `parsed` with squashfuse on a fresh private directory;
/// returns the mount point (recorded in `session` before squashfuse starts, so a cancelled
/// or failed mount is still cleaned up).
async fn mount(
    parsed: &Sif,
    sif: &Path,
    squashfuse: &Path,
    fusermount: &Path,
    session: &mut Session,
) -> Result<PathBuf, SifError> {
    let part = parsed.primary_partition();
    let fs_type = part.partition().map(|p| p.fs_type);
    if fs_type != Some(FsType::Squashfs) {
        return Err(SifError::NoRunner {
            sif: sif.to_path_buf(),
            problem: format!(
                "its primary partition is {}, not squashfs: only apptainer can run it",
                fs_type.map_or_else(|| "unknown".to_owned(), |t| t.to_string())
            ),
        });
    }
    let tmp = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("kipoi-sif-")
        .tempdir_in(&tmp)
        .map_err(SifError::io(&tmp, "create a mount point in"))?;
    let point = std::fs::canonicalize(dir.path())
        .map_err(SifError::io(dir.path(), "resolve the mount point"))?;
    session.mount = Some(Mount {
        dir: Some(dir),
        point: point.clone(),
        fusermount: fusermount.to_path_buf(),
    });
    let mut cmd = Command::new(squashfuse);
    cmd.arg("-o")
        .arg(format!("offset={}", part.offset()))
        .arg(sif)
        .arg(&point)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| SifError::Spawn {
        sif: sif.to_path_buf(),
        program: squashfuse.display().to_string(),
        source,
    })?;
    let stderr = child.stderr.take();
    session.child = Some(child);
    let mut message = Vec::new();
    if let Some(mut stderr) = stderr {
        use tokio::io::AsyncReadExt as _;
        let _ = stderr.read_to_end(&mut message).await;
    }
    let status = match session.child.as_mut() {
        Some(child) => child.wait().await,
        None => Err(std::io::Error::other("the squashfuse process went away")),
    };
    session.child = None;
    let status = status.map_err(|source| SifError::Spawn {
        sif: sif.to_path_buf(),
        program: squashfuse.display().to_string(),
        source,
    })?;
    if !status.success() || !is_mounted(&point) {
        return Err(SifError::Mount {
            sif: sif.to_path_buf(),
            mountpoint: point,
            exit_code: exit_code_of(status),
            stderr: String::from_utf8_lossy(&message).trim().to_owned(),
        });
    }
    log::debug!(
        "mounted `{}` (offset {}) on `{}`",
        sif.display(),
        part.offset(),
        point.display()
    );
    Ok(point)
}

/// The image's `$HOME` (from its config's `Env`, else `/root`) and whether it is a
/// directory of the image (only then can a tmpfs be mounted on it).
fn image_home(inspection: &SifInspection, root: &Path) -> (String, bool) {
    let home = inspection
        .oci_config
        .as_ref()
        .and_then(|c| c.get("Env"))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .find_map(|e| e.strip_prefix("HOME="))
        .filter(|h| h.starts_with('/') && !h.split('/').any(|c| c == ".."))
        .unwrap_or("/root")
        .to_owned();
    let is_dir = is_image_dir(root, &home);
    (home, is_dir)
}

/// Whether `path` (absolute, inside the image) is a real directory of the image mounted at
/// `root` (not a symlink: symlinks would be resolved against the host).
fn is_image_dir(root: &Path, path: &str) -> bool {
    let mut p = root.to_path_buf();
    for component in path.split('/').filter(|c| !c.is_empty()) {
        p.push(component);
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    true
}

fn is_image_file(root: &Path, path: &str) -> bool {
    std::fs::symlink_metadata(root.join(path.trim_start_matches('/'))).is_ok_and(|m| m.is_file())
}

/// The bwrap command line entering the mounted root (see the module docs).
fn bwrap_command(
    bwrap: &Path,
    root: &Path,
    (home, home_is_dir): &(String, bool),
    command: &[String],
    opts: &RunOptions,
) -> Command {
    let mut cmd = Command::new(bwrap);
    cmd.args(["--die-with-parent", "--unshare-pid"]);
    if opts.isolate_network {
        cmd.arg("--unshare-net");
    }
    cmd.arg("--ro-bind").arg(root).arg("/");
    cmd.args([
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--ro-bind-try",
        "/sys",
        "/sys",
    ]);
    cmd.args(["--tmpfs", "/tmp"]);
    if is_image_dir(root, "/var/tmp") {
        cmd.args(["--tmpfs", "/var/tmp"]);
    }
    let home = if *home_is_dir {
        if home != "/tmp" {
            cmd.args(["--tmpfs", home]);
        }
        home.as_str()
    } else {
        log::debug!("`{home}` is not a directory of the image: HOME=/tmp");
        "/tmp"
    };
    if !opts.isolate_network {
        for file in ["/etc/resolv.conf", "/etc/hosts"] {
            if is_image_file(root, file) {
                cmd.args(["--ro-bind-try", file, file]);
            }
        }
    }
    for bind in &opts.binds {
        cmd.arg("--ro-bind").arg(&bind.source).arg(&bind.dest);
    }
    cmd.args(["--clearenv", "--setenv", "PATH", DEFAULT_PATH]);
    cmd.args(["--setenv", "HOME", home]);
    for (name, value) in &opts.env {
        cmd.arg("--setenv").arg(name).arg(value);
    }
    cmd.arg("--chdir")
        .arg(opts.workdir.as_deref().unwrap_or(home));
    cmd.args(["/bin/sh", "-c", ACTION_SCRIPT, "kipoi-sif"]);
    cmd.args(command);
    cmd
}

fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Starts `cmd` in its own process group (recorded in `session`), collects its output,
/// enforces the time limit; returns (exit code, timed out, output tail).
async fn execute(
    mut cmd: Command,
    sif: &Path,
    program: &Path,
    session: &mut Session,
    opts: &RunOptions,
) -> Result<(i32, bool, String), SifError> {
    cmd.process_group(0)
        .stdin(Stdio::null())
        .kill_on_drop(false);
    match opts.output {
        Output::Capture => cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
        Output::Inherit => cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit()),
    };
    let mut child = cmd.spawn().map_err(|source| SifError::Spawn {
        sif: sif.to_path_buf(),
        program: program.display().to_string(),
        source,
    })?;
    session.group = child.id();
    let tail = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| tokio::spawn(collect_lines(stream, Arc::clone(&tail))))
    .collect();
    session.child = Some(child);
    let Some(child) = session.child.as_mut() else {
        unreachable!("the child was just stored");
    };
    let waited = match opts.timeout {
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status.map(|s| (exit_code_of(s), false)),
            Err(_) => {
                if let Some(pgid) = session.group {
                    kill_group(pgid);
                }
                child.wait().await.map(|_| (-1, true))
            }
        },
        None => child.wait().await.map(|s| (exit_code_of(s), false)),
    };
    session.child = None;
    // Whatever the command left running goes with its group (bwrap's PID namespace
    // already took everything inside it).
    if let Some(pgid) = session.group.take() {
        kill_group(pgid);
    }
    let (code, timed_out) = waited.map_err(|source| SifError::Spawn {
        sif: sif.to_path_buf(),
        program: program.display().to_string(),
        source,
    })?;
    let drained = futures_util::stream::iter(readers).for_each(|reader| async {
        if tokio::time::timeout(DRAIN_LIMIT, reader).await.is_err() {
            log::debug!("output of the command still open after it ended; not waiting");
        }
    });
    drained.await;
    let mut lines = tail
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |t| t.clone());
    if timed_out {
        push_tail(&mut lines, "(killed: the command exceeded its time limit)");
    }
    Ok((code, timed_out, lines.join("\n")))
}

/// Reads `stream` line by line into `tail` (ANSI colours removed; of a line redrawn with
/// `\r`, the last state), logging each at debug level.
async fn collect_lines(stream: Box<dyn AsyncRead + Send + Unpin>, tail: Arc<Mutex<Vec<String>>>) {
    let mut reader = tokio::io::BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let text = strip_ansi(text.trim_end_matches(['\n', '\r']));
                let line = text.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
                log::debug!("[sif] {line}");
                if let Ok(mut t) = tail.lock() {
                    push_tail(&mut t, line);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// model tests

/// Runs `kipoi test MODEL` inside the SIF `sif`, as the Docker path does in a container:
/// with `opts.zoo_dir`, against exactly that checkout (bound read-only, mirrored into a
/// tmpfs with `cp -as`, `--source=dir`) and without network unless `opts.network`;
/// without it, upstream's `--source=kipoi`. Extra arguments default to the per-model table
/// ([`model_test_args`]). A failing test is a result with `passed == false` (see
/// [`check`]); a SIF that cannot be run is an error.
pub async fn test_model(
    sif: &Path,
    model: &str,
    opts: &TestOptions,
) -> Result<ModelTestResult, SifError> {
    test_model_with(sif, model, opts, None).await
}

/// [`test_model`] with an explicit runner (`None`: [`ENV_RUNNER`] or the first available).
pub async fn test_model_with(
    sif: &Path,
    model: &str,
    opts: &TestOptions,
    runner: Option<RunnerKind>,
) -> Result<ModelTestResult, SifError> {
    crate::names::validate_model_name(model).map_err(|e| SifError::ModelTest {
        model: model.escape_debug().to_string(),
        sif: sif.to_path_buf(),
        exit_code: -1,
        tail: e.to_string(),
    })?;
    let extra = opts
        .extra_args
        .clone()
        .unwrap_or_else(|| model_test_args(model));
    let mut run_opts = RunOptions {
        timeout: opts.timeout,
        runner,
        ..RunOptions::default()
    };
    let mut command: Vec<String>;
    if let Some(zoo) = &opts.zoo_dir {
        let zoo =
            std::fs::canonicalize(zoo).map_err(SifError::io(zoo, "resolve the zoo checkout"))?;
        run_opts.binds.push(Bind {
            source: zoo,
            dest: ZOO_BIND_RO.to_owned(),
        });
        run_opts.isolate_network = !opts.network;
        // Python must not try to write bytecode next to the read-only sources.
        run_opts
            .env
            .push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        let script = format!(
            "mkdir -p {ZOO_DIR} && cp -as {ZOO_BIND_RO}/. {ZOO_DIR}/ && cd {ZOO_DIR} && exec kipoi test \"$@\""
        );
        command = vec!["sh".into(), "-c".into(), script, "sh".into(), model.into()];
        command.push("--source=dir".into());
    } else {
        command = vec![
            "kipoi".into(),
            "test".into(),
            model.into(),
            "--source=kipoi".into(),
        ];
    }
    command.extend(extra);
    let out = run(sif, &command, &run_opts).await?;
    let result = ModelTestResult {
        model: model.to_owned(),
        image: sif.display().to_string(),
        exit_code: i64::from(out.exit_code),
        passed: out.exit_code == 0 && !out.timed_out,
        log_tail: out.tail,
        seconds: out.seconds,
    };
    log::info!(
        "test of `{model}` in `{}` ({}): {} in {:.1} s",
        sif.display(),
        out.runner,
        if result.passed { "passed" } else { "FAILED" },
        result.seconds
    );
    Ok(result)
}

/// `Err(SifError::ModelTest)` (with the log tail) for a failed test.
pub fn check(result: ModelTestResult) -> Result<ModelTestResult, SifError> {
    if result.passed {
        Ok(result)
    } else {
        Err(SifError::ModelTest {
            sif: PathBuf::from(&result.image),
            model: result.model,
            exit_code: result.exit_code,
            tail: result.log_tail,
        })
    }
}

/// Tests `models` in the SIF `sif`, at most `concurrency` at a time (each run mounts the
/// SIF on its own); results in input order.
pub async fn test_models(
    sif: &Path,
    models: &[String],
    opts: &TestOptions,
    concurrency: usize,
) -> Vec<Result<ModelTestResult, SifError>> {
    // The futures are made up front (not in a `map` closure) so the returned future is
    // `Send` for callers that spawn it.
    let tests: Vec<_> = models.iter().map(|m| test_model(sif, m, opts)).collect();
    futures_util::stream::iter(tests)
        .buffered(concurrency.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_names_parse() {
        assert_eq!(RunnerKind::parse("Apptainer"), Some(RunnerKind::Apptainer));
        assert_eq!(RunnerKind::parse(" bwrap "), Some(RunnerKind::Bwrap));
        assert_eq!(RunnerKind::parse("docker"), None);
    }

    #[test]
    fn mountinfo_fields_unescape() {
        assert_eq!(unescape_mount_field(r"/tmp/a\040b"), b"/tmp/a b");
        assert_eq!(unescape_mount_field(r"/x\134y"), b"/x\\y");
        assert_eq!(unescape_mount_field(r"/plain"), b"/plain");
        assert_eq!(unescape_mount_field(r"/end\04"), br"/end\04");
    }

    #[test]
    fn command_lines_are_quoted_for_logs() {
        let words = ["sh", "-c", "echo 'hi' $X", ""].map(String::from);
        assert_eq!(shell_words(&words), r#"sh -c 'echo '\''hi'\'' $X' ''"#);
    }

    #[test]
    fn apptainer_gets_the_same_isolation() {
        let opts = RunOptions {
            binds: vec![Bind {
                source: "/zoo".into(),
                dest: ZOO_BIND_RO.into(),
            }],
            isolate_network: true,
            workdir: Some("/tmp".into()),
            env: vec![("A".into(), "1".into())],
            ..RunOptions::default()
        };
        let cmd = apptainer_command(
            RunnerKind::Singularity,
            Path::new("/usr/bin/singularity"),
            Path::new("/x.sif"),
            &["kipoi".into(), "test".into()],
            &opts,
        );
        let std = cmd.as_std();
        let args: Vec<_> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "exec",
                "--cleanenv",
                "--contain",
                "--net",
                "--network",
                "none",
                "--bind",
                "/zoo:/tmp/kipoi-zoo-ro:ro",
                "--pwd",
                "/tmp",
                "/x.sif",
                "kipoi",
                "test"
            ]
        );
        let envs: Vec<_> = std
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            envs,
            [("SINGULARITYENV_A".to_owned(), Some("1".to_owned()))]
        );
    }

    #[test]
    fn a_wanted_runner_that_is_missing_is_named() {
        let e = choose_runner(Path::new("/x.sif"), Some(RunnerKind::Apptainer));
        if find_program("apptainer").is_none() {
            let text = e.unwrap_err().to_string();
            assert!(text.contains("`apptainer` is not on PATH"), "{text}");
            assert!(text.contains("/x.sif"), "{text}");
        }
    }

    /// The bwrap runner on the Singularity 3.5 busybox fixture, one test at a time (they
    /// compare this process's mounts before and after).
    mod bwrap {
        use super::*;
        use crate::sif::{have_tool, shared_dir};

        static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

        fn fixture() -> Option<PathBuf> {
            let ok = ["bwrap", "squashfuse", "fusermount"]
                .iter()
                .all(|t| have_tool(t));
            ok.then(|| shared_dir().join("fixtures/sif/busybox_1.34.1.sif"))
        }

        fn our_mounts() -> Vec<String> {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.contains("/kipoi-sif-"))
                .map(str::to_owned)
                .collect()
        }

        fn opts() -> RunOptions {
            RunOptions {
                runner: Some(RunnerKind::Bwrap),
                ..RunOptions::default()
            }
        }

        fn sh(script: &str) -> Vec<String> {
            ["sh", "-c", script].map(String::from).to_vec()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn runs_in_a_read_only_root_with_private_tmp_and_home() {
            let Some(sif) = fixture() else { return };
            let _serial = SERIAL.lock().await;
            let before = our_mounts();
            let out = run(
                &sif,
                &sh("echo hello; echo home=$HOME; touch /tmp/t && echo tmp-ok; \
                     touch $HOME/h && echo home-ok; touch /etc/x 2>/dev/null || echo ro-ok; \
                     echo path=$PATH; echo var=$ZOO_VAR; exit 3"),
                &RunOptions {
                    env: vec![("ZOO_VAR".into(), "v 1".into())],
                    ..opts()
                },
            )
            .await
            .unwrap();
            assert_eq!(out.exit_code, 3, "{}", out.tail);
            assert!(!out.timed_out);
            assert_eq!(out.runner, RunnerKind::Bwrap);
            let lines: Vec<&str> = out.tail.lines().collect();
            assert_eq!(
                lines,
                [
                    "hello",
                    "home=/root",
                    "tmp-ok",
                    "home-ok",
                    "ro-ok",
                    "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "var=v 1"
                ],
                "{}",
                out.tail
            );
            assert_eq!(our_mounts(), before);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn binds_are_read_only_and_the_network_can_be_cut() {
            let Some(sif) = fixture() else { return };
            let _serial = SERIAL.lock().await;
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("f"), "content").unwrap();
            let out = run(
                &sif,
                &sh(
                    "cat /tmp/in/f; echo; touch /tmp/in/g 2>/dev/null || echo bind-ro; \
                     awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/net/dev",
                ),
                &RunOptions {
                    binds: vec![Bind {
                        source: dir.path().to_path_buf(),
                        dest: "/tmp/in".into(),
                    }],
                    isolate_network: true,
                    workdir: Some("/tmp/in".into()),
                    ..opts()
                },
            )
            .await
            .unwrap();
            assert_eq!(out.exit_code, 0, "{}", out.tail);
            assert_eq!(out.tail, "content\nbind-ro\nlo", "{}", out.tail);
            assert!(!dir.path().join("g").exists());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_time_limit_kills_the_command_and_unmounts() {
            let Some(sif) = fixture() else { return };
            let _serial = SERIAL.lock().await;
            let before = our_mounts();
            let out = run(
                &sif,
                &sh("echo started; sleep 60 & sleep 60"),
                &RunOptions {
                    timeout: Some(Duration::from_millis(1500)),
                    ..opts()
                },
            )
            .await
            .unwrap();
            assert!(out.timed_out);
            assert_eq!(out.exit_code, -1);
            assert!(out.seconds < 10.0, "{}", out.seconds);
            assert!(out.tail.starts_with("started\n(killed:"), "{}", out.tail);
            assert_eq!(our_mounts(), before);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_dropped_run_is_killed_and_unmounted() {
            let Some(sif) = fixture() else { return };
            let _serial = SERIAL.lock().await;
            let before = our_mounts();
            let command = sh("sleep 60");
            let options = opts();
            let running = run(&sif, &command, &options);
            let cut = tokio::time::timeout(Duration::from_millis(1500), running).await;
            assert!(cut.is_err(), "the command should still be running");
            assert_ne!(our_mounts(), before, "mounted while running");
            assert!(crate::runtime::wait_for_cleanups(Duration::from_secs(20)).await);
            assert_eq!(our_mounts(), before);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_missing_program_is_exit_code_127() {
            let Some(sif) = fixture() else { return };
            let _serial = SERIAL.lock().await;
            let out = run(&sif, &["no-such-program".to_owned()], &opts())
                .await
                .unwrap();
            assert_eq!(out.exit_code, 127, "{}", out.tail);
            assert!(out.tail.contains("no-such-program"), "{}", out.tail);
        }
    }

    #[test]
    fn a_failed_test_becomes_an_error_with_the_tail() {
        let r = ModelTestResult {
            model: "M".into(),
            image: "/s.sif".into(),
            exit_code: 1,
            passed: false,
            log_tail: "boom".into(),
            seconds: 0.0,
        };
        let text = check(r).unwrap_err().to_string();
        assert!(
            text.contains("model `M` failed its test in `/s.sif` (exit code 1)"),
            "{text}"
        );
        assert!(text.ends_with("boom"), "{text}");
    }
}
