//! One unit of the plan, step by step: each completed step is journaled before the next
//! starts, and a step the journal already holds for the same inputs is not done again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::journal::{Journal, Pushed, UnitKey, UnitRecord};
use super::steps::{PublishJob, PublishSteps, Remote, Sif, SifSource, StepError, Steps};
use crate::docker::{CONTENT_LABEL, MODEL_GROUP_LABEL, RECIPE_LABEL, ZOO_COMMIT_LABEL};
use crate::index::{Index, SingularityEntry};
use crate::plan::{Action, ActionKind};

/// What a unit changes in the index, once every step succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The unit's own image was rebuilt (or found already built from the same inputs):
    /// `keys` map to `image`, `models` run in it, `sif` is the SIF entry of every key.
    OwnImage {
        keys: Vec<String>,
        image: String,
        models: Vec<String>,
        sif: SingularityEntry,
    },
    /// A group new to the index (or one that left its shared image) runs in the shared
    /// image `image`, whose SIF entry it takes.
    Shared {
        group: String,
        image: String,
        models: Vec<String>,
        sif: SingularityEntry,
    },
    /// The group still runs in its shared image; its models are refreshed.
    Retested {
        group: String,
        image: String,
        models: Vec<String>,
    },
    /// The keys left the zoo.
    Removed {
        keys: Vec<String>,
        image: Option<String>,
    },
    /// Built and tested, but `--no-push`: nothing was published, the index is unchanged.
    NotPublished,
    /// An image outside the index (the base) was rebuilt and pushed.
    ImageOnly { image: String },
}

/// How a unit ended.
#[derive(Debug, Clone)]
pub struct UnitOutcome {
    pub action: Action,
    pub result: Result<Change, StepError>,
    /// Digest of the pushed slim image (the SIF's source).
    pub digest: Option<String>,
    /// Digest of the full image in the registry (what images built FROM it are built from);
    /// `None` when it was built but not pushed (`--no-push`).
    pub image_digest: Option<String>,
    pub sif_md5: Option<String>,
    /// A word on what happened (`rebuilt`, `unchanged image`, `SIF unchanged`, ...).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// What every unit of one sync shares.
pub struct UnitContext<'a, S: Steps> {
    pub steps: &'a S,
    pub index: &'a Index,
    pub tree: &'a crate::layout::Tree,
    pub zoo_commit: &'a str,
    pub push: bool,
}

/// Runs one action; never panics on a failed step (the outcome carries it).
pub(crate) async fn run_unit<S: Steps>(
    ctx: &UnitContext<'_, S>,
    journal: Arc<Journal>,
    action: Action,
) -> UnitOutcome {
    let start = Instant::now();
    let mut out = UnitOutcome {
        action: action.clone(),
        result: Ok(Change::NotPublished),
        digest: None,
        image_digest: None,
        sif_md5: None,
        notes: Vec::new(),
        seconds: 0.0,
    };
    out.result = match action.kind {
        ActionKind::RemoveGroup => Ok(remove(ctx, &action)),
        ActionKind::UpdateImage => update_image(ctx, &journal, &action, &mut out).await,
        ActionKind::AddGroup => add_group(ctx, &journal, &action, &[], &mut out).await,
        ActionKind::RetestShared => retest_shared(ctx, &journal, &action, &mut out).await,
    };
    out.seconds = start.elapsed().as_secs_f64();
    match &out.result {
        Ok(_) => log::info!(
            "{} `{}`: done in {:.0}s ({})",
            action.kind.as_str(),
            action.unit,
            out.seconds,
            out.notes.join(", ")
        ),
        Err(e) => log::error!("{} `{}` failed: {e}", action.kind.as_str(), action.unit),
    }
    out
}

fn remove<S: Steps>(ctx: &UnitContext<'_, S>, action: &Action) -> Change {
    let keys: Vec<String> = ctx
        .index
        .model_to_docker
        .0
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| crate::index::is_path_prefix(&action.unit, k))
        .collect();
    Change::Removed {
        keys,
        image: action.image.clone(),
    }
}

/// The index keys an own image serves (all keys mapped to it), or the unit itself.
fn keys_of<S: Steps>(ctx: &UnitContext<'_, S>, image: &str, unit: &str) -> Vec<String> {
    let keys: Vec<String> = ctx
        .index
        .keys_for_image(image)
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    if keys.is_empty() {
        vec![unit.to_owned()]
    } else {
        keys
    }
}

