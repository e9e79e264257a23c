//! The one atomic-file helper: every file the engine writes for users (index files,
//! downloads, image exports, SIFs) is written to a temporary file in the target's directory,
//! flushed to disk, renamed over the target, and the directory is flushed, so a crash or an
//! error at any step leaves the previous file intact and no partial file behind.
//!
//! - [`AtomicFile`]: a file being written (streamed); [`AtomicFile::commit`] makes it appear.
//!   Dropped without `commit`, it disappears.
//! - [`write_atomic`]: one file from bytes.
//! - [`write_atomic_all`]: several files from bytes, all temporary files written and flushed
//!   before any is renamed (the index's three files change together or not at all, as far
//!   as a crash before the renames goes).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why an atomic write failed; names the file and the step.
#[derive(Debug, thiserror::Error)]
#[error("could not write `{}` ({step})", path.display())]
pub struct AtomicWriteError {
    pub path: PathBuf,
    pub step: &'static str,
    #[source]
    pub source: std::io::Error,
}

fn err<'a>(
    path: &'a Path,
    step: &'static str,
) -> impl FnOnce(std::io::Error) -> AtomicWriteError + 'a {
    move |source| AtomicWriteError {
        path: path.to_path_buf(),
        step,
        source,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A file being written atomically to `target`.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Starts writing `target`: a hidden temporary file beside it. The file will have the
    /// permissions of the file it replaces, else `mode` (e.g. 0o644, 0o755 for a SIF).
    pub fn create(target: &Path, mode: u32) -> Result<Self, AtomicWriteError> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = parent_dir(target);
        let file_name = target
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(err(target, "creating a temporary file beside it"))?;
        let permissions = match std::fs::metadata(target) {
            Ok(meta) => meta.permissions(),
            Err(_) => std::fs::Permissions::from_mode(mode),
        };
        tmp.as_file()
            .set_permissions(permissions)
            .map_err(err(target, "setting permissions"))?;
        Ok(Self {
            target: target.to_path_buf(),
            tmp,
        })
    }

    /// Gives the file exactly `mode`, whatever the file it replaces had (a SIF is 0755).
    pub fn set_mode(&mut self, mode: u32) -> Result<(), AtomicWriteError> {
        use std::os::unix::fs::PermissionsExt as _;
        self.tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err(&self.target, "setting permissions"))
    }

    /// The file to write into.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Where it will appear.
    #[must_use]
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        self.tmp
            .write_all(bytes)
            .map_err(err(&self.target, "writing the temporary file"))
    }

    /// Flushes the data to disk (first half of [`Self::commit`]).
    fn sync(&mut self) -> Result<(), AtomicWriteError> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(err(&self.target, "flushing the temporary file to disk"))
    }

    /// Renames the (flushed) temporary file over the target (second half).
    fn rename(self) -> Result<PathBuf, AtomicWriteError> {
        let target = self.target;
        self.tmp
            .persist(&target)
            .map_err(|e| err(&target, "renaming the temporary file over it")(e.error))?;
        Ok(target)
    }

    /// Flushes, renames over the target and flushes the directory.
    pub fn commit(mut self) -> Result<(), AtomicWriteError> {
        self.sync()?;
        let target = self.rename()?;
        sync_dir(&parent_dir(&target));
        Ok(())
    }
}

/// Makes a rename in `dir` durable (best effort: some file systems refuse it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Replaces `path` with `bytes` atomically. The file keeps the permissions of the file it
/// replaces (0644 for a new file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic_all(&[(path, bytes)])
}

/// Replaces every `(path, bytes)` atomically: all temporary files are written and flushed
/// first, then renamed one after the other, then the directories flushed. A failure before
/// the renames changes nothing.
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> Result<(), AtomicWriteError> {
    let mut pending = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let mut file = AtomicFile::create(path, 0o644)?;
        file.write_all(bytes)?;
        file.sync()?;
        pending.push(file);
    }
    let mut dirs = std::collections::BTreeSet::new();
    for file in pending {
        dirs.insert(parent_dir(file.target()));
        file.rename()?;
    }
    for dir in dirs {
        sync_dir(&dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(names(dir.path()), vec!["a.json"]);
    }

    #[test]
    fn missing_directory_names_the_file() {
        let e = write_atomic(Path::new("/nonexistent-dir-kc/x.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir-kc/x.json"), "{e}");
    }

    #[test]
    fn a_failing_member_changes_none_of_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, b"old").unwrap();
        let missing = dir.path().join("no/such/b.json");
        let e = write_atomic_all(&[(&a, b"new"), (&missing, b"x")]).unwrap_err();
        assert!(e.to_string().contains("b.json"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["a.json"]);
    }

    #[test]
    fn streamed_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sif");
        let mut f = AtomicFile::create(&p, 0o755).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!p.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let mut f = AtomicFile::create(&dir.path().join("y"), 0o644).unwrap();
        f.write_all(b"abc").unwrap();
        drop(f);
        assert_eq!(names(dir.path()), vec!["x.sif"]);
    }
}
