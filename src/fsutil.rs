//! Filesystem helpers shared by every module that writes state: atomic replace.

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
    let err = |step: &'static str| {
        move |source: std::io::Error| AtomicWriteError {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(err("creating a temporary file beside it"))?;
    tmp.write_all(bytes)
        .map_err(err("writing the temporary file"))?;
    let permissions = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::Permissions::from_mode(0o644)
        }
    };
    tmp.as_file()
        .set_permissions(permissions)
        .map_err(err("setting permissions"))?;
    tmp.as_file()
        .sync_all()
        .map_err(err("flushing the temporary file to disk"))?;
    tmp.persist(path)
        .map_err(|e| err("renaming the temporary file over it")(e.error))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
    fn missing_directory_names_the_file() {
        let e = write_atomic(Path::new("/nonexistent-dir-kc/x.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir-kc/x.json"), "{e}");
    }
}