/// The SIF entry the unit's image has in the index now (the first of its keys that has one).
fn current_entry(index: &Index, keys: &[String]) -> Option<SingularityEntry> {
    keys.iter()
        .find_map(|k| index.model_to_singularity.0.get(k.as_str()).cloned())
}

async fn update_image<S: Steps>(
    ctx: &UnitContext<'_, S>,
    journal: &Arc<Journal>,
    action: &Action,
    out: &mut UnitOutcome,
) -> Result<Change, StepError> {
    let image = action
        .image
        .clone()
        .ok_or_else(|| StepError::new(format!("`{}` has no image in the index", action.unit)))?;
    let keys = keys_of(ctx, &image, &action.unit);
    let previous = current_entry(ctx.index, &keys);
    let job = group_job(ctx, action, image, keys, previous);
    own_image(ctx, journal, job, out).await
}

/// The sync's job for a group's own image: identified by the zoo content of the group.
fn group_job<S: Steps>(
    ctx: &UnitContext<'_, S>,
    action: &Action,
    image: String,
    keys: Vec<String>,
    previous: Option<SingularityEntry>,
) -> ImageJob {
    ImageJob {
        unit: action.unit.clone(),
        action: action.kind.as_str().to_owned(),
        image,
        with_slim: true,
        identity: (CONTENT_LABEL, ctx.tree.content_hash(&action.unit)),
        test_models: action.models.clone(),
        keys,
        models: action.models.clone(),
        previous,
        parents: Vec::new(),
    }
}

