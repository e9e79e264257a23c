//! Publishing a SIF on Zenodo: as a new record, or as a new version of the record an index
//! entry points at.
//!
//! ```text
//!  new record   create draft ───────────────┐
//!  new version  newversion (or the open  ───┤
//!               draft of that record)       ▼
//!  resume       the journal's draft ──▶ [delete the file of the same name] ─▶ upload (md5 in
//!               the same pass, checked) ─▶ metadata ─▶ publish ─▶ read back ─▶ index entry
//! ```
//!
//! - **Nothing is left behind on failure.** From the moment a draft exists until it is
//!   published, a guard owns it: an error at any later step deletes the draft before the
//!   error is returned, and so does cancellation (the future dropped by Ctrl-C or an aborted
//!   task: the guard's `Drop` spawns the deletion with [`crate::runtime::spawn_cleanup`]).
//!   When the deletion itself fails, that is logged and named in the error ("delete it by
//!   hand"); it never replaces the original error.
//! - **Observable and resumable.** Each completed step is reported to a [`PublishReport`]
//!   (draft created, file uploaded, published, draft deleted), so a journal can record it.
//!   [`PublishOptions::resume_draft`] continues from a draft a killed run left: no second
//!   draft is created, and a file already uploaded with the local file's md5 is kept instead
//!   of being sent again. A resumed draft that was published meanwhile is read back (same
//!   md5: done) or versioned (other bytes).
//! - **Checked.** The file name is validated as one safe path segment before any request;
//!   the published file is looked up by name and its md5 compared with what was uploaded.
//!
//! Only the file with the uploaded file's name is removed from a new version: the record's
//! other files stay.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::metadata::RecordText;
use super::{normalize_md5, DepositFile, Deposition, Uploaded, ZenodoClient, ZenodoError};
use crate::index::SingularityEntry;
use crate::names::{validate_file_name, InvalidName};
use crate::transfer::{self, ProgressRef, TransferError};

/// File extension of a SIF (the index entry's `name` is the file name without it).
const SIF_EXTENSION: &str = ".sif";

// ------------------------------------------------------------------------------ the API used

/// The deposition operations the workflow uses. [`ZenodoClient`] is the implementation;
/// the trait exists so the workflow's decisions can be unit-tested against an in-memory
/// fake (the HTTP behaviour is tested against the Zenodo emulator).
pub trait DepositApi: Clone + Send + Sync + 'static {
    /// The Zenodo root without a trailing `/` (index entry URLs are built on it).
    fn base(&self) -> String;
    /// A new, empty draft.
    fn create_deposition(&self) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send;
    /// A draft or a published deposition.
    fn get_deposition(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send;
    /// A new-version draft of the published `record` (or the open one), by id.
    fn new_version(&self, record: u64) -> impl Future<Output = Result<u64, ZenodoError>> + Send;
    /// Deletes one file of a draft.
    fn delete_file(
        &self,
        id: u64,
        file_id: &str,
    ) -> impl Future<Output = Result<(), ZenodoError>> + Send;
    /// Streams `path` into the bucket as `file_name`, md5 checked.
    fn upload_file(
        &self,
        bucket_url: &str,
        file_name: &str,
        path: &Path,
        progress: ProgressRef,
    ) -> impl Future<Output = Result<Uploaded, ZenodoError>> + Send;
    /// Replaces a draft's metadata.
    fn update_metadata(
        &self,
        id: u64,
        metadata: &Value,
    ) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send;
    /// Publishes a draft.
    fn publish(&self, id: u64) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send;
    /// Deletes a draft.
    fn delete_deposition(&self, id: u64) -> impl Future<Output = Result<(), ZenodoError>> + Send;
}

impl DepositApi for ZenodoClient {
    fn base(&self) -> String {
        ZenodoClient::base(self)
    }
    fn create_deposition(&self) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send {
        ZenodoClient::create_deposition(self, None)
    }
    fn get_deposition(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send {
        ZenodoClient::get_deposition(self, id)
    }
    fn new_version(&self, record: u64) -> impl Future<Output = Result<u64, ZenodoError>> + Send {
        ZenodoClient::new_version(self, record)
    }
    fn delete_file(
        &self,
        id: u64,
        file_id: &str,
    ) -> impl Future<Output = Result<(), ZenodoError>> + Send {
        ZenodoClient::delete_file(self, id, file_id)
    }
    fn upload_file(
        &self,
        bucket_url: &str,
        file_name: &str,
        path: &Path,
        progress: ProgressRef,
    ) -> impl Future<Output = Result<Uploaded, ZenodoError>> + Send {
        ZenodoClient::upload_file(self, bucket_url, file_name, path, progress)
    }
    fn update_metadata(
        &self,
        id: u64,
        metadata: &Value,
    ) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send {
        ZenodoClient::update_metadata(self, id, metadata)
    }
    fn publish(&self, id: u64) -> impl Future<Output = Result<Deposition, ZenodoError>> + Send {
        ZenodoClient::publish(self, id)
    }
    fn delete_deposition(&self, id: u64) -> impl Future<Output = Result<(), ZenodoError>> + Send {
        ZenodoClient::delete_deposition(self, id)
    }
}

// ------------------------------------------------------------------------------ inputs

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The local file (a SIF).
    pub path: PathBuf,
    /// Its name in the record, one safe path segment (`kipoi-docker_deepmel-slim.sif`).
    pub file_name: String,
    /// Title and description of the record.
    pub text: RecordText,
    /// `publication_date`, `YYYY-MM-DD` (see [`super::metadata::today_utc`]).
    pub publication_date: String,
    /// Publish the draft; `false` leaves it open (for review) and returns no entry.
    pub push: bool,
}

/// Receives each completed step of a publication (for a journal). Every method has an
/// empty default. Calls may come from a cleanup task after the publication was cancelled
/// (`draft_deleted`).
pub trait PublishReport: Send + Sync {
    /// A draft exists for this publication: created, opened as a new version, or resumed.
    fn draft_created(&self, draft_id: u64) {
        let _ = draft_id;
    }
    /// The file is in the draft (uploaded now, or kept from a resumed run); `md5` is `None`
    /// only when an [`UploadHook`] did not say.
    fn file_uploaded(&self, draft_id: u64, file_name: &str, md5: Option<&str>) {
        let _ = (draft_id, file_name, md5);
    }
    /// The draft was published and read back.
    fn published(&self, entry: &PublishedEntry) {
        let _ = entry;
    }
    /// The draft was deleted after a failure or a cancellation.
    fn draft_deleted(&self, draft_id: u64) {
        let _ = draft_id;
    }
}

/// An upload done by the caller instead of the client (upstream lets users replace
/// `singularityhelper.upload_file`, and its tests stub it out).
pub trait UploadHook: Send + Sync {
    /// Puts `path` at `object_url` (the bucket object URL `{bucket}/{file_name}`, upstream's
    /// form); returns the md5 Zenodo recorded when known, or the failure's description.
    fn upload(&self, object_url: &str, path: &Path) -> Result<Option<String>, String>;
}

