//! The sync: executes the plan, crash-safe.
//!
//! ```text
//!  zoo ──plan──▶ units (bounded concurrency) ──verified results──▶ index files ──▶ zoo branch + PR ──▶ hash
//!                 │  update-image: render, build, test, push (full, slim), convert the slim image
//!                 │                to SIF, test it, publish a new Zenodo version (or keep an
//!                 │                unchanged one)
//!                 │  add-group:    the shared images first (every model must pass), else its own
//!                 │                image as above with a new record
//!                 │  retest-shared: test in the shared image, else add-group without it
//!                 │  remove-group: drop its entries
//!                 └─ every completed step is journaled before the next starts ([`journal`])
//! ```
//!
//! - A unit whose image in the registry carries the same content hash and recipes is not
//!   rebuilt; a step the journal holds for the same inputs is not redone (no second push,
//!   no second Zenodo record after a crash).
//! - The index is rewritten only from verified results (pushed images, published and
//!   checked SIFs); a failing unit fails alone and keeps its old entries.
//! - `kipoi-model-repo-hash` moves to the zoo's head only when every action succeeded (and
//!   the whole plan ran: not with `--only`, not with `--no-push`).

pub mod apply;
pub mod engine_steps;
pub mod journal;
pub mod progress;
pub mod release;
pub mod steps;
pub mod summary;
#[cfg(test)]
mod tests;
pub mod unit;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt as _;

pub use apply::IndexChanges;
pub use steps::{StepError, Steps};
pub use summary::{SummaryRow, SyncReport};

use crate::index::{Index, IndexError};
use crate::plan::{ActionKind, Plan};
use crate::zoo::{Zoo, ZooError};

/// What a sync does and where its state lives.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The zoo commit the index reflects; `None`: the content of `hash_file`.
    pub from: Option<String>,
    /// The zoo revision to sync to; `None`: the default branch's head.
    pub to: Option<String>,
    /// The directory of the three index files.
    pub container_info: PathBuf,
    /// `kipoi-model-repo-hash`.
    pub hash_file: PathBuf,
    /// Only these units (a group, or a model key); empty: all.
    pub only: Vec<String>,
    /// Push images and publish SIFs; `false` builds and tests only (nothing recorded).
    pub push: bool,
    /// Units processed at once (model tests inside a unit use the steps' own bound).
    pub concurrency: usize,
    /// Where the journal lives (`.kipoi-sync/`).
    pub journal_dir: PathBuf,
    /// Discard the journal's recorded steps first (a pending write-back to the zoo is kept:
    /// this run does it).
    pub restart: bool,
}

