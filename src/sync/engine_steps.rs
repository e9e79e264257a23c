//! The real steps of a sync: the Docker Engine (build, test, push, pull), the registry
//! (what is already pushed), the SIF converter and runner, Zenodo (publish), and the zoo's
//! write-back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::steps::{
    PublishJob, PublishSteps, Recipe, Remote, Sif, SifSource, StepError, Steps, TestOutcome,
};
use crate::docker::{Credentials, Engine, RegistryReader, TestOptions};
use crate::index::{Index, SingularityEntry};
use crate::recipes::{ImageRecipe, RecipeOptions};
use crate::zenodo::metadata::RecordText;
use crate::zenodo::publish::{PublishOptions, PublishReport, PublishRequest, PublishedEntry};
use crate::zenodo::ZenodoClient;

/// Where the real steps build, push, test and publish.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The repository images are pushed to (`KIPOI_DOCKER_REPO`), e.g.
    /// `127.0.0.1:5000/kipoi/kipoi-docker`; the index keeps `kipoi/kipoi-docker:` names.
    pub registry: String,
    /// How recipes are made (templates, environment files, base and build images).
    pub recipes: RecipeOptions,
    /// Where rendered Dockerfiles are written (`dockerfiles/`).
    pub dockerfiles_dir: PathBuf,
    /// Where SIFs are built: the journal's `sif/`, a work directory of the run's own
    /// ([`super::journal::prepare_workdir`]); never `SINGULARITY_PULL_FOLDER`, where users
    /// keep the SIFs they downloaded.
    pub work_dir: PathBuf,
    /// The zoo checkout model tests run against (read-only, offline); `None`: upstream's
    /// `kipoi test MODEL --source=kipoi`.
    pub test_zoo: Option<PathBuf>,
    /// Model tests run at once.
    pub test_concurrency: usize,
    /// Longest a model test may run.
    pub test_timeout: Option<Duration>,
}

/// The real steps.
pub struct EngineSteps {
    engine: Engine,
    settings: EngineSettings,
    credentials: Option<Credentials>,
    registry: RegistryReader,
    zenodo: ZenodoClient,
    /// `model-to-singularity.json` keys and SIF names at the start (record texts).
    sif_names: Vec<(String, String)>,
    /// The index at the start: which images are shared (never rendered from a group's
    /// template).
    index: Index,
    write_back: Box<dyn WriteBack>,
    progress: super::progress::Progress,
    /// The recipes rendered so far, by image: what [`Steps::build`] builds (text and
    /// context files from memory).
    rendered: std::sync::Mutex<HashMap<String, Arc<ImageRecipe>>>,
}

/// Writes the index back to the zoo (GitHub or a local checkout).
pub trait WriteBack: Send + Sync {
    fn write<'a>(
        &'a self,
        changes: &'a super::IndexChanges,
        index: &'a Index,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, StepError>> + Send + 'a>,
    >;
}

impl EngineSteps {
    /// Connects to the engine; credentials from `DOCKER_USERNAME`/`DOCKER_PASSWORD`, Zenodo
    /// from `zenodo` (its base URL and token).
    pub fn new(
        engine: Engine,
        settings: EngineSettings,
        zenodo: ZenodoClient,
        index: &Index,
        write_back: Box<dyn WriteBack>,
    ) -> Result<Self, StepError> {
        let credentials = Credentials::from_env();
        let registry =
            RegistryReader::new(credentials.clone()).map_err(|e| StepError::from_error(&e))?;
        // The SIFs are built in a directory of the run's own (removed when its journal is
        // finished), never in one of the user's: a SIF there of the same name would be
        // replaced, then removed.
        super::journal::prepare_workdir(&settings.work_dir)
            .map_err(|e| StepError::from_error(&e))?;
        let dir = &settings.dockerfiles_dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            StepError::new(format!(
                "could not create the directory `{}`: {e}",
                dir.display()
            ))
        })?;
        let sif_names = index
            .model_to_singularity
            .0
            .iter()
            .map(|(k, e)| (k.as_str().to_owned(), e.name.as_str().to_owned()))
            .collect();
        Ok(Self {
            engine,
            settings,
            credentials,
            registry,
            zenodo,
            sif_names,
            index: index.clone(),
            write_back,
            progress: super::progress::Progress::for_stderr(),
            rendered: std::sync::Mutex::default(),
        })
    }

    /// `registry:tag` for an index name `kipoi/kipoi-docker:tag`.
    fn registry_ref(&self, image: &str) -> (String, String) {
        let tag = crate::names::split_image(image)
            .1
            .unwrap_or("latest")
            .to_owned();
        (self.settings.registry.clone(), tag)
    }

    fn test_options(&self) -> TestOptions {
        TestOptions {
            zoo_dir: self.settings.test_zoo.clone(),
            network: false,
            extra_args: None,
            timeout: self.settings.test_timeout,
        }
    }
}