/// How to publish: resume, progress, reports, upload hook.
#[derive(Clone, Default)]
pub struct PublishOptions {
    /// A draft a previous (killed) run created for this publication, from its journal.
    pub resume_draft: Option<u64>,
    /// Progress of the upload.
    pub progress: ProgressRef,
    /// Receives each completed step.
    pub report: Option<Arc<dyn PublishReport>>,
    /// Uploads instead of the client (see [`UploadHook`]).
    pub upload_hook: Option<Arc<dyn UploadHook>>,
}

impl fmt::Debug for PublishOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishOptions")
            .field("resume_draft", &self.resume_draft)
            .field("progress", &self.progress.is_some())
            .field("report", &self.report.is_some())
            .field("upload_hook", &self.upload_hook.is_some())
            .finish()
    }
}

// ------------------------------------------------------------------------------ results

/// A published file, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedEntry {
    /// The record the file was published in (the new record, or the new version).
    pub record_id: u64,
    /// Zenodo's id of the file.
    pub file_id: String,
    /// `{base}/record/{record_id}/files/{file_name}?download=1` (upstream's form).
    pub url: String,
    /// The file name without `.sif`.
    pub name: String,
    /// md5 (hex) of the published file, equal to what was uploaded.
    pub md5: String,
}

impl PublishedEntry {
    /// The entry of `model-to-singularity.json`.
    ///
    /// # Errors
    /// When a field is not valid in the index (e.g. the name is not one safe path segment).
    pub fn to_index_entry(&self) -> Result<SingularityEntry, String> {
        Ok(SingularityEntry {
            url: crate::index::Url::new(self.url.clone())?,
            name: crate::index::SifName::new(self.name.clone())?,
            md5: crate::index::Md5::new(self.md5.clone())?,
        })
    }
}

/// What a publication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The deposition the file went into (the new record, or the new version's draft).
    pub deposition_id: u64,
    /// md5 of the file in the deposition (`None` only with an [`UploadHook`] that did not say).
    pub md5: Option<String>,
    /// The published entry; `None` when `push` was `false` (the draft stays open).
    pub published: Option<PublishedEntry>,
}

// ------------------------------------------------------------------------------ errors

/// Where a publication was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    NewRecord,
    NewVersion { record_id: u64 },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NewRecord => f.write_str("as a new Zenodo record"),
            Self::NewVersion { record_id } => {
                write!(f, "as a new version of Zenodo record `{record_id}`")
            }
        }
    }
}

/// What became of the draft of a failed publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftFate {
    /// No draft existed yet (or the failure came before any request).
    NoDraft,
    /// The draft was deleted.
    Deleted { id: u64 },
    /// Deleting the draft failed too: it is still there.
    NotDeleted { id: u64, reason: String },
    /// The draft had been published when a later step failed: it stays, published.
    Published { id: u64 },
}

impl DraftFate {
    /// The draft still on Zenodo, if any.
    #[must_use]
    pub fn remaining_draft(&self) -> Option<u64> {
        match self {
            Self::NotDeleted { id, .. } => Some(*id),
            _ => None,
        }
    }
}

impl fmt::Display for DraftFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDraft => Ok(()),
            Self::Deleted { id } => write!(f, "; its draft deposition `{id}` was deleted"),
            Self::NotDeleted { id, reason } => write!(
                f,
                "; its draft deposition `{id}` could not be deleted ({reason}): delete it by hand"
            ),
            Self::Published { id } => write!(f, "; deposition `{id}` was published nevertheless"),
        }
    }
}

/// A publication that failed: the file, where it was going, what became of the draft, and
/// (as the source) the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("could not publish `{file_name}` {target}{draft}")]
pub struct PublishError {
    pub file_name: String,
    pub target: Target,
    pub draft: DraftFate,
    #[source]
    pub kind: Box<PublishErrorKind>,
}