/// Why a sync could not run (a failing unit is not one: it is a row of the report).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Zoo(#[from] ZooError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("could not read the stored zoo commit from `{}`; pass --from, or run where `kipoi-model-repo-hash` is", path.display())]
    ReadHash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is empty; it must hold the zoo commit the index reflects", path.display())]
    EmptyHash { path: PathBuf },
    #[error("this sync needs {}; set {} in the environment (nothing was done)", .0.join(", "), if .0.len() == 1 { "it" } else { "them" })]
    MissingSecrets(Vec<String>),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error("writing the index back to the zoo failed (the local index is updated; re-run to retry): {0}")]
    WriteBack(StepError),
    #[error(transparent)]
    Write(#[from] crate::fsutil::AtomicWriteError),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error(transparent)]
    Zenodo(#[from] crate::zenodo::ZenodoError),
    #[error("could not set up the sync: {0}")]
    Setup(StepError),
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    #[error(transparent)]
    Recipe(#[from] crate::recipes::RecipeError),
}

/// The directory inside the journal's where a sync or release builds its SIFs.
pub const SIF_WORKDIR: &str = "sif";

/// A sync as the CLI and Python call it: every field optional, defaults from the
/// environment ([`crate::config`]). No `Debug` on purpose: the URLs and the zoo are the
/// user's text and may carry a credential; log them through [`crate::redact::RedactedUrl`].
#[derive(Clone, Default)]
pub struct SyncArgs {
    pub zoo: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub container_info: Option<PathBuf>,
    pub hash_file: Option<PathBuf>,
    pub registry: Option<String>,
    pub base_image: Option<String>,
    /// The image the base recipe starts from (`KIPOI_BUILD_IMAGE`; a release builds the base).
    pub build_image: Option<String>,
    /// A directory with `Dockerfile.template` and `Dockerfile-slim.template` (and any other
    /// template, e.g. `Dockerfile-base.template`, replacing the compiled-in one).
    pub templates: Option<PathBuf>,
    /// A directory of environment files replacing the compiled-in ones (shared images, base).
    pub envfiles: Option<PathBuf>,
    pub zenodo_url: Option<String>,
    pub github_api_url: Option<String>,
    pub only: Vec<String>,
    pub no_push: bool,
    pub concurrency: Option<usize>,
    pub journal: Option<PathBuf>,
    pub restart: bool,
    /// Where rendered Dockerfiles go (default `./dockerfiles`).
    pub dockerfiles_dir: Option<PathBuf>,
    /// The zoo checkout model tests run against (default: the synced commit of a local zoo,
    /// else `KIPOI_MODEL_REPO` naming a directory, else `--source=kipoi`).
    pub test_zoo: Option<PathBuf>,
    pub docker_host: Option<String>,
    /// Longest a model test may run, in seconds.
    pub test_timeout: Option<std::time::Duration>,
}

impl SyncArgs {
    /// The options, defaults resolved.
    #[must_use]
    pub fn options(&self) -> SyncOptions {
        SyncOptions {
            from: self.from.clone(),
            to: self.to.clone(),
            container_info: crate::config::container_info(self.container_info.as_deref()),
            hash_file: crate::config::hash_file(self.hash_file.as_deref()),
            only: self.only.clone(),
            push: !self.no_push,
            concurrency: self.concurrency.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
            }),
            journal_dir: self
                .journal
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_JOURNAL)),
            restart: self.restart,
        }
    }

    /// How recipes are made: templates, environment files, base and build images.
    #[must_use]
    pub fn recipe_options(&self) -> crate::recipes::RecipeOptions {
        crate::recipes::RecipeOptions::configured(
            self.templates.clone(),
            self.envfiles.clone(),
            self.base_image.as_deref(),
            self.build_image.as_deref(),
        )
    }

    /// The settings of the real steps, given where SIFs go and which zoo tests read.
    fn engine_settings(
        &self,
        opts: &SyncOptions,
        test_zoo: Option<PathBuf>,
    ) -> engine_steps::EngineSettings {
        engine_steps::EngineSettings {
            registry: crate::config::docker_repository(self.registry.as_deref()),
            recipes: self.recipe_options(),
            dockerfiles_dir: self
                .dockerfiles_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("dockerfiles")),
            // The journal's own directory: never `SINGULARITY_PULL_FOLDER` (the user's
            // downloaded SIFs, which a build of the same name would replace, then remove).
            work_dir: opts.journal_dir.join(SIF_WORKDIR),
            test_zoo,
            test_concurrency: opts.concurrency,
            test_timeout: self.test_timeout,
        }
    }

    /// The real steps of a sync or a release (Docker Engine, registry, SIF, Zenodo, the
    /// zoo's write-back). Model tests read `--test-zoo`, else a local zoo exported at
    /// `zoo_commit`, else what [`crate::config::test_zoo`] says.
    async fn real_steps(
        &self,
        opts: &SyncOptions,
        zoo: &Arc<Zoo>,
        zoo_commit: &str,
        index: &Index,
    ) -> Result<engine_steps::EngineSteps, SyncError> {
        let test_zoo = match (&**zoo, &self.test_zoo) {
            (_, Some(dir)) => Some(dir.clone()),
            (Zoo::Local(local), None) => {
                let commit = local.resolve(Some(zoo_commit)).await?;
                Some(export_test_zoo(local, &commit, &opts.journal_dir).await?)
            }
            (Zoo::GitHub(_), None) => crate::config::test_zoo(None),
        };
        let engine = crate::docker::Engine::connect(self.docker_host.as_deref()).await?;
        let zenodo = crate::zenodo::ZenodoClient::new(crate::zenodo::ZenodoConfig::from_env(
            self.zenodo_url.as_deref(),
            None,
        )?)?;
        engine_steps::EngineSteps::new(
            engine,
            self.engine_settings(opts, test_zoo),
            zenodo,
            index,
            Box::new(engine_steps::ZooWriteBack {
                zoo: Arc::clone(zoo),
            }),
        )
        .map_err(SyncError::Setup)
    }

    /// Opens the zoo these arguments name.
    pub async fn open_zoo(&self) -> Result<Zoo, SyncError> {
        Ok(Zoo::open(
            &crate::config::zoo(self.zoo.as_deref()),
            self.github_api_url.as_deref(),
        )
        .await?)
    }
}

