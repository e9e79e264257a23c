//! Filesystem helpers shared by every module that writes state: atomic replace (whole
//! buffers with [`write_atomic`], streamed files with [`AtomicFile`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why an atomic write failed; names the file and the step.
#[derive(Debug, thiserror::Error)]
#[error("could not write `{}` ({step}): {source}", path.display())]
pub struct AtomicWriteError {
    pub path: PathBuf,
    pub step: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same directory is
/// written, fsynced and renamed over the target, then the directory is fsynced.
/// A failure at any step leaves the previous file untouched (and no temporary behind).
/// The file keeps the permissions of the file it replaces (0644 for a new file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let mut file = AtomicFile::create(path)?;
    file.as_file_mut()
        .write_all(bytes)
        .map_err(file.err("writing the temporary file"))?;
    file.commit(None)
}

/// A file written in place of `path` and renamed over it only by [`AtomicFile::commit`]
/// (the streaming form of [`write_atomic`]). Dropping it uncommitted (an error, a
/// cancelled task) removes the temporary file and leaves `path` as it was.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    dir: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary file beside `path`.
    pub fn create(path: &Path) -> Result<Self, AtomicWriteError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|source| AtomicWriteError {
                path: path.to_path_buf(),
                step: "creating a temporary file beside it",
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            dir,
            tmp,
        })
    }

    /// The temporary file, to write (and seek) in.
    pub fn as_file_mut(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// An error about `step` on this file.
    pub fn err(&self, step: &'static str) -> impl FnOnce(std::io::Error) -> AtomicWriteError {
        let path = self.path.clone();
        move |source| AtomicWriteError { path, step, source }
    }

    /// Sets the permissions (`mode`, else those of the file replaced, else 0644), fsyncs,
    /// renames over the target and fsyncs the directory.
    pub fn commit(self, mode: Option<u32>) -> Result<(), AtomicWriteError> {
        use std::os::unix::fs::PermissionsExt as _;
        let permissions = match (mode, std::fs::metadata(&self.path)) {
            (Some(m), _) => std::fs::Permissions::from_mode(m),
            (None, Ok(meta)) => meta.permissions(),
            (None, Err(_)) => std::fs::Permissions::from_mode(0o644),
        };
        self.tmp
            .as_file()
            .set_permissions(permissions)
            .map_err(self.err("setting permissions"))?;
        self.tmp
            .as_file()
            .sync_all()
            .map_err(self.err("flushing the temporary file to disk"))?;
        let path = self.path.clone();
        self.tmp.persist(&path).map_err(|e| AtomicWriteError {
            path: path.clone(),
            step: "renaming the temporary file over it",
            source: e.error,
        })?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn streamed_file_appears_only_on_commit_with_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sif");
        let mut f = AtomicFile::create(&p).unwrap();
        f.as_file_mut().write_all(b"data").unwrap();
        assert!(!p.exists());
        f.commit(Some(0o755)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Dropped uncommitted: no temporary, no target.
        let q = dir.path().join("y.sif");
        let mut g = AtomicFile::create(&q).unwrap();
        g.as_file_mut().write_all(b"partial").unwrap();
        drop(g);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn missing_directory_names_the_file() {
        let e = write_atomic(Path::new("/nonexistent-dir-kc/x.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir-kc/x.json"), "{e}");
    }
}
