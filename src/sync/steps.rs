//! What the orchestrator asks of the outside world, one method per step. The real
//! implementation ([`super::engine_steps::EngineSteps`]) drives the Docker Engine, the
//! registry, the SIF converter, the SIF runner and Zenodo; the orchestrator's decisions
//! (what to skip, what to resume, what goes into the index) are unit-tested against an
//! in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::index::SingularityEntry;

/// A failed step: what failed, in words, with the cause chain already rendered, and for a
/// model test the tail of kipoi's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    /// The last lines of the failing test's log (model tests), for the summary.
    pub log_tail: Option<String>,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            log_tail: None,
        }
    }

    /// From any engine error, its causes rendered once.
    pub fn from_error(err: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(crate::errchain::chain(err))
    }
}

/// A rendered recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Where the Dockerfile was written (`dockerfiles/Dockerfile.<tag>[-slim]`).
    pub path: PathBuf,
    /// sha256 of its text (the image's recipe label).
    pub hash: String,
}

/// An image in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub reference: String,
    pub digest: String,
    pub labels: HashMap<String, String>,
}

/// The outcome of testing models in an image or a SIF: `Err` names the first failing model
/// with its log tail.
pub type TestOutcome = Result<(), StepError>;

/// A converted SIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sif {
    pub path: PathBuf,
    pub md5: String,
    pub size: u64,
}

/// Traceability recorded in a SIF (with the model group and zoo commit the image's own
/// labels carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifSource {
    /// The slim image (index name) and the digest it was pushed with.
    pub image: String,
    pub digest: String,
}

/// Receives the Zenodo steps of a publication as they complete (for the journal).
pub trait PublishSteps: Send + Sync {
    fn draft_created(&self, draft: u64);
    fn file_uploaded(&self, draft: u64, md5: Option<&str>);
}

/// What a publication should do.
#[derive(Clone)]
pub struct PublishJob {
    pub sif: Sif,
    /// The SIF's file name in the record (`<name>.sif`).
    pub file_name: String,
    /// The unit whose record this is (its title and description).
    pub unit: String,
    /// The entry the unit's image has now: publish a new version of its record; `None`: a
    /// new record.
    pub previous: Option<SingularityEntry>,
    /// A draft a killed run left (from the journal).
    pub resume_draft: Option<u64>,
    pub report: Arc<dyn PublishSteps>,
}

impl std::fmt::Debug for PublishJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishJob")
            .field("sif", &self.sif)
            .field("file_name", &self.file_name)
            .field("unit", &self.unit)
            .field("previous", &self.previous)
            .field("resume_draft", &self.resume_draft)
            .finish_non_exhaustive()
    }
}

/// The steps of a sync. Every method is one step; the orchestrator journals its result.
pub trait Steps: Send + Sync {
    /// Renders the Dockerfile of `image` (index name, full or slim) for `unit`.
    fn render(&self, unit: &str, image: &str) -> Result<Recipe, StepError>;

    /// The image `image` (index name) as the registry holds it, if it does.
    fn remote(&self, image: &str)
        -> impl Future<Output = Result<Option<Remote>, StepError>> + Send;

    /// Builds `image` from `recipe`, labelled with `labels` (group, zoo commit, content).
    fn build(
        &self,
        image: &str,
        recipe: &Recipe,
        labels: &HashMap<String, String>,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Tests `models` in the local image `image`.
    fn test_image(
        &self,
        image: &str,
        models: &[String],
    ) -> impl Future<Output = TestOutcome> + Send;

    /// Pushes the local `image` to the registry; returns what the registry holds.
    fn push(&self, image: &str) -> impl Future<Output = Result<Remote, StepError>> + Send;

    /// Makes `image` (index name) present locally, pulling it from the registry (by
    /// `digest` when given) if it is not.
    fn ensure_local(
        &self,
        image: &str,
        digest: Option<&str>,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// What identifies the content of `image` (one a recipe starts `FROM`): its local image
    /// id. With `pull`, the image is pulled first (an image this tool does not build, like
    /// the base recipe's miniconda: a new upstream release is picked up; when the pull
    /// fails, a local copy is used with a warning); without, the local image is used.
    fn image_identity(
        &self,
        image: &str,
        pull: bool,
    ) -> impl Future<Output = Result<String, StepError>> + Send;

    /// Converts the local `image` into a SIF named `file_name` in the work directory.
    fn convert(
        &self,
        image: &str,
        file_name: &str,
        source: &SifSource,
    ) -> impl Future<Output = Result<Sif, StepError>> + Send;

    /// Tests `models` in the SIF.
    fn test_sif(&self, sif: &Path, models: &[String]) -> impl Future<Output = TestOutcome> + Send;

    /// Publishes the SIF (new record or new version, resuming a draft); returns the entry.
    fn publish(
        &self,
        job: PublishJob,
    ) -> impl Future<Output = Result<SingularityEntry, StepError>> + Send;

    /// Removes a SIF that is no longer needed (published, or unchanged).
    fn discard_sif(&self, sif: &Path);

    /// Writes the zoo's copies of `model-to-docker.json` and `model-to-singularity.json`
    /// (the `changes`, applied to what the zoo holds now); returns what was done, in words.
    fn write_back(
        &self,
        changes: &super::IndexChanges,
        index: &crate::index::Index,
    ) -> impl Future<Output = Result<Option<String>, StepError>> + Send;
}