/// Plans a sync from arguments (touches nothing).
pub async fn plan_configured(args: &SyncArgs) -> Result<Plan, SyncError> {
    let opts = args.options();
    let zoo = args.open_zoo().await?;
    let index = Index::load(&opts.container_info)?;
    Ok(plan(&opts, &zoo, &index).await?.0)
}

/// Runs a sync from arguments with the real steps (Docker Engine, registry, SIF, Zenodo,
/// the zoo's write-back).
pub async fn run_configured(args: &SyncArgs) -> Result<SyncReport, SyncError> {
    let opts = args.options();
    let zoo = Arc::new(args.open_zoo().await?);
    let index = Index::load(&opts.container_info)?;
    let (plan, tree) = plan(&opts, &zoo, &index).await?;
    let missing = missing_secrets(&plan, opts.push, matches!(*zoo, Zoo::GitHub(_)));
    if !missing.is_empty() {
        return Err(SyncError::MissingSecrets(missing));
    }
    if plan.actions.is_empty() {
        let write_back = engine_steps::ZooWriteBack {
            zoo: Arc::clone(&zoo),
        };
        return nothing_to_do(&opts, &plan, &index, |changes| {
            let (write_back, index) = (&write_back, &index);
            async move { engine_steps::WriteBack::write(write_back, &changes, index).await }
        })
        .await;
    }
    let steps = args.real_steps(&opts, &zoo, &plan.to, &index).await?;
    execute(&opts, &plan, &tree, index, &steps).await
}

/// A release as the CLI and Python call it: the sync's arguments (`only` names images) and
/// where a shard writes its results.
#[derive(Clone, Default)]
pub struct ReleaseArgs {
    pub sync: SyncArgs,
    /// Write the results to this file instead of the index (one shard of a release; see
    /// [`merge_results`]).
    pub fragment: Option<PathBuf>,
}

/// The journal of a release (apart from the sync's: finishing one never drops the other's).
pub const DEFAULT_RELEASE_JOURNAL: &str = ".kipoi-release";

/// The images a release would rebuild, level by level (touches nothing).
pub fn release_plan(args: &ReleaseArgs) -> Result<Vec<Vec<release::ReleaseItem>>, SyncError> {
    let opts = args.sync.options();
    let index = Index::load(&opts.container_info)?;
    let recipes = crate::recipes::recipes_for_index(&index, &args.sync.recipe_options())?;
    Ok(release::plan_release(
        release::release_levels(&index, &recipes)?,
        &opts.only,
    )?)
}