fn step_err(err: &(dyn std::error::Error + 'static)) -> StepError {
    StepError::from_error(err)
}

/// The outcome of a model test run in `place` (an image, a SIF): the first failure (with
/// kipoi's log tail) or engine error, else success.
fn outcome_of<E: std::error::Error + 'static>(
    results: Vec<Result<crate::docker::ModelTestResult, E>>,
    place: &str,
) -> TestOutcome {
    let count = results.len();
    for result in results {
        match result {
            Ok(r) if r.passed => {}
            Ok(r) => {
                return Err(StepError {
                    message: format!(
                        "model `{}` failed its test in {place} (exit code {})",
                        r.model, r.exit_code
                    ),
                    log_tail: Some(tail(&r.log_tail, 12)),
                })
            }
            Err(e) => return Err(step_err(&e)),
        }
    }
    log::info!("{count} model(s) passed in {place}");
    Ok(())
}

impl Steps for EngineSteps {
    fn render(&self, unit: &str, image: &str) -> Result<Recipe, StepError> {
        // The index's recipe of an image it knows (a shared image: its environment file,
        // never a group's template); a new group's image from the group templates.
        let recipe = crate::recipes::recipe_for_update(
            &self.index,
            image,
            Some(unit),
            &self.settings.recipes,
        )
        .map_err(|e| step_err(&e))?;
        let path = crate::recipes::write_recipe(&self.settings.dockerfiles_dir, &recipe)
            .map_err(|e| step_err(&e))?;
        let hash = recipe.hash.clone();
        self.rendered
            .lock()
            .map_err(|_| StepError::new("internal: the recipe cache is poisoned"))?
            .insert(image.to_owned(), Arc::new(recipe));
        Ok(Recipe { path, hash })
    }

    async fn remote(&self, image: &str) -> Result<Option<Remote>, StepError> {
        let (repo, tag) = self.registry_ref(image);
        let reference = format!("{repo}:{tag}");
        let found = self
            .registry
            .image(&reference)
            .await
            .map_err(|e| step_err(&e))?;
        Ok(found.map(|r| Remote {
            reference,
            digest: r.digest,
            labels: r.labels,
        }))
    }

    async fn build(
        &self,
        image: &str,
        recipe: &Recipe,
        labels: &HashMap<String, String>,
    ) -> Result<(), StepError> {
        let rendered = self
            .rendered
            .lock()
            .map_err(|_| StepError::new("internal: the recipe cache is poisoned"))?
            .get(image)
            .cloned()
            .filter(|r| r.hash == recipe.hash)
            .ok_or_else(|| {
                StepError::new(format!(
                    "internal: `{image}` is built from a recipe that was not rendered in this run"
                ))
            })?;
        log::info!("building `{image}` from `{}`", recipe.path.display());
        let bar = self.progress.spinner(&format!("building `{image}`"));
        let mut on_line = |line: &str| {
            if line.starts_with("Step ") {
                bar.set_message(line);
            }
            log::debug!("[build {image}] {line}");
        };
        self.engine
            .build_recipe(&rendered, labels, false, &mut on_line)
            .await
            .map(drop)
            .map_err(|e| step_err(&e))
    }

