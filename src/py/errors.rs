//! The one place where engine errors become Python exceptions.
//!
//! The exception classes live in `kipoi_containers/errors.py` (so they can inherit from
//! both `KipoiContainersError` and a standard base such as `ValueError` or `OSError`);
//! this module picks the class by error kind and keeps the full cause chain in the message.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::docker::DockerError;
use crate::dockerfile::DockerfileError;
use crate::index::IndexError;
use crate::zoo::ZooError;

pub(crate) use crate::errchain::chain;

/// Builds `kipoi_containers.errors.<class_name>(message)` and sets `attrs` on it.
pub(crate) fn raise_with(class_name: &str, message: String, attrs: &[(&str, Attr)]) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("kipoi_containers.errors")
            .and_then(|m| m.getattr(class_name));
        let build = |class: Bound<'_, PyAny>| -> PyResult<PyErr> {
            let instance = class.call1((message.clone(),))?;
            for (name, value) in attrs {
                match value {
                    Attr::Str(s) => instance.setattr(*name, s)?,
                    Attr::Int(i) => instance.setattr(*name, i)?,
                    Attr::Signed(i) => instance.setattr(*name, i)?,
                }
            }
            Ok(PyErr::from_value(instance))
        };
        match class.and_then(build) {
            Ok(err) => err,
            Err(_) => PyRuntimeError::new_err(message),
        }
    })
}

/// An attribute value set on a raised exception.
pub(crate) enum Attr {
    Str(String),
    Int(usize),
    Signed(i64),
}

pub(crate) fn raise(class_name: &str, message: String) -> PyErr {
    raise_with(class_name, message, &[])
}

impl From<IndexError> for PyErr {
    fn from(err: IndexError) -> Self {
        let message = chain(&err);
        match &err {
            IndexError::Format {
                file, line, column, ..
            } => raise_with(
                "IndexFormatError",
                message,
                &[
                    ("file", Attr::Str(file.clone())),
                    ("line", Attr::Int(*line)),
                    ("column", Attr::Int(*column)),
                ],
            ),
            IndexError::Read { .. } | IndexError::Write(_) => raise("IndexIOError", message),
        }
    }
}

impl From<crate::fsutil::AtomicWriteError> for PyErr {
    fn from(err: crate::fsutil::AtomicWriteError) -> Self {
        raise("FileIOError", chain(&err))
    }
}

impl From<ZooError> for PyErr {
    fn from(err: ZooError) -> Self {
        let class = match &err {
            ZooError::GitHub { status, .. } if *status == 401 || *status == 403 => {
                "GitHubAuthError"
            }
            ZooError::MissingToken { .. } => "GitHubAuthError",
            ZooError::GitHub { .. }
            | ZooError::GitHubTransport { .. }
            | ZooError::GitHubSetup { .. }
            | ZooError::GitHubShape { .. } => "GitHubError",
            ZooError::WriteConflict { .. } => "WriteConflictError",
            ZooError::UnknownRevision { .. } => "UnknownRevisionError",
            _ => "ZooError",
        };
        raise(class, chain(&err))
    }
}

/// The exception class of a Zenodo error.
fn zenodo_class(err: &crate::zenodo::ZenodoError) -> &'static str {
    use crate::zenodo::ZenodoErrorKind;
    match &err.kind {
        ZenodoErrorKind::ChecksumMismatch { .. }
        | ZenodoErrorKind::Local(crate::transfer::TransferError::DownloadChecksum { .. }) => {
            "ChecksumMismatchError"
        }
        _ if err.is_auth() => "ZenodoAuthError",
        _ => "ZenodoError",
    }
}

impl From<crate::zenodo::publish::PublishError> for PyErr {
    fn from(err: crate::zenodo::publish::PublishError) -> Self {
        use crate::zenodo::publish::PublishErrorKind;
        let message = chain(&err);
        let zenodo = err.zenodo();
        let class = match err.kind.as_ref() {
            PublishErrorKind::InvalidFileName(_) => "InvalidNameError",
            PublishErrorKind::ChecksumMismatch { .. } => "ChecksumMismatchError",
            PublishErrorKind::Zenodo(e) => zenodo_class(e),
            PublishErrorKind::Local(_) => "FileIOError",
            _ => "ZenodoError",
        };
        let status = zenodo
            .and_then(crate::zenodo::ZenodoError::status)
            .unwrap_or(0);
        let step = zenodo.map_or_else(|| err.to_string(), |e| e.step.clone());
        let draft = err.draft.remaining_draft().unwrap_or(0);
        raise_with(
            class,
            message,
            &[
                ("status", Attr::Int(usize::from(status))),
                ("step", Attr::Str(step)),
                (
                    "draft_id",
                    Attr::Int(usize::try_from(draft).unwrap_or(usize::MAX)),
                ),
            ],
        )
    }
}