/// What building and publishing one image takes: the sync's own image of a group, or one
/// image of a release.
pub struct ImageJob {
    /// The group (sync) or the image (release): the journal's unit, the model-group label
    /// and the record's text.
    pub unit: String,
    /// `update-image`, `add-group`, `release`.
    pub action: String,
    /// The index name of the full image.
    pub image: String,
    /// Also build its `-slim`, convert that to a SIF and publish it (the base image: no).
    pub with_slim: bool,
    /// What the image is built from besides its recipe, as `(label, value)`: the zoo content
    /// hash of the group (sync), or the digests of its parent images (release). An image in
    /// the registry with the same recipes and this label is not rebuilt.
    pub identity: (&'static str, String),
    /// Models tested in the images and the SIF.
    pub test_models: Vec<String>,
    /// The index keys the image serves, and the models that run in it (for the index).
    pub keys: Vec<String>,
    pub models: Vec<String>,
    /// The SIF entry the image has now: a new version of its record; `None`: a new record.
    pub previous: Option<SingularityEntry>,
    /// Our images the recipes start `FROM`, with the digest to build from: made local (and
    /// that digest) before a build. The sync leaves it empty.
    pub parents: Vec<(String, String)>,
}

/// Builds, tests, pushes, converts, tests and publishes one image.
pub async fn own_image<S: Steps>(
    ctx: &UnitContext<'_, S>,
    journal: &Arc<Journal>,
    job: ImageJob,
    out: &mut UnitOutcome,
) -> Result<Change, StepError> {
    let steps = ctx.steps;
    let image = job.image.as_str();
    let slim = crate::names::slim_image(image);
    let full_recipe = steps.render(&job.unit, image)?;
    let slim_recipe = if job.with_slim {
        Some(steps.render(&job.unit, &slim)?)
    } else {
        None
    };
    let (identity_label, identity) = (job.identity.0, job.identity.1.clone());
    let mut recipes = vec![full_recipe.hash.clone()];
    recipes.extend(slim_recipe.iter().map(|r| r.hash.clone()));
    let key = UnitKey {
        unit: job.unit.clone(),
        action: job.action.clone(),
        content: identity.clone(),
        recipes,
    };
    let record = |change: &dyn Fn(&mut UnitRecord)| {
        journal
            .record(&key, |r| change(r))
            .map_err(|e| StepError::from_error(&e))
    };
    let mut rec = journal.get(&key);

    // 1. Images: pushed (journal), already in the registry from the same inputs, or built now.
    if rec.full.is_none() || (job.with_slim && rec.slim.is_none()) {
        let same = |r: &Option<Remote>, recipe: &str| {
            r.as_ref().is_some_and(|r| {
                r.labels.get(identity_label).map(String::as_str) == Some(identity.as_str())
                    && r.labels.get(RECIPE_LABEL).map(String::as_str) == Some(recipe)
            })
        };
        let remote_full = steps.remote(image).await?;
        let remote_slim = match &slim_recipe {
            Some(_) => steps.remote(&slim).await?,
            None => None,
        };
        let unchanged = same(&remote_full, &full_recipe.hash)
            && slim_recipe
                .as_ref()
                .is_none_or(|r| same(&remote_slim, &r.hash));
        if unchanged {
            let f = remote_full.unwrap_or_else(empty_remote);
            let s = remote_slim;
            out.notes.push(format!(
                "image unchanged ({})",
                short(&s.as_ref().unwrap_or(&f).digest)
            ));
            rec = record(&|r: &mut UnitRecord| {
                r.full = Some(pushed(&f));
                r.slim = s.as_ref().map(pushed);
            })?;
        } else {
            let labels = HashMap::from([
                (MODEL_GROUP_LABEL.to_owned(), job.unit.clone()),
                (ZOO_COMMIT_LABEL.to_owned(), ctx.zoo_commit.to_owned()),
                (identity_label.to_owned(), identity.clone()),
            ]);
            for (parent, digest) in &job.parents {
                steps.ensure_local(parent, Some(digest)).await?;
            }
            steps.build(image, &full_recipe, &labels).await?;
            if !job.test_models.is_empty() {
                steps.test_image(image, &job.test_models).await?;
            }
            if let Some(slim_recipe) = &slim_recipe {
                steps.build(&slim, slim_recipe, &labels).await?;
                steps.test_image(&slim, &job.test_models).await?;
            }
            if !ctx.push {
                out.notes.push("built and tested (--no-push)".into());
                return Ok(Change::NotPublished);
            }
            let f = steps.push(image).await?;
            let s = match &slim_recipe {
                Some(_) => Some(steps.push(&slim).await?),
                None => None,
            };
            out.notes.push(format!(
                "rebuilt ({})",
                short(&s.as_ref().unwrap_or(&f).digest)
            ));
            rec = record(&|r: &mut UnitRecord| {
                r.full = Some(pushed(&f));
                r.slim = s.as_ref().map(pushed);
            })?;
        }
    } else {
        out.notes.push("images pushed by an earlier run".into());
    }
    out.image_digest = rec
        .full
        .as_ref()
        .map(|p| p.digest.clone())
        .filter(|d| !d.is_empty());
    if !ctx.push {
        return Ok(Change::NotPublished);
    }
    let Some(slim_pushed) = rec.slim.clone().filter(|_| job.with_slim) else {
        out.digest = rec.full.as_ref().map(|p| p.digest.clone());
        record(&|r: &mut UnitRecord| {
            r.image = Some(job.image.clone());
            r.done = true;
        })?;
        return Ok(Change::ImageOnly {
            image: job.image.clone(),
        });
    };
    let slim_digest = slim_pushed.digest;
    out.digest = Some(slim_digest.clone());

    // 2. The SIF: converted, tested, published (or unchanged).
    let sif_entry = match rec.sif_entry.clone() {
        Some(entry) => {
            out.notes.push("SIF published by an earlier run".into());
            entry
        }
        None => {
            steps.ensure_local(&slim, Some(&slim_digest)).await?;
            let name = crate::names::sif_name_for_image(image);
            let file_name = format!("{name}.sif");
            let source = SifSource {
                image: slim.clone(),
                digest: slim_digest.clone(),
            };
            let sif: Sif = steps.convert(&slim, &file_name, &source).await?;
            if rec.sif_md5.as_deref() != Some(sif.md5.as_str()) {
                let md5 = sif.md5.clone();
                rec = record(&|r: &mut UnitRecord| {
                    r.sif_md5 = Some(md5.clone());
                    r.sif_tested = false;
                })?;
            }
            out.sif_md5 = Some(sif.md5.clone());
            if !rec.sif_tested {
                steps.test_sif(&sif.path, &job.test_models).await?;
                rec = record(&|r: &mut UnitRecord| r.sif_tested = true)?;
            }
            let unchanged = job
                .previous
                .as_ref()
                .filter(|p| p.md5.as_str().eq_ignore_ascii_case(&sif.md5));
            let entry = if let Some(entry) = unchanged {
                out.notes.push("SIF unchanged: not uploaded".into());
                entry.clone()
            } else {
                let report = Arc::new(JournalSteps {
                    journal: Arc::clone(journal),
                    key: key.clone(),
                });
                let entry = steps
                    .publish(PublishJob {
                        sif: sif.clone(),
                        file_name,
                        unit: job.unit.clone(),
                        previous: job.previous.clone(),
                        resume_draft: rec.draft,
                        report,
                    })
                    .await?;
                out.notes.push("SIF published".into());
                entry
            };
            let stored = entry.clone();
            record(&|r: &mut UnitRecord| r.sif_entry = Some(stored.clone()))?;
            steps.discard_sif(&sif.path);
            entry
        }
    };
    out.sif_md5 = Some(sif_entry.md5.as_str().to_owned());
    record(&|r: &mut UnitRecord| {
        r.image = Some(job.image.clone());
        r.done = true;
    })?;
    Ok(Change::OwnImage {
        keys: job.keys,
        image: job.image,
        models: job.models,
        sif: sif_entry,
    })
}

/// Journals the Zenodo steps of one unit as they complete.
struct JournalSteps {
    journal: Arc<Journal>,
    key: UnitKey,
}

impl PublishSteps for JournalSteps {
    fn draft_created(&self, draft: u64) {
        if let Err(e) = self.journal.record(&self.key, |r| r.draft = Some(draft)) {
            log::error!("{}", crate::errchain::chain(&e));
        }
    }
    fn file_uploaded(&self, draft: u64, md5: Option<&str>) {
        let md5 = md5.map(str::to_owned);
        if let Err(e) = self.journal.record(&self.key, |r| {
            r.draft = Some(draft);
            r.uploaded_md5.clone_from(&md5);
        }) {
            log::error!("{}", crate::errchain::chain(&e));
        }
    }
}

async fn add_group<S: Steps>(
    ctx: &UnitContext<'_, S>,
    journal: &Arc<Journal>,
    action: &Action,
    exclude: &[String],
    out: &mut UnitOutcome,
) -> Result<Change, StepError> {
    for shared in action.try_images.iter().filter(|i| !exclude.contains(i)) {
        if let Err(e) = ctx.steps.ensure_local(shared, None).await {
            log::warn!(
                "`{}`: cannot try the shared image `{shared}`: {e}",
                action.unit
            );
            continue;
        }
        match ctx.steps.test_image(shared, &action.models).await {
            Ok(()) => {
                let sif = shared_entry(ctx.index, shared).ok_or_else(|| {
                    StepError::new(format!(
                        "the shared image `{shared}` has no SIF entry in the index to give `{}`",
                        action.unit
                    ))
                })?;
                out.notes
                    .push(format!("runs in the shared image `{shared}`"));
                out.sif_md5 = Some(sif.md5.as_str().to_owned());
                return Ok(Change::Shared {
                    group: action.unit.clone(),
                    image: shared.clone(),
                    models: action.models.clone(),
                    sif,
                });
            }
            Err(e) => log::info!("`{}` does not run in `{shared}`: {e}", action.unit),
        }
    }
    let image = crate::names::image_for_group(&action.unit);
    out.notes.push(format!("own image `{image}`"));
    let job = group_job(ctx, action, image, vec![action.unit.clone()], None);
    own_image(ctx, journal, job, out).await
}

async fn retest_shared<S: Steps>(
    ctx: &UnitContext<'_, S>,
    journal: &Arc<Journal>,
    action: &Action,
    out: &mut UnitOutcome,
) -> Result<Change, StepError> {
    let image = action
        .image
        .clone()
        .ok_or_else(|| StepError::new(format!("`{}` has no image in the index", action.unit)))?;
    ctx.steps.ensure_local(&image, None).await?;
    match ctx.steps.test_image(&image, &action.models).await {
        Ok(()) => {
            out.notes.push(format!("still runs in `{image}`"));
            Ok(Change::Retested {
                group: action.unit.clone(),
                image,
                models: action.models.clone(),
            })
        }
        Err(e) => {
            log::warn!(
                "`{}` no longer runs in its shared image `{image}` ({e}); trying the others, then its own image",
                action.unit
            );
            out.notes.push(format!("left `{image}`"));
            let mut add = action.clone();
            add.kind = ActionKind::AddGroup;
            add.try_images.clone_from(&action.try_images);
            if add.try_images.is_empty() {
                add.try_images = ctx
                    .index
                    .shared_images()
                    .into_iter()
                    .map(|i| i.as_str().to_owned())
                    .collect();
            }
            add_group(ctx, journal, &add, &[image], out).await
        }
    }
}

/// The SIF entry of a shared image: the entry of any key mapped to it.
fn shared_entry(index: &Index, image: &str) -> Option<SingularityEntry> {
    index
        .keys_for_image(image)
        .into_iter()
        .find_map(|k| index.model_to_singularity.0.get(k).cloned())
}

fn pushed(r: &Remote) -> Pushed {
    Pushed {
        reference: r.reference.clone(),
        digest: r.digest.clone(),
    }
}

fn empty_remote() -> Remote {
    Remote {
        reference: String::new(),
        digest: String::new(),
        labels: HashMap::new(),
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}