    async fn test_image(&self, image: &str, models: &[String]) -> TestOutcome {
        let _bar = self
            .progress
            .spinner(&format!("testing {} model(s) in `{image}`", models.len()));
        let results = self
            .engine
            .test_models(
                image,
                models,
                &self.test_options(),
                self.settings.test_concurrency.max(1),
            )
            .await;
        outcome_of(results, &format!("`{image}`"))
    }

    async fn push(&self, image: &str) -> Result<Remote, StepError> {
        let (repo, tag) = self.registry_ref(image);
        let mut on_progress = |status: &str, _detail: &str| log::debug!("[push {image}] {status}");
        let pushed = self
            .engine
            .push(
                image,
                &repo,
                &tag,
                self.credentials.as_ref(),
                &mut on_progress,
            )
            .await
            .map_err(|e| step_err(&e))?;
        let labels = self
            .engine
            .image_labels(image)
            .await
            .map_err(|e| step_err(&e))?;
        Ok(Remote {
            reference: pushed.reference,
            digest: pushed.digest,
            labels,
        })
    }

    async fn ensure_local(&self, image: &str, digest: Option<&str>) -> Result<(), StepError> {
        self.engine
            .ensure_local(
                image,
                &self.settings.registry,
                digest,
                self.credentials.as_ref(),
            )
            .await
            .map_err(|e| step_err(&e))
    }

    async fn image_identity(&self, image: &str, pull: bool) -> Result<String, StepError> {
        if pull {
            log::info!("pulling `{image}` (a recipe starts FROM it)");
            if let Err(e) = self.engine.pull(image, None).await {
                if self.engine.image_id(image).await.is_err() {
                    return Err(step_err(&e));
                }
                log::warn!(
                    "could not pull `{image}` ({}); using the local copy",
                    crate::errchain::chain(&e)
                );
            }
        }
        self.engine.image_id(image).await.map_err(|e| step_err(&e))
    }

    async fn convert(
        &self,
        image: &str,
        file_name: &str,
        source: &SifSource,
    ) -> Result<Sif, StepError> {
        let out = self.settings.work_dir.join(file_name);
        let _bar = self
            .progress
            .spinner(&format!("converting `{image}` to `{file_name}`"));
        // The model group and zoo commit come from the image's own labels (what it was built
        // for), so an unchanged image converts to the same bytes in any later run.
        let opts = crate::sif::ConvertOptions {
            source_image: Some(source.image.clone()),
            source_digest: Some(source.digest.clone()).filter(|d| !d.is_empty()),
            ..crate::sif::ConvertOptions::default()
        };
        let report = crate::sif::convert_image(&self.engine, image, &out, opts)
            .await
            .map_err(|e| step_err(&e))?;
        Ok(Sif {
            path: report.path,
            md5: report.md5,
            size: report.size,
        })
    }

    async fn test_sif(&self, sif: &Path, models: &[String]) -> TestOutcome {
        let _bar = self.progress.spinner(&format!(
            "testing {} model(s) in the SIF `{}`",
            models.len(),
            sif.display()
        ));
        let results = crate::sif::run::test_models(
            sif,
            models,
            &self.test_options(),
            self.settings.test_concurrency.max(1),
        )
        .await;
        outcome_of(results, &format!("the SIF `{}`", sif.display()))
    }