/// Runs a release from arguments with the real steps: every image (or `only` those) rebuilt
/// in dependency order from its recipe, tested, pushed, converted and published; the index
/// updated and written back to the zoo — or, with a fragment, the results written there.
pub async fn release_configured(args: &ReleaseArgs) -> Result<SyncReport, SyncError> {
    let mut sync_args = args.sync.clone();
    if sync_args.journal.is_none() {
        sync_args.journal = Some(PathBuf::from(DEFAULT_RELEASE_JOURNAL));
    }
    let opts = sync_args.options();
    let levels = release_plan(&ReleaseArgs {
        sync: sync_args.clone(),
        fragment: args.fragment.clone(),
    })?;
    let index = Index::load(&opts.container_info)?;
    let zoo = Arc::new(sync_args.open_zoo().await?);
    let writes_to_github = args.fragment.is_none() && matches!(*zoo, Zoo::GitHub(_));
    let missing = missing_for(true, opts.push, writes_to_github, |vars| {
        crate::redact::Secret::from_env(vars).is_some()
    });
    if !missing.is_empty() {
        return Err(SyncError::MissingSecrets(missing));
    }
    // The index reflects the stored zoo commit: labels name it, tests read the zoo there.
    let zoo_commit = stored_hash(&opts.hash_file)?;
    let steps = sync_args
        .real_steps(&opts, &zoo, &zoo_commit, &index)
        .await?;
    let release_opts = release::ReleaseOptions {
        only: opts.only.clone(),
        push: opts.push,
        concurrency: opts.concurrency,
        journal_dir: opts.journal_dir.clone(),
        restart: opts.restart,
        container_info: opts.container_info.clone(),
        fragment: args.fragment.clone(),
    };
    log::info!(
        "release of {} image(s) in {} level(s)",
        levels.iter().map(Vec::len).sum::<usize>(),
        levels.len()
    );
    release::run(&release_opts, levels, index, &zoo_commit, &steps).await
}

/// Applies the result fragments of a sharded release (`dir/*.json`) to the index, in a
/// deterministic order, and writes the index back to the zoo (compare-and-swap) — the last
/// job of a release run as GitHub Actions matrix jobs. A failed shard's images keep their
/// entries.
pub async fn merge_results(
    args: &SyncArgs,
    dir: &std::path::Path,
) -> Result<SyncReport, SyncError> {
    let opts = args.options();
    let fragments = release::read_fragments(dir)?;
    // The write-back needs the zoo (and on GitHub a token): checked before the index moves.
    let zoo = if opts.push {
        let zoo = Arc::new(args.open_zoo().await?);
        let missing = missing_for(false, true, matches!(*zoo, Zoo::GitHub(_)), |vars| {
            crate::redact::Secret::from_env(vars).is_some()
        });
        if !missing.is_empty() {
            return Err(SyncError::MissingSecrets(missing));
        }
        Some(zoo)
    } else {
        None
    };
    let (changes, rows) = release::merged_changes(fragments);
    let index = Index::load(&opts.container_info)?;
    let mut updated = index.clone();
    let index_changes = apply::apply(&mut updated, &changes)?;
    let failed = rows.iter().filter(|r| r.result != "ok").count();
    let mut report = SyncReport {
        zoo: "release".into(),
        from: String::new(),
        to: String::new(),
        rows,
        index_written: false,
        write_back: None,
        hash_moved: false,
        hash_note: Some("a release does not move the zoo commit".into()),
        journal: None,
    };
    if failed > 0 {
        log::warn!("{failed} image(s) of the release failed: their entries are kept");
    }
    let Some(zoo) = zoo else {
        report.index_written = save_if_changed(&index_changes, &updated, &opts.container_info)?;
        return Ok(report);
    };
    // A write-back that fails is kept in the journal for the next merge-results.
    let journal = journal::Journal::open(
        args.journal
            .as_deref()
            .unwrap_or(std::path::Path::new(DEFAULT_RELEASE_JOURNAL)),
        false,
    )?;
    let write_back = engine_steps::ZooWriteBack { zoo };
    (report.index_written, report.write_back) = save_and_write_back(
        &journal,
        &index_changes,
        &updated,
        &opts.container_info,
        true,
        |changes| {
            let (write_back, updated) = (&write_back, &updated);
            async move { engine_steps::WriteBack::write(write_back, &changes, updated).await }
        },
    )
    .await?;
    journal.finish_if_empty()?;
    Ok(report)
}