impl PublishError {
    /// The Zenodo error beneath, when a Zenodo call failed.
    #[must_use]
    pub fn zenodo(&self) -> Option<&ZenodoError> {
        match self.kind.as_ref() {
            PublishErrorKind::Zenodo(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishErrorKind {
    /// The file name is not one safe path segment (nothing was sent).
    #[error("the file name is refused")]
    InvalidFileName(#[source] InvalidName),
    /// A Zenodo call failed.
    #[error(transparent)]
    Zenodo(#[from] ZenodoError),
    /// The local file could not be read (to compare it with a resumed draft's file).
    #[error(transparent)]
    Local(#[from] TransferError),
    /// The caller's upload failed.
    #[error("the upload hook failed: {0}")]
    UploadHook(String),
    /// The resumed draft belongs to another record.
    #[error(
        "the draft deposition `{draft}` to resume belongs to concept `{found}`, not to concept \
         `{expected}` of record `{record}`; it was left as it is"
    )]
    ForeignDraft {
        draft: u64,
        record: u64,
        found: String,
        expected: String,
    },
    /// The published deposition does not hold the uploaded file.
    #[error("published deposition `{id}` has no file `{file_name}`")]
    MissingFile { id: u64, file_name: String },
    /// The published file is not what was uploaded.
    #[error("published `{file_name}` of deposition `{id}` has md5 {published}, but {uploaded} was uploaded")]
    ChecksumMismatch {
        id: u64,
        file_name: String,
        published: String,
        uploaded: String,
    },
    /// Zenodo's answer lacks something the workflow needs.
    #[error("{0}")]
    Unexpected(String),
}

// ------------------------------------------------------------------------------ entry points

/// Publishes `request.path` as a new Zenodo record: create a draft (or resume one), upload,
/// metadata, and with `push` publish and read back. See the module docs for failures,
/// cancellation and resuming.
///
/// # Errors
/// [`PublishError`], naming the file, the step that failed and what became of the draft.
pub async fn publish_new<A: DepositApi>(
    api: &A,
    request: &PublishRequest,
    options: &PublishOptions,
) -> Result<PublishOutcome, PublishError> {
    let run = Run::new(api, request, options, Target::NewRecord)?;
    match run.resume().await? {
        Resumed::Nothing => run.start(Start::Create).await,
        Resumed::Draft { id, dep } => run.fill(id, Some(dep), true).await,
        Resumed::Published(dep) => run.after_published(dep).await,
    }
}

/// Publishes `request.path` as a new version of the published record `record_id` (an index
/// entry's record, see [`super::record_id_from_url`]): open a new version (or continue the
/// open draft of that record, or resume the journal's), delete only the file with the same
/// name, upload, metadata, and with `push` publish and read back.
///
/// # Errors
/// [`PublishError`], naming the file, the step that failed and what became of the draft.
pub async fn publish_version<A: DepositApi>(
    api: &A,
    record_id: u64,
    request: &PublishRequest,
    options: &PublishOptions,
) -> Result<PublishOutcome, PublishError> {
    let run = Run::new(api, request, options, Target::NewVersion { record_id })?;
    match run.resume().await? {
        // Only a publication can be satisfied by what is published; a draft for review
        // (`push: false`) is always opened.
        Resumed::Nothing if request.push => match run.latest_holds_the_file(record_id).await? {
            Some(outcome) => Ok(outcome),
            None => run.start(Start::NewVersionOf(record_id)).await,
        },
        Resumed::Nothing => run.start(Start::NewVersionOf(record_id)).await,
        Resumed::Draft { id, dep } => run.fill(id, Some(dep), true).await,
        Resumed::Published(dep) => run.after_published(dep).await,
    }
}

// ------------------------------------------------------------------------------ the workflow

/// How the draft comes to exist.
enum Start {
    Create,
    NewVersionOf(u64),
}

/// What resuming found.
enum Resumed {
    /// No draft to resume (none given, or it is gone).
    Nothing,
    /// An open draft.
    Draft { id: u64, dep: Deposition },
    /// The draft was published by the earlier run.
    Published(Deposition),
}

/// One publication in progress.
struct Run<'a, A: DepositApi> {
    api: &'a A,
    request: &'a PublishRequest,
    options: &'a PublishOptions,
    target: Target,
}

impl<'a, A: DepositApi> Run<'a, A> {
    fn new(
        api: &'a A,
        request: &'a PublishRequest,
        options: &'a PublishOptions,
        target: Target,
    ) -> Result<Self, PublishError> {
        let run = Self {
            api,
            request,
            options,
            target,
        };
        validate_file_name(&request.file_name)
            .map_err(|e| run.error(PublishErrorKind::InvalidFileName(e), DraftFate::NoDraft))?;
        if options.upload_hook.is_none() {
            // A missing file fails here, before a draft is created for it.
            std::fs::File::open(&request.path).map_err(|source| {
                let local = TransferError::Open {
                    path: request.path.clone(),
                    source,
                };
                run.error(local.into(), DraftFate::NoDraft)
            })?;
        }
        Ok(run)
    }

    fn error(&self, kind: PublishErrorKind, draft: DraftFate) -> PublishError {
        PublishError {
            file_name: self.request.file_name.clone(),
            target: self.target,
            draft,
            kind: Box::new(kind),
        }
    }

    fn report(&self) -> Option<&dyn PublishReport> {
        self.options.report.as_deref()
    }

    /// The resumed draft, checked: gone (404) means start afresh; one of another record is
    /// an error.
    async fn resume(&self) -> Result<Resumed, PublishError> {
        let Some(id) = self.options.resume_draft else {
            return Ok(Resumed::Nothing);
        };
        let fail = |e: ZenodoError| self.error(e.into(), DraftFate::NoDraft);
        let dep = match self.api.get_deposition(id).await {
            Ok(dep) => dep,
            Err(e) if e.status() == Some(404) => {
                log::info!("the draft deposition `{id}` to resume is gone; starting afresh");
                return Ok(Resumed::Nothing);
            }
            Err(e) => return Err(fail(e)),
        };
        if let Target::NewVersion { record_id } = self.target {
            if record_id != id {
                let record = self.api.get_deposition(record_id).await.map_err(fail)?;
                if record.conceptrecid() != dep.conceptrecid() {
                    let kind = PublishErrorKind::ForeignDraft {
                        draft: id,
                        record: record_id,
                        found: dep.conceptrecid().unwrap_or_default(),
                        expected: record.conceptrecid().unwrap_or_default(),
                    };
                    return Err(self.error(kind, DraftFate::NoDraft));
                }
            }
        }
        if dep.is_published() {
            return Ok(Resumed::Published(dep));
        }
        log::info!("resuming draft deposition `{id}`");
        Ok(Resumed::Draft { id, dep })
    }

    /// The latest published version of `record`, when it already holds the local file's
    /// bytes under its name (another run, or one whose journal was lost, published exactly
    /// this SIF): then that is the outcome, and no second version is made.
    async fn latest_holds_the_file(
        &self,
        record: u64,
    ) -> Result<Option<PublishOutcome>, PublishError> {
        let fail = |e: ZenodoError| self.error(e.into(), DraftFate::NoDraft);
        let dep = self.api.get_deposition(record).await.map_err(fail)?;
        let latest = match dep.latest_id() {
            Some(id) if id != record => self.api.get_deposition(id).await.map_err(fail)?,
            _ => dep,
        };
        let (Some(id), Some(file)) = (latest.id(), self.file_in(&latest)) else {
            return Ok(None);
        };
        if !latest.is_published() {
            return Ok(None);
        }
        let local = local_md5(&self.request.path)
            .await
            .map_err(|e| self.error(e.into(), DraftFate::NoDraft))?;
        if local != file.checksum {
            return Ok(None);
        }
        log::info!(
            "the latest version `{id}` of record `{record}` already holds `{}` with these bytes: nothing to publish",
            self.request.file_name
        );
        let entry = self
            .entry_of(&latest, id, Some(&local))
            .map_err(|k| self.error(k, DraftFate::NoDraft))?;
        if let Some(report) = self.report() {
            report.published(&entry);
        }
        Ok(Some(PublishOutcome {
            deposition_id: id,
            md5: Some(entry.md5.clone()),
            published: Some(entry),
        }))
    }

    /// A resumed draft that the earlier run published: done when it holds the local file's
    /// bytes; otherwise those bytes go into a new version of it.
    async fn after_published(&self, dep: Deposition) -> Result<PublishOutcome, PublishError> {
        let Some(id) = dep.id() else {
            let kind = PublishErrorKind::Unexpected("a resumed deposition has no `id`".into());
            return Err(self.error(kind, DraftFate::NoDraft));
        };
        if let Some(file) = self.file_in(&dep) {
            let local = local_md5(&self.request.path)
                .await
                .map_err(|e| self.error(e.into(), DraftFate::NoDraft))?;
            if local == file.checksum {
                log::info!(
                    "deposition `{id}` was published by an earlier run with `{}`",
                    self.request.file_name
                );
                let entry = self
                    .entry_of(&dep, id, Some(&local))
                    .map_err(|k| self.error(k, DraftFate::NoDraft))?;
                if let Some(report) = self.report() {
                    report.published(&entry);
                }
                return Ok(PublishOutcome {
                    deposition_id: id,
                    md5: Some(entry.md5.clone()),
                    published: Some(entry),
                });
            }
        }
        log::info!("deposition `{id}` was published by an earlier run with other bytes: publishing a new version of it");
        self.start(Start::NewVersionOf(id)).await
    }

    /// Creates the draft (or opens the new version), then fills and publishes it.
    async fn start(&self, start: Start) -> Result<PublishOutcome, PublishError> {
        let fail = |e: ZenodoError| self.error(e.into(), DraftFate::NoDraft);
        match start {
            Start::Create => {
                let dep = self.api.create_deposition().await.map_err(fail)?;
                let Some(id) = dep.id() else {
                    let kind =
                        PublishErrorKind::Unexpected("the new deposition has no `id`".into());
                    return Err(self.error(kind, DraftFate::NoDraft));
                };
                self.fill(id, Some(dep), false).await
            }
            Start::NewVersionOf(record) => {
                let id = self.api.new_version(record).await.map_err(fail)?;
                self.fill(id, None, false).await
            }
        }
    }

    /// Everything after the draft `id` exists, under a guard that deletes it on failure or
    /// cancellation until it is published (or deliberately left open).
    async fn fill(
        &self,
        id: u64,
        known: Option<Deposition>,
        resumed: bool,
    ) -> Result<PublishOutcome, PublishError> {
        let mut guard = DraftGuard::new(self.api.clone(), id, self.options.report.clone());
        if let Some(report) = self.report() {
            report.draft_created(id);
        }
        match self.steps(&mut guard, known, resumed).await {
            Ok(outcome) => Ok(outcome),
            Err(kind) => {
                let fate = guard.settle().await;
                Err(self.error(kind, fate))
            }
        }
    }

    async fn steps(
        &self,
        guard: &mut DraftGuard<A>,
        known: Option<Deposition>,
        resumed: bool,
    ) -> Result<PublishOutcome, PublishErrorKind> {
        let id = guard.id;
        let name = self.request.file_name.as_str();
        let draft = match known {
            Some(dep) => dep,
            None => self.api.get_deposition(id).await?,
        };
        let bucket = draft.bucket_url().map(str::to_owned).ok_or_else(|| {
            PublishErrorKind::Unexpected(format!("draft deposition `{id}` has no `links.bucket`"))
        })?;
        let mut md5 = None;
        let mut have_file = false;
        if let Some(file) = self.file_in(&draft) {
            if resumed
                && self.options.upload_hook.is_none()
                && local_md5(&self.request.path).await? == file.checksum
            {
                log::info!("draft deposition `{id}` already holds `{name}` with md5 {}: not uploading it again", file.checksum);
                md5 = Some(file.checksum);
                have_file = true;
            } else {
                self.api.delete_file(id, &file.id).await?;
                log::info!("deleted the previous `{name}` from draft deposition `{id}`");
            }
        }
        if !have_file {
            md5 = self.upload(&bucket).await?;
        }
        if let Some(report) = self.report() {
            report.file_uploaded(id, name, md5.as_deref());
        }
        let metadata = self
            .request
            .text
            .to_metadata(&self.request.publication_date);
        self.api.update_metadata(id, &metadata).await?;
        if !self.request.push {
            guard.keep();
            log::info!("draft deposition `{id}` is ready and left unpublished");
            return Ok(PublishOutcome {
                deposition_id: id,
                md5,
                published: None,
            });
        }
        self.api.publish(id).await?;
        guard.published();
        let dep = self.api.get_deposition(id).await?;
        let entry = self.entry_of(&dep, id, md5.as_deref())?;
        log::info!("published `{name}` as `{}`", entry.url);
        if let Some(report) = self.report() {
            report.published(&entry);
        }
        Ok(PublishOutcome {
            deposition_id: id,
            md5: Some(entry.md5.clone()),
            published: Some(entry),
        })
    }

    /// Uploads the file (by the client, or by the caller's hook); its md5 when known.
    async fn upload(&self, bucket: &str) -> Result<Option<String>, PublishErrorKind> {
        let name = &self.request.file_name;
        if let Some(hook) = &self.options.upload_hook {
            let object_url = format!("{}/{name}", bucket.trim_end_matches('/'));
            let md5 = hook
                .upload(&object_url, &self.request.path)
                .map_err(PublishErrorKind::UploadHook)?;
            return Ok(md5.map(|m| normalize_md5(&m)));
        }
        let uploaded = self
            .api
            .upload_file(
                bucket,
                name,
                &self.request.path,
                self.options.progress.clone(),
            )
            .await?;
        Ok(Some(uploaded.md5))
    }

    /// The file of `dep` with the request's file name.
    fn file_in(&self, dep: &Deposition) -> Option<DepositFile> {
        dep.files()
            .into_iter()
            .find(|f| f.filename == self.request.file_name)
    }

    /// The index entry of the published `dep`, checked against the uploaded md5.
    fn entry_of(
        &self,
        dep: &Deposition,
        id: u64,
        uploaded: Option<&str>,
    ) -> Result<PublishedEntry, PublishErrorKind> {
        let name = &self.request.file_name;
        let file = self
            .file_in(dep)
            .ok_or_else(|| PublishErrorKind::MissingFile {
                id,
                file_name: name.clone(),
            })?;
        if let Some(sent) = uploaded {
            if sent != file.checksum {
                return Err(PublishErrorKind::ChecksumMismatch {
                    id,
                    file_name: name.clone(),
                    published: file.checksum,
                    uploaded: sent.to_owned(),
                });
            }
        }
        let record_id = dep.record_id().unwrap_or(id);
        Ok(PublishedEntry {
            record_id,
            file_id: file.id,
            url: record_file_url(&self.api.base(), record_id, name),
            name: name.strip_suffix(SIF_EXTENSION).unwrap_or(name).to_owned(),
            md5: file.checksum,
        })
    }
}

/// `{base}/record/{record_id}/files/{file_name}?download=1`, the file name percent-encoded
/// as one path segment (a no-op for the names kipoi uses).
#[must_use]
pub fn record_file_url(base: &str, record_id: u64, file_name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(file_name, SEGMENT);
    format!(
        "{}/record/{record_id}/files/{encoded}?download=1",
        base.trim_end_matches('/')
    )
}

/// md5 of a local file, read on a blocking thread.
async fn local_md5(path: &Path) -> Result<String, TransferError> {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || transfer::md5_file(&owned)).await {
        Ok(result) => result.map(|(md5, _)| md5),
        Err(source) => Err(TransferError::Worker {
            path: path.to_path_buf(),
            source,
        }),
    }
}

// ------------------------------------------------------------------------------ the guard

/// Owns a draft until it is published or deliberately left open: dropped while armed (the
/// publication was cancelled), it spawns the draft's deletion; [`DraftGuard::settle`]
/// deletes it after a failure and says what became of it.
struct DraftGuard<A: DepositApi> {
    api: A,
    id: u64,
    report: Option<Arc<dyn PublishReport>>,
    state: GuardState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardState {
    /// Delete the draft unless told otherwise.
    Armed,
    /// The draft is to stay (push = false).
    Kept,
    /// The draft was published.
    Published,
}

impl<A: DepositApi> DraftGuard<A> {
    fn new(api: A, id: u64, report: Option<Arc<dyn PublishReport>>) -> Self {
        Self {
            api,
            id,
            report,
            state: GuardState::Armed,
        }
    }

    fn keep(&mut self) {
        self.state = GuardState::Kept;
    }

    fn published(&mut self) {
        self.state = GuardState::Published;
    }

    /// After a failure: deletes the draft when it is still owned; its fate for the error.
    async fn settle(mut self) -> DraftFate {
        match self.state {
            GuardState::Armed => {
                // Disarmed only once the deletion finished: cancelled meanwhile, `Drop` tries again.
                let fate = delete_draft(&self.api, self.id, self.report.as_deref()).await;
                self.state = GuardState::Kept;
                fate
            }
            GuardState::Published => DraftFate::Published { id: self.id },
            GuardState::Kept => DraftFate::NoDraft,
        }
    }
}

impl<A: DepositApi> Drop for DraftGuard<A> {
    fn drop(&mut self) {
        if self.state != GuardState::Armed {
            return;
        }
        let (api, id, report) = (self.api.clone(), self.id, self.report.take());
        log::info!("publication cancelled: deleting draft deposition `{id}`");
        crate::runtime::spawn_cleanup(async move {
            delete_draft(&api, id, report.as_deref()).await;
        });
    }
}

/// Deletes the draft `id`. When Zenodo refuses, the deposition is read: gone (404) counts as
/// deleted, published (a cancelled publish that went through) is reported as such, anything
/// else is a draft left behind. Failures are logged, not raised.
async fn delete_draft<A: DepositApi>(
    api: &A,
    id: u64,
    report: Option<&dyn PublishReport>,
) -> DraftFate {
    if let Err(e) = api.delete_deposition(id).await {
        match api.get_deposition(id).await {
            Err(gone) if gone.status() == Some(404) => {}
            Ok(dep) if dep.is_published() => {
                log::warn!(
                    "deposition `{id}` was published before the publication could be stopped; it stays"
                );
                return DraftFate::Published { id };
            }
            _ => {
                let reason = crate::errchain::chain(&e);
                log::warn!(
                    "the draft deposition `{id}` could not be deleted: {reason}; delete it by hand"
                );
                return DraftFate::NotDeleted { id, reason };
            }
        }
    }
    log::info!("deleted draft deposition `{id}`");
    if let Some(report) = report {
        report.draft_deleted(id);
    }
    DraftFate::Deleted { id }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write as _;
    use std::sync::Mutex;
    use std::time::Duration;

    use reqwest::Method;
    use serde_json::json;

    use super::*;
    use crate::zenodo::ZenodoErrorKind;

    const BASE: &str = "http://zenodo.test";
    const NAME: &str = "kipoi-docker_x-slim.sif";

    #[derive(Debug, Clone)]
    struct FakeFile {
        id: String,
        name: String,
        md5: String,
    }

    #[derive(Debug, Clone)]
    struct FakeDep {
        concept: u64,
        published: bool,
        files: Vec<FakeFile>,
        metadata: Value,
    }

    /// An in-memory Zenodo: depositions, files, failures on demand, an upload that can hang.
    #[derive(Default)]
    struct State {
        next: u64,
        deps: BTreeMap<u64, FakeDep>,
        calls: Vec<String>,
        /// Operation name → status it fails with (once).
        fail: BTreeMap<&'static str, u16>,
        /// Uploads never finish (to cancel them).
        hang_upload: bool,
        /// Publishing stores other bytes than were uploaded.
        corrupt_on_publish: bool,
    }

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<State>>);

    fn status(op: &str, status: u16) -> ZenodoError {
        ZenodoError::new(
            format!("{op} (fake)"),
            ZenodoErrorKind::Status {
                method: Method::POST,
                url: format!("{BASE}/fake"),
                status,
                message: "refused by the fake".into(),
                hint: "",
            },
        )
    }

    impl Fake {
        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }
        /// Records the call; fails when told to.
        fn call(&self, op: &'static str, id: Option<u64>) -> Result<(), ZenodoError> {
            let mut st = self.state();
            st.calls.push(match id {
                Some(id) => format!("{op} {id}"),
                None => op.to_owned(),
            });
            match st.fail.remove(op) {
                Some(code) => Err(status(op, code)),
                None => Ok(()),
            }
        }
        fn fail(&self, op: &'static str, code: u16) {
            self.state().fail.insert(op, code);
        }
        fn calls(&self) -> Vec<String> {
            self.state().calls.clone()
        }
        fn mutations(&self) -> Vec<String> {
            self.calls()
                .into_iter()
                .filter(|c| !c.starts_with("get "))
                .collect()
        }
        fn add(&self, id: u64, concept: u64, published: bool, files: &[(&str, &str)]) {
            let mut st = self.state();
            st.next = st.next.max(id + 1);
            let files = files
                .iter()
                .enumerate()
                .map(|(i, (name, md5))| FakeFile {
                    id: format!("f{id}-{i}"),
                    name: (*name).to_owned(),
                    md5: (*md5).to_owned(),
                })
                .collect();
            st.deps.insert(
                id,
                FakeDep {
                    concept,
                    published,
                    files,
                    metadata: json!({}),
                },
            );
        }
        fn new_id(st: &mut State) -> u64 {
            st.next = st.next.max(100) + 1;
            st.next
        }
        fn view(id: u64, dep: &FakeDep) -> Deposition {
            Deposition::from_value(json!({
                "id": id,
                "conceptrecid": dep.concept.to_string(),
                "state": if dep.published { "done" } else { "unsubmitted" },
                "links": {"bucket": format!("{BASE}/api/files/b{id}")},
                "metadata": {"prereserve_doi": {"recid": id}},
                "files": dep.files.iter().map(|f| json!({
                    "id": f.id, "filename": f.name, "filesize": 1, "checksum": f.md5,
                })).collect::<Vec<_>>(),
            }))
        }
        fn get(&self, id: u64) -> Result<Deposition, ZenodoError> {
            let st = self.state();
            st.deps
                .get(&id)
                .map(|d| Self::view(id, d))
                .ok_or_else(|| status("read", 404))
        }
        fn drafts(&self) -> Vec<u64> {
            let st = self.state();
            st.deps
                .iter()
                .filter(|(_, d)| !d.published)
                .map(|(id, _)| *id)
                .collect()
        }
    }

    impl DepositApi for Fake {
        fn base(&self) -> String {
            BASE.to_owned()
        }
        async fn create_deposition(&self) -> Result<Deposition, ZenodoError> {
            self.call("create", None)?;
            let mut st = self.state();
            let id = Self::new_id(&mut st);
            let dep = FakeDep {
                concept: id + 1_000,
                published: false,
                files: Vec::new(),
                metadata: json!({}),
            };
            let view = Self::view(id, &dep);
            st.deps.insert(id, dep);
            Ok(view)
        }
        async fn get_deposition(&self, id: u64) -> Result<Deposition, ZenodoError> {
            self.call("get", Some(id))?;
            self.get(id)
        }
        async fn new_version(&self, record: u64) -> Result<u64, ZenodoError> {
            self.call("newversion", Some(record))?;
            let mut st = self.state();
            let source = st
                .deps
                .get(&record)
                .cloned()
                .ok_or_else(|| status("newversion", 404))?;
            if let Some((id, _)) = st
                .deps
                .iter()
                .find(|(_, d)| d.concept == source.concept && !d.published)
            {
                return Ok(*id);
            }
            let id = Self::new_id(&mut st);
            st.deps.insert(
                id,
                FakeDep {
                    published: false,
                    ..source
                },
            );
            Ok(id)
        }
        async fn delete_file(&self, id: u64, file_id: &str) -> Result<(), ZenodoError> {
            self.call("delete_file", Some(id))?;
            let mut st = self.state();
            let dep = st
                .deps
                .get_mut(&id)
                .ok_or_else(|| status("delete_file", 404))?;
            dep.files.retain(|f| f.id != file_id);
            Ok(())
        }
        async fn upload_file(
            &self,
            bucket_url: &str,
            file_name: &str,
            path: &Path,
            _progress: ProgressRef,
        ) -> Result<Uploaded, ZenodoError> {
            let id: u64 = bucket_url.rsplit("/b").next().unwrap().parse().unwrap();
            self.call("upload", Some(id))?;
            if self.state().hang_upload {
                std::future::pending::<()>().await;
            }
            let (md5, size) = transfer::md5_file(path)
                .map_err(|e| ZenodoError::new("read the file (fake)", ZenodoErrorKind::Local(e)))?;
            let mut st = self.state();
            let next = st.calls.len();
            let dep = st.deps.get_mut(&id).ok_or_else(|| status("upload", 404))?;
            dep.files.retain(|f| f.name != file_name);
            dep.files.push(FakeFile {
                id: format!("up{next}"),
                name: file_name.to_owned(),
                md5: md5.clone(),
            });
            Ok(Uploaded {
                object: json!({"checksum": format!("md5:{md5}")}),
                md5,
                size,
            })
        }
        async fn update_metadata(
            &self,
            id: u64,
            metadata: &Value,
        ) -> Result<Deposition, ZenodoError> {
            self.call("metadata", Some(id))?;
            let mut st = self.state();
            let dep = st
                .deps
                .get_mut(&id)
                .ok_or_else(|| status("metadata", 404))?;
            dep.metadata = metadata.clone();
            Ok(Self::view(id, dep))
        }
        async fn publish(&self, id: u64) -> Result<Deposition, ZenodoError> {
            self.call("publish", Some(id))?;
            let mut st = self.state();
            let corrupt = st.corrupt_on_publish;
            let dep = st.deps.get_mut(&id).ok_or_else(|| status("publish", 404))?;
            dep.published = true;
            if corrupt {
                for f in &mut dep.files {
                    f.md5 = "0".repeat(32);
                }
            }
            Ok(Self::view(id, dep))
        }
        async fn delete_deposition(&self, id: u64) -> Result<(), ZenodoError> {
            self.call("delete", Some(id))?;
            let mut st = self.state();
            match st.deps.get(&id) {
                None => Err(status("delete", 404)),
                Some(d) if d.published => Err(status("delete", 403)),
                Some(_) => {
                    st.deps.remove(&id);
                    Ok(())
                }
            }
        }
    }

    /// Collects the reported steps.
    #[derive(Default)]
    struct Steps(Mutex<Vec<String>>);

    impl PublishReport for Steps {
        fn draft_created(&self, id: u64) {
            self.0.lock().unwrap().push(format!("draft {id}"));
        }
        fn file_uploaded(&self, id: u64, file_name: &str, md5: Option<&str>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("file {id} {file_name} {}", md5.unwrap_or("?")));
        }
        fn published(&self, entry: &PublishedEntry) {
            self.0
                .lock()
                .unwrap()
                .push(format!("published {}", entry.record_id));
        }
        fn draft_deleted(&self, id: u64) {
            self.0.lock().unwrap().push(format!("deleted {id}"));
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        request: PublishRequest,
        md5: String,
        steps: Arc<Steps>,
        options: PublishOptions,
    }

    fn setup(bytes: &[u8]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let md5 = transfer::md5_file(&path).unwrap().0;
        let steps = Arc::new(Steps::default());
        let options = PublishOptions {
            report: Some(steps.clone() as Arc<dyn PublishReport>),
            ..PublishOptions::default()
        };
        Setup {
            _dir: dir,
            request: PublishRequest {
                path,
                file_name: NAME.into(),
                text: RecordText::model_group("X"),
                publication_date: "2024-01-02".into(),
                push: true,
            },
            md5,
            steps,
            options,
        }
    }

    impl Setup {
        fn steps(&self) -> Vec<String> {
            self.steps.0.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn new_record_is_created_uploaded_described_published_and_read_back() {
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        let out = publish_new(&fake, &s.request, &s.options).await.unwrap();
        let id = out.deposition_id;
        let entry = out.published.clone().unwrap();
        assert_eq!(
            entry,
            PublishedEntry {
                record_id: id,
                file_id: entry.file_id.clone(),
                url: format!("{BASE}/record/{id}/files/{NAME}?download=1"),
                name: "kipoi-docker_x-slim".into(),
                md5: s.md5.clone(),
            }
        );
        assert_eq!(out.md5.as_deref(), Some(s.md5.as_str()));
        assert_eq!(
            fake.calls(),
            [
                "create".to_owned(),
                format!("upload {id}"),
                format!("metadata {id}"),
                format!("publish {id}"),
                format!("get {id}"),
            ]
        );
        assert_eq!(
            s.steps(),
            [
                format!("draft {id}"),
                format!("file {id} {NAME} {}", s.md5),
                format!("published {id}"),
            ]
        );
        let st = fake.state();
        assert_eq!(st.deps.len(), 1);
        assert_eq!(st.deps[&id].metadata["title"], "X singularity container");
        assert_eq!(st.deps[&id].metadata["publication_date"], "2024-01-02");
        assert!(entry.to_index_entry().is_ok());
    }

    #[tokio::test]
    async fn a_failure_after_the_draft_exists_deletes_it() {
        for op in ["upload", "metadata", "publish"] {
            let fake = Fake::default();
            let s = setup(b"sif bytes");
            fake.fail(op, 400);
            let err = publish_new(&fake, &s.request, &s.options)
                .await
                .unwrap_err();
            let id = fake
                .calls()
                .iter()
                .find_map(|c| c.strip_prefix("upload ").map(str::to_owned))
                .unwrap();
            assert_eq!(
                err.draft,
                DraftFate::Deleted {
                    id: id.parse().unwrap()
                },
                "{op}"
            );
            assert_eq!(
                err.zenodo().and_then(ZenodoError::status),
                Some(400),
                "{op}"
            );
            assert_eq!(
                err.to_string(),
                format!("could not publish `{NAME}` as a new Zenodo record; its draft deposition `{id}` was deleted"),
                "{op}"
            );
            assert!(
                crate::errchain::chain(&err).contains(&format!("could not {op} (fake)")),
                "{op}"
            );
            assert!(fake.state().deps.is_empty(), "{op}: the draft stayed");
            assert_eq!(s.steps().last().unwrap(), &format!("deleted {id}"), "{op}");
        }
    }

    #[tokio::test]
    async fn a_failed_deletion_is_named_and_the_original_error_kept() {
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        fake.fail("upload", 400);
        fake.fail("delete", 403);
        let err = publish_new(&fake, &s.request, &s.options)
            .await
            .unwrap_err();
        let draft = fake.drafts();
        assert_eq!(draft.len(), 1);
        assert_eq!(err.draft.remaining_draft(), Some(draft[0]));
        assert_eq!(err.zenodo().and_then(ZenodoError::status), Some(400));
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "its draft deposition `{}` could not be deleted",
                draft[0]
            )),
            "{text}"
        );
        assert!(text.ends_with("delete it by hand"), "{text}");
        assert!(crate::errchain::chain(&err).contains("could not upload (fake)"));
    }

    #[tokio::test]
    async fn cancelling_during_the_upload_deletes_the_draft() {
        let fake = Fake::default();
        fake.state().hang_upload = true;
        let s = setup(b"sif bytes");
        let (api, request, options) = (fake.clone(), s.request.clone(), s.options.clone());
        let task = tokio::spawn(async move { publish_new(&api, &request, &options).await });
        for _ in 0..200 {
            if fake.calls().iter().any(|c| c.starts_with("upload")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fake.drafts().len(), 1, "the upload never started");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(crate::runtime::wait_for_cleanups(Duration::from_secs(5)).await);
        assert!(fake.state().deps.is_empty(), "the cancelled draft stayed");
        assert!(fake.calls().last().unwrap().starts_with("delete "));
        assert!(s.steps().last().unwrap().starts_with("deleted "));
    }

    #[tokio::test]
    async fn resuming_a_draft_that_holds_the_file_creates_and_uploads_nothing() {
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        fake.add(7, 1007, false, &[(NAME, &s.md5)]);
        let options = PublishOptions {
            resume_draft: Some(7),
            ..s.options.clone()
        };
        let out = publish_new(&fake, &s.request, &options).await.unwrap();
        assert_eq!(out.deposition_id, 7);
        assert_eq!(fake.mutations(), ["metadata 7", "publish 7"]);
        assert_eq!(fake.state().deps.len(), 1, "a second record");
        assert_eq!(out.published.unwrap().md5, s.md5);
        assert_eq!(s.steps()[1], format!("file 7 {NAME} {}", s.md5));
    }

    #[tokio::test]
    async fn resuming_a_draft_with_other_bytes_replaces_only_that_file() {
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        fake.add(
            7,
            1007,
            false,
            &[
                (NAME, "1".repeat(32).as_str()),
                ("notes.txt", "2".repeat(32).as_str()),
            ],
        );
        let options = PublishOptions {
            resume_draft: Some(7),
            ..s.options.clone()
        };
        publish_new(&fake, &s.request, &options).await.unwrap();
        assert_eq!(
            fake.mutations(),
            ["delete_file 7", "upload 7", "metadata 7", "publish 7"]
        );
        let files: Vec<(String, String)> = fake.state().deps[&7]
            .files
            .iter()
            .map(|f| (f.name.clone(), f.md5.clone()))
            .collect();
        assert_eq!(
            files,
            [
                ("notes.txt".to_owned(), "2".repeat(32)),
                (NAME.to_owned(), s.md5.clone())
            ]
        );
    }

    #[tokio::test]
    async fn resuming_a_draft_that_is_gone_starts_afresh() {
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        let options = PublishOptions {
            resume_draft: Some(99),
            ..s.options.clone()
        };
        let out = publish_new(&fake, &s.request, &options).await.unwrap();
        assert_ne!(out.deposition_id, 99);
        assert_eq!(
            fake.calls()[..2],
            ["get 99".to_owned(), "create".to_owned()]
        );
    }

    #[tokio::test]
    async fn resuming_a_draft_published_meanwhile() {
        // Same bytes: done, nothing changes.
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        fake.add(7, 1007, true, &[(NAME, &s.md5)]);
        let options = PublishOptions {
            resume_draft: Some(7),
            ..s.options.clone()
        };
        let out = publish_new(&fake, &s.request, &options).await.unwrap();
        assert_eq!(
            out.published.unwrap().url,
            format!("{BASE}/record/7/files/{NAME}?download=1")
        );
        assert!(fake.mutations().is_empty(), "{:?}", fake.calls());
        // Other bytes: a new version of it.
        let fake = Fake::default();
        fake.add(7, 1007, true, &[(NAME, "1".repeat(32).as_str())]);
        let out = publish_new(&fake, &s.request, &options).await.unwrap();
        assert_ne!(out.deposition_id, 7);
        assert_eq!(fake.mutations()[0], "newversion 7");
        assert_eq!(fake.state().deps[&out.deposition_id].concept, 1007);
    }

    #[tokio::test]
    async fn a_new_version_replaces_only_the_file_of_the_same_name() {
        let fake = Fake::default();
        let s = setup(b"new sif bytes");
        fake.add(
            50,
            49,
            true,
            &[
                (NAME, "1".repeat(32).as_str()),
                ("other.sif", "2".repeat(32).as_str()),
            ],
        );
        let out = publish_version(&fake, 50, &s.request, &s.options)
            .await
            .unwrap();
        let id = out.deposition_id;
        assert_ne!(id, 50);
        assert_eq!(
            fake.mutations(),
            [
                "newversion 50".to_owned(),
                format!("delete_file {id}"),
                format!("upload {id}"),
                format!("metadata {id}"),
                format!("publish {id}"),
            ]
        );
        let st = fake.state();
        let files: Vec<(&str, &str, &str)> = st.deps[&id]
            .files
            .iter()
            .map(|f| (f.id.as_str(), f.name.as_str(), f.md5.as_str()))
            .collect();
        assert_eq!(files[0], ("f50-1", "other.sif", "2".repeat(32).as_str()));
        assert_eq!((files[1].1, files[1].2), (NAME, s.md5.as_str()));
        assert_eq!(
            st.deps[&50].files[0].md5,
            "1".repeat(32),
            "the old version changed"
        );
        let entry = out.published.unwrap();
        assert_eq!(entry.record_id, id);
        assert_eq!(
            entry.url,
            format!("{BASE}/record/{id}/files/{NAME}?download=1")
        );
    }

    #[tokio::test]
    async fn a_failed_new_version_deletes_its_draft_not_the_record() {
        let fake = Fake::default();
        let s = setup(b"new sif bytes");
        fake.add(50, 49, true, &[(NAME, "1".repeat(32).as_str())]);
        fake.fail("metadata", 400);
        let err = publish_version(&fake, 50, &s.request, &s.options)
            .await
            .unwrap_err();
        assert!(matches!(err.draft, DraftFate::Deleted { id } if id != 50));
        assert!(err.to_string().starts_with(&format!(
            "could not publish `{NAME}` as a new version of Zenodo record `50`"
        )));
        assert_eq!(fake.state().deps.keys().copied().collect::<Vec<_>>(), [50]);
    }

    #[tokio::test]
    async fn resuming_a_draft_of_another_record_is_refused() {
        let fake = Fake::default();
        let s = setup(b"sif bytes");
        fake.add(50, 49, true, &[]);
        fake.add(60, 59, false, &[]);
        let options = PublishOptions {
            resume_draft: Some(60),
            ..s.options.clone()
        };
        let err = publish_version(&fake, 50, &s.request, &options)
            .await
            .unwrap_err();
        assert!(matches!(
            *err.kind,
            PublishErrorKind::ForeignDraft {
                draft: 60,
                record: 50,
                ..
            }
        ));
        assert!(fake.mutations().is_empty());
        assert_eq!(fake.drafts(), [60]);
    }

    #[tokio::test]
    async fn unsafe_file_names_are_refused_before_any_call() {
        for name in ["../x.sif", "a/b.sif", "", "..", "a\\b.sif", "x\n.sif"] {
            let fake = Fake::default();
            let mut s = setup(b"sif bytes");
            s.request.file_name = name.into();
            let err = publish_new(&fake, &s.request, &s.options)
                .await
                .unwrap_err();
            assert!(
                matches!(*err.kind, PublishErrorKind::InvalidFileName(_)),
                "{name:?}"
            );
            let err = publish_version(&fake, 50, &s.request, &s.options)
                .await
                .unwrap_err();
            assert!(
                matches!(*err.kind, PublishErrorKind::InvalidFileName(_)),
                "{name:?}"
            );
            assert!(fake.calls().is_empty(), "{name:?}: {:?}", fake.calls());
        }
    }

    #[tokio::test]
    async fn without_push_the_draft_is_left_open() {
        let fake = Fake::default();
        let mut s = setup(b"sif bytes");
        s.request.push = false;
        let out = publish_new(&fake, &s.request, &s.options).await.unwrap();
        assert_eq!(out.published, None);
        assert_eq!(out.md5.as_deref(), Some(s.md5.as_str()));
        assert_eq!(fake.drafts(), [out.deposition_id]);
        assert!(crate::runtime::wait_for_cleanups(Duration::from_secs(5)).await);
        assert_eq!(
            fake.drafts(),
            [out.deposition_id],
            "the kept draft was deleted"
        );
    }

    #[tokio::test]
    async fn a_published_file_with_other_bytes_is_an_error_and_stays_published() {
        let fake = Fake::default();
        fake.state().corrupt_on_publish = true;
        let s = setup(b"sif bytes");
        let err = publish_new(&fake, &s.request, &s.options)
            .await
            .unwrap_err();
        assert!(matches!(
            *err.kind,
            PublishErrorKind::ChecksumMismatch { .. }
        ));
        assert!(matches!(err.draft, DraftFate::Published { .. }));
        assert!(!fake.calls().iter().any(|c| c.starts_with("delete")));
    }

    struct Hook(Result<Option<String>, String>, Mutex<Vec<String>>);

    impl UploadHook for Hook {
        fn upload(&self, object_url: &str, _path: &Path) -> Result<Option<String>, String> {
            self.1.lock().unwrap().push(object_url.to_owned());
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn an_upload_hook_replaces_the_upload() {
        let fake = Fake::default();
        let mut s = setup(b"sif bytes");
        s.request.push = false;
        let hook = Arc::new(Hook(Ok(Some("md5:ABC".into())), Mutex::default()));
        let options = PublishOptions {
            upload_hook: Some(hook.clone() as Arc<dyn UploadHook>),
            ..s.options.clone()
        };
        let out = publish_new(&fake, &s.request, &options).await.unwrap();
        let id = out.deposition_id;
        assert_eq!(out.md5.as_deref(), Some("abc"));
        assert_eq!(
            *hook.1.lock().unwrap(),
            [format!("{BASE}/api/files/b{id}/{NAME}")]
        );
        assert!(!fake.calls().iter().any(|c| c.starts_with("upload")));
        // A failing hook fails the publication, and the draft goes.
        let hook = Arc::new(Hook(Err("no space left".into()), Mutex::default()));
        let options = PublishOptions {
            upload_hook: Some(hook as Arc<dyn UploadHook>),
            ..s.options.clone()
        };
        let err = publish_new(&fake, &s.request, &options).await.unwrap_err();
        assert!(matches!(err.draft, DraftFate::Deleted { .. }));
        assert!(crate::errchain::chain(&err).contains("the upload hook failed: no space left"));
    }

    #[tokio::test]
    async fn a_missing_local_file_fails_before_any_call() {
        let fake = Fake::default();
        let mut s = setup(b"sif bytes");
        s.request.path = s.request.path.with_file_name("missing.sif");
        let err = publish_new(&fake, &s.request, &s.options)
            .await
            .unwrap_err();
        assert!(matches!(
            *err.kind,
            PublishErrorKind::Local(TransferError::Open { .. })
        ));
        assert!(crate::errchain::chain(&err).contains("could not open `"));
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn deleting_a_draft_tells_gone_published_and_left_apart() {
        let fake = Fake::default();
        fake.add(7, 1007, true, &[]); // published meanwhile: the fake refuses with 403
        assert_eq!(
            delete_draft(&fake, 7, None).await,
            DraftFate::Published { id: 7 }
        );
        assert_eq!(
            delete_draft(&fake, 8, None).await,
            DraftFate::Deleted { id: 8 }
        ); // gone
        fake.add(9, 1009, false, &[]);
        fake.fail("delete", 500);
        assert!(matches!(
            delete_draft(&fake, 9, None).await,
            DraftFate::NotDeleted { id: 9, .. }
        ));
        assert_eq!(
            delete_draft(&fake, 9, None).await,
            DraftFate::Deleted { id: 9 }
        );
        assert!(fake.state().deps.contains_key(&7));
    }

    #[test]
    fn record_file_urls() {
        assert_eq!(
            record_file_url("https://zenodo.org/", 5, "a b~_-.sif"),
            "https://zenodo.org/record/5/files/a%20b~_-.sif?download=1"
        );
        assert_eq!(
            record_file_url("http://h:1/prefix", 5, NAME),
            format!("http://h:1/prefix/record/5/files/{NAME}?download=1")
        );
    }
}