impl From<crate::zenodo::ZenodoError> for PyErr {
    fn from(err: crate::zenodo::ZenodoError) -> Self {
        let message = chain(&err);
        let status = err.status().unwrap_or(0);
        let class = zenodo_class(&err);
        raise_with(
            class,
            message,
            &[
                ("status", Attr::Int(usize::from(status))),
                ("step", Attr::Str(err.step.clone())),
            ],
        )
    }
}

impl From<DockerError> for PyErr {
    fn from(err: DockerError) -> Self {
        let class = match &err {
            DockerError::Unreachable { .. } => "DockerUnreachableError",
            DockerError::Build { .. } => "DockerBuildError",
            DockerError::ModelTest { .. } => "ModelTestError",
            DockerError::PushAuth { .. } => "DockerAuthError",
            DockerError::Push { .. } => "DockerPushError",
            DockerError::Pull { .. } | DockerError::Registry(_) => "DockerError",
            DockerError::ImageNotFound(_) => "ImageNotFoundError",
            DockerError::Api { .. } | DockerError::Io { .. } | DockerError::Local(_) => {
                "DockerError"
            }
        };
        raise(class, chain(&err))
    }
}

impl From<DockerfileError> for PyErr {
    fn from(err: DockerfileError) -> Self {
        raise("DockerfileError", chain(&err))
    }
}

impl From<crate::recipes::RecipeError> for PyErr {
    fn from(err: crate::recipes::RecipeError) -> Self {
        use crate::recipes::RecipeError;
        let class = match &err {
            RecipeError::SharedImage { .. } => "SharedImageError",
            RecipeError::ReadEnvFiles { .. }
            | RecipeError::ReadEnvFile { .. }
            | RecipeError::CreateDir { .. }
            | RecipeError::Write(_) => "FileIOError",
            _ => "RecipeError",
        };
        raise(class, chain(&err))
    }
}

impl From<crate::sif::SifError> for PyErr {
    fn from(err: crate::sif::SifError) -> Self {
        let message = chain(&err);
        match err {
            crate::sif::SifError::ModelTest {
                model,
                sif,
                exit_code,
                tail,
            } => raise_with(
                "SifTestError",
                message,
                &[
                    ("model", Attr::Str(model)),
                    ("sif", Attr::Str(sif.display().to_string())),
                    ("exit_code", Attr::Signed(exit_code)),
                    ("log_tail", Attr::Str(tail)),
                ],
            ),
            _ => raise("SifError", message),
        }
    }
}

impl From<crate::transfer::DownloadError> for PyErr {
    fn from(err: crate::transfer::DownloadError) -> Self {
        use crate::transfer::{DownloadError, TransferError};
        let message = chain(&err);
        match &err {
            DownloadError::Local(TransferError::DownloadChecksum { .. }) => {
                raise("ChecksumMismatchError", message)
            }
            DownloadError::Local(_) => raise("FileIOError", message),
            DownloadError::Status { status, .. } => raise_with(
                "DownloadError",
                message,
                &[("status", Attr::Int(usize::from(*status)))],
            ),
            _ => raise("DownloadError", message),
        }
    }
}

impl From<crate::sync::SyncError> for PyErr {
    fn from(err: crate::sync::SyncError) -> Self {
        use crate::sync::SyncError;
        match err {
            SyncError::Zoo(e) => e.into(),
            SyncError::Index(e) => e.into(),
            SyncError::Docker(e) => e.into(),
            SyncError::Zenodo(e) => e.into(),
            SyncError::Recipe(e) => e.into(),
            SyncError::MissingSecrets(_) => raise("MissingSecretsError", chain(&err)),
            SyncError::ReadHash { .. } | SyncError::Write(_) => raise("IndexIOError", chain(&err)),
            _ => raise("SyncError", chain(&err)),
        }
    }
}