/// Saves `updated` into `container_info` when `changes` changed it; whether it did.
fn save_if_changed(
    changes: &IndexChanges,
    updated: &Index,
    container_info: &std::path::Path,
) -> Result<bool, SyncError> {
    let changed = !changes.is_empty();
    if changed {
        updated.save(container_info)?;
    }
    Ok(changed)
}

/// Saves `updated` into `container_info` when `changes` changed it, and writes the zoo's
/// copies back with `write`. The changes to write (with any write-back an earlier run left
/// pending) are recorded in the journal before the index is saved and cleared once `write`
/// succeeded, so a failed or interrupted write-back is done by the next run even though the
/// local index then has nothing new. Without `push` (`--no-push`: nothing leaves this
/// machine) the zoo is not written, and a pending write-back stays pending for a run that
/// pushes. Returns whether the index was written, and what `write` did.
async fn save_and_write_back<F, Fut>(
    journal: &journal::Journal,
    changes: &IndexChanges,
    updated: &Index,
    container_info: &std::path::Path,
    push: bool,
    write: F,
) -> Result<(bool, Option<String>), SyncError>
where
    F: FnOnce(IndexChanges) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, StepError>>,
{
    if !push {
        return Ok((save_if_changed(changes, updated, container_info)?, None));
    }
    let to_write = match journal.pending_write_back() {
        Some(pending) => pending.then(changes.clone()),
        None => changes.clone(),
    };
    if to_write.touches_zoo() {
        journal.set_pending_write_back(Some(to_write.clone()))?;
    }
    let index_written = save_if_changed(changes, updated, container_info)?;
    if !to_write.touches_zoo() {
        return Ok((index_written, None));
    }
    let done = write(to_write).await.map_err(SyncError::WriteBack)?;
    journal.set_pending_write_back(None)?;
    Ok((index_written, done))
}

/// The zoo at `commit` as a directory model tests read (`<journal>/zoo-<commit>`): a work
/// directory of the run ([`journal::begin_workdir`]), exported once, so an interrupted export
/// is never taken for a complete one, and removed with the journal. A `zoo-<commit>` there
/// that this tool did not make is refused, never removed.
async fn export_test_zoo(
    local: &crate::zoo::LocalZoo,
    commit: &str,
    journal_dir: &std::path::Path,
) -> Result<PathBuf, SyncError> {
    let dir = journal_dir.join(format!("zoo-{}", short(commit)));
    if let Some(partial) = journal::begin_workdir(&dir)? {
        local.export(commit, &partial).await?;
        journal::complete_workdir(&partial, &dir)?;
    }
    Ok(dir)
}

/// Whether a run completed the whole work it was given (every unit succeeded, nothing left
/// out by `--only` or `--no-push`): only then is its journal finished (sync and release).
fn completes_the_work(failed: usize, only: &[String], push: bool) -> bool {
    failed == 0 && only.is_empty() && push
}