    async fn publish(&self, job: PublishJob) -> Result<SingularityEntry, StepError> {
        let text = RecordText::for_image(
            &job.file_name,
            &job.unit,
            self.sif_names.iter().map(|(k, n)| (k.as_str(), n.as_str())),
        );
        let request = PublishRequest {
            path: job.sif.path.clone(),
            file_name: job.file_name.clone(),
            text,
            publication_date: crate::zenodo::metadata::today_utc(),
            push: true,
        };
        let bar = self
            .progress
            .bytes(&format!("uploading `{}`", job.file_name));
        let options = PublishOptions {
            resume_draft: job.resume_draft,
            progress: bar.as_transfer_progress(),
            report: Some(Arc::new(Journaled(Arc::clone(&job.report)))),
            ..PublishOptions::default()
        };
        let record = job
            .previous
            .as_ref()
            .and_then(|p| crate::zenodo::record_id_from_url(p.url.as_str()));
        let outcome = match record {
            Some(record) => {
                crate::zenodo::publish::publish_version(&self.zenodo, record, &request, &options)
                    .await
            }
            None => crate::zenodo::publish::publish_new(&self.zenodo, &request, &options).await,
        }
        .map_err(|e| step_err(&e))?;
        let published: PublishedEntry = outcome.published.ok_or_else(|| {
            StepError::new(format!(
                "`{}` was uploaded but not published (draft `{}`)",
                job.file_name, outcome.deposition_id
            ))
        })?;
        published.to_index_entry().map_err(|reason| {
            StepError::new(format!(
                "Zenodo published `{}` but its entry is not valid in the index: {reason}",
                job.file_name
            ))
        })
    }

    fn discard_sif(&self, sif: &Path) {
        if let Err(e) = std::fs::remove_file(sif) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("could not remove `{}`: {e}", sif.display());
            }
        }
    }

    async fn write_back(
        &self,
        changes: &super::IndexChanges,
        index: &Index,
    ) -> Result<Option<String>, StepError> {
        self.write_back.write(changes, index).await
    }
}

/// Forwards Zenodo's step reports to the journal.
struct Journaled(Arc<dyn PublishSteps>);

impl PublishReport for Journaled {
    fn draft_created(&self, draft_id: u64) {
        self.0.draft_created(draft_id);
    }
    fn file_uploaded(&self, draft_id: u64, _file_name: &str, md5: Option<&str>) {
        self.0.file_uploaded(draft_id, md5);
    }
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The write-back of a sync: the zoo's `model-to-docker.json` and `model-to-singularity.json`
/// receive the changed keys (applied to what the zoo holds, so concurrent edits of other keys
/// survive), on branch `update-json`, with a pull request on GitHub.
pub struct ZooWriteBack {
    pub zoo: Arc<crate::zoo::Zoo>,
}

impl WriteBack for ZooWriteBack {
    fn write<'a>(
        &'a self,
        changes: &'a super::IndexChanges,
        _index: &'a Index,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, StepError>> + Send + 'a>,
    > {
        Box::pin(async move {
            use crate::zoo::{FileUpdate, IndexEdit, WriteOptions};
            let mut m2d = IndexEdit::new();
            for (key, image) in &changes.model_to_docker {
                m2d = match image {
                    Some(image) => m2d.set(key, serde_json::Value::String(image.clone())),
                    None => m2d.remove(key),
                };
            }
            let mut m2s = IndexEdit::new();
            for (key, entry) in &changes.model_to_singularity {
                m2s = match entry {
                    Some(entry) => {
                        let value = serde_json::to_value(entry).map_err(|e| {
                            StepError::new(format!("cannot write the entry of `{key}`: {e}"))
                        })?;
                        m2s.set(key, value)
                    }
                    None => m2s.remove(key),
                };
            }
            let mut files = Vec::new();
            if !m2d.is_empty() {
                files.push(FileUpdate::edit(
                    FileUpdate::index_path(crate::index::MODEL_TO_DOCKER),
                    m2d,
                ));
            }
            if !m2s.is_empty() {
                files.push(FileUpdate::edit(
                    FileUpdate::index_path(crate::index::MODEL_TO_SINGULARITY),
                    m2s,
                ));
            }
            if files.is_empty() {
                return Ok(None);
            }
            let report = self
                .zoo
                .write_back(&files, &WriteOptions::default())
                .await
                .map_err(|e| step_err(&e))?;
            Ok(Some(report.summary()))
        })
    }
}
