//! The one error type of the SIF path. Every message names its subject in backticks;
//! causes are attached with `#[source]` only (the chain renderer prints them).

use std::path::PathBuf;

/// Why reading, flattening, writing or converting an image failed.
#[derive(Debug, thiserror::Error)]
pub enum SifError {
    /// The file is not a SIF, or its header or descriptor table is inconsistent.
    #[error("`{}` is not a valid SIF: {problem}", file.display())]
    InvalidSif { file: PathBuf, problem: String },

    /// A file could not be opened, read, written or synced.
    #[error("could not {step} `{}`", path.display())]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The `docker save` archive lacks what a conversion needs (manifest, config, layer).
    #[error("image archive `{}`: {problem}", archive.display())]
    InvalidArchive { archive: PathBuf, problem: String },

    /// A JSON document of the archive (manifest, index, config) does not parse.
    #[error("image archive `{}`: `{member}` is not valid JSON of the expected shape", archive.display())]
    ArchiveJson {
        archive: PathBuf,
        member: String,
        #[source]
        source: serde_json::Error,
    },

    /// A layer tar is malformed or holds an entry that cannot be applied.
    #[error("layer `{layer}`: {problem}")]
    InvalidLayer { layer: String, problem: String },

    /// A layer entry cannot be applied to the tree.
    #[error("layer `{layer}`: entry `{entry}`: {problem}")]
    LayerEntry {
        layer: String,
        entry: String,
        problem: String,
    },

    /// The tree exceeds a squashfs limit (ids, name length, sizes).
    #[error("the root filesystem cannot be written as squashfs: {problem}")]
    Squashfs { problem: String },

    /// The SIF could not be written atomically into place.
    #[error("could not write the SIF `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: crate::fsutil::AtomicWriteError,
    },

    /// The Engine could not export the image.
    #[error("could not export image `{image}` from the Docker Engine")]
    Export {
        image: String,
        #[source]
        source: crate::docker::DockerError,
    },

    /// The conversion was cancelled (its temporary files are removed).
    #[error("the conversion of `{image}` was cancelled")]
    Cancelled { image: String },

    /// Neither apptainer/singularity nor the tools of the fallback runner are available.
    #[error("cannot run `{}`: {problem}", sif.display())]
    NoRunner { sif: PathBuf, problem: String },

    /// The SIF's partition could not be mounted (squashfuse failed).
    #[error("could not mount `{}` on `{}` with squashfuse (exit code {exit_code}): {stderr}", sif.display(), mountpoint.display())]
    Mount {
        sif: PathBuf,
        mountpoint: PathBuf,
        exit_code: i32,
        stderr: String,
    },

    /// A program (the runner, squashfuse) could not be started.
    #[error("could not start `{program}` to run `{}`", sif.display())]
    Spawn {
        sif: PathBuf,
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// The command to run inside the SIF is empty or not usable.
    #[error("cannot run in `{}`: {problem}", sif.display())]
    BadCommand { sif: PathBuf, problem: String },

    /// `kipoi test` failed (or could not be started) for a model in a SIF.
    #[error("model `{model}` failed its test in `{}` (exit code {exit_code})\n--- last log lines ---\n{tail}", sif.display())]
    ModelTest {
        model: String,
        sif: PathBuf,
        exit_code: i64,
        tail: String,
    },

    /// The blocking conversion task panicked or was aborted.
    #[error("the conversion of `{image}` stopped unexpectedly")]
    Task {
        image: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl SifError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        step: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, step, source }
    }
}