/// The report of a sync with nothing to build, test or remove: the hash moves to the zoo's
/// head (nothing to wait for), unless only part of the plan was asked for. A write-back to
/// the zoo an earlier run left in the journal is done first (with `write`), and the hash
/// moves only once it succeeded: its entries are already in the local index, so no plan
/// brings them back (a removed group's keys leave the plan empty).
async fn nothing_to_do<F, Fut>(
    opts: &SyncOptions,
    plan: &Plan,
    index: &Index,
    write: F,
) -> Result<SyncReport, SyncError>
where
    F: FnOnce(IndexChanges) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, StepError>>,
{
    let mut report = SyncReport {
        zoo: plan.zoo.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        rows: Vec::new(),
        index_written: false,
        write_back: None,
        hash_moved: false,
        hash_note: None,
        journal: None,
    };
    if opts.push && opts.journal_dir.join(journal::JOURNAL_FILE).is_file() {
        let journal = journal::Journal::open(&opts.journal_dir, opts.restart)?;
        (_, report.write_back) = save_and_write_back(
            &journal,
            &IndexChanges::default(),
            index,
            &opts.container_info,
            true,
            write,
        )
        .await?;
        journal.finish_if_empty()?;
    }
    if plan.from == plan.to {
        report.hash_note = Some("already at the zoo's head".into());
    } else if opts.only.is_empty() && opts.push {
        crate::fsutil::write_atomic(&opts.hash_file, format!("{}\n", plan.to).as_bytes())?;
        report.hash_moved = true;
    } else {
        report.hash_note = Some("--only/--no-push: the hash moves only with a full sync".into());
    }
    Ok(report)
}

/// A secret a sync may need, and when.
struct Need {
    what: &'static str,
    vars: &'static [&'static str],
}

/// The environment variables this plan needs that are not set, named for the user.
#[must_use]
pub fn missing_secrets(plan: &Plan, push: bool, writes_to_github: bool) -> Vec<String> {
    missing_secrets_in(plan, push, writes_to_github, |vars| {
        crate::redact::Secret::from_env(vars).is_some()
    })
}

/// [`missing_secrets`] with `is_set` telling whether one of some variables is set.
pub fn missing_secrets_in(
    plan: &Plan,
    push: bool,
    writes_to_github: bool,
    is_set: impl Fn(&[&str]) -> bool,
) -> Vec<String> {
    let builds = plan
        .actions
        .iter()
        .any(|a| a.kind != ActionKind::RemoveGroup);
    missing_for(
        builds,
        push,
        writes_to_github && !plan.actions.is_empty(),
        is_set,
    )
}

/// The secrets missing for work that `builds` (pushes images, publishes SIFs when `push`)
/// and `writes_to_github` (the zoo's write-back, when `push`).
fn missing_for(
    builds: bool,
    push: bool,
    writes_to_github: bool,
    is_set: impl Fn(&[&str]) -> bool,
) -> Vec<String> {
    let mut needs = Vec::new();
    if push && builds {
        needs.push(Need {
            what: "DOCKER_USERNAME",
            vars: &["DOCKER_USERNAME"],
        });
        needs.push(Need {
            what: "DOCKER_PASSWORD",
            vars: &["DOCKER_PASSWORD"],
        });
        needs.push(Need {
            what: "ZENODO_ACCESS_TOKEN",
            vars: &[crate::zenodo::ENV_TOKEN],
        });
    }
    if push && writes_to_github {
        needs.push(Need {
            what: "GITHUB_PAT or GITHUB_TOKEN",
            vars: crate::zoo::TOKEN_VARS,
        });
    }
    needs
        .into_iter()
        .filter(|n| !is_set(n.vars))
        .map(|n| format!("`{}`", n.what))
        .collect()
}

/// The stored zoo commit.
pub fn stored_hash(path: &std::path::Path) -> Result<String, SyncError> {
    let text = std::fs::read_to_string(path).map_err(|source| SyncError::ReadHash {
        path: path.to_path_buf(),
        source,
    })?;
    let hash = text.trim().to_owned();
    if hash.is_empty() {
        return Err(SyncError::EmptyHash {
            path: path.to_path_buf(),
        });
    }
    Ok(hash)
}

/// Plans the sync (touches nothing): the plan, and the target tree.
pub async fn plan(
    opts: &SyncOptions,
    zoo: &Zoo,
    index: &Index,
) -> Result<(Plan, crate::layout::Tree), SyncError> {
    let from = match &opts.from {
        Some(f) => f.clone(),
        None => stored_hash(&opts.hash_file)?,
    };
    let (mut plan, tree) = zoo.plan_with_tree(&from, opts.to.as_deref(), index).await?;
    if !opts.only.is_empty() {
        plan.actions.retain(|a| {
            opts.only.iter().any(|o| {
                crate::index::is_path_prefix(o, &a.unit) || crate::index::is_path_prefix(&a.unit, o)
            })
        });
    }
    Ok((plan, tree))
}

/// Runs the sync of `zoo` with `steps`.
pub async fn run<S: Steps>(
    opts: &SyncOptions,
    zoo: &Zoo,
    steps: &S,
) -> Result<SyncReport, SyncError> {
    let index = Index::load(&opts.container_info)?;
    let (plan, tree) = plan(opts, zoo, &index).await?;
    let missing = missing_secrets(&plan, opts.push, matches!(zoo, Zoo::GitHub(_)));
    if !missing.is_empty() {
        return Err(SyncError::MissingSecrets(missing));
    }
    execute(opts, &plan, &tree, index, steps).await
}

/// Executes `plan` (whose target tree is `tree`) against `index` with `steps`.
pub async fn execute<S: Steps>(
    opts: &SyncOptions,
    plan: &Plan,
    tree: &crate::layout::Tree,
    index: Index,
    steps: &S,
) -> Result<SyncReport, SyncError> {
    log::info!(
        "sync of {} from {} to {}: {} action(s)",
        plan.zoo,
        short(&plan.from),
        short(&plan.to),
        plan.actions.len()
    );
    let journal = Arc::new(journal::Journal::open(&opts.journal_dir, opts.restart)?);
    let ctx = unit::UnitContext {
        steps,
        index: &index,
        tree,
        zoo_commit: &plan.to,
        push: opts.push,
    };
    let concurrency = opts.concurrency.max(1);
    let mut outcomes: Vec<(usize, unit::UnitOutcome)> =
        futures_util::stream::iter(plan.actions.iter().cloned().enumerate())
            .map(|(i, action)| {
                let ctx = &ctx;
                let journal = Arc::clone(&journal);
                async move { (i, unit::run_unit(ctx, journal, action).await) }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<unit::UnitOutcome> = outcomes.into_iter().map(|(_, o)| o).collect();

    let rows: Vec<SummaryRow> = outcomes.iter().map(SummaryRow::from_outcome).collect();
    let failed = rows.iter().filter(|r| r.result != "ok").count();
    let changes: Vec<unit::Change> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().cloned())
        .collect();

    let mut updated = index.clone();
    let index_changes = apply::apply(&mut updated, &changes)?;
    let mut report = SyncReport {
        zoo: plan.zoo.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        rows,
        index_written: false,
        write_back: None,
        hash_moved: false,
        hash_note: None,
        journal: None,
    };
    (report.index_written, report.write_back) = save_and_write_back(
        &journal,
        &index_changes,
        &updated,
        &opts.container_info,
        opts.push,
        |changes| {
            let updated = &updated;
            async move { steps.write_back(&changes, updated).await }
        },
    )
    .await?;
    if completes_the_work(failed, &opts.only, opts.push) {
        crate::fsutil::write_atomic(&opts.hash_file, format!("{}\n", plan.to).as_bytes())?;
        report.hash_moved = true;
        finish_journal(journal)?;
    } else {
        report.hash_note = Some(if failed > 0 {
            format!("{failed} unit(s) failed")
        } else if !opts.push {
            "--no-push: nothing was published".to_owned()
        } else {
            "--only: the rest of the plan did not run".to_owned()
        });
        if failed > 0 {
            report.journal = Some(journal.path().display().to_string());
        }
    }
    Ok(report)
}

/// Removes the journal of a run that completed its whole work (every unit is done, so no
/// task still holds it).
fn finish_journal(journal: Arc<journal::Journal>) -> Result<(), SyncError> {
    Arc::try_unwrap(journal)
        .map_err(|_| SyncError::WriteBack(StepError::new("internal: the journal is still in use")))?
        .finish()?;
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
