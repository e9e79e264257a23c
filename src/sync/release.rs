//! The release: rebuild every image after a kipoi or base-image release, in dependency
//! order (an image after the images it is built `FROM`), test each image's models (one per
//! group for a shared image), push, convert and publish a new SIF version where its md5
//! changed, and update the index like the sync — with the same journal and summary.
//!
//! An image whose registry copy carries the same recipe and was built from the same parent
//! digests (label [`PARENTS_LABEL`]) is not rebuilt, so a second release with nothing
//! changed publishes nothing.
//!
//! For more than one machine, each image can be released alone (`--only IMAGE`) and write
//! a [`Fragment`] (its summary row and the index changes it verified) instead of touching
//! the index; [`merge_fragments`] applies every fragment in a deterministic order, and a
//! failed shard's images keep their entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::journal::Journal;
use super::steps::{StepError, Steps};
use super::summary::{SummaryRow, SyncReport};
use super::unit::{self, Change, ImageJob, UnitContext, UnitOutcome};
use super::SyncError;
use crate::index::{Index, SingularityEntry};
use crate::plan::{Action, ActionKind};

/// The digests of the images an image was built from (sha256 over `image@digest` lines).
pub const PARENTS_LABEL: &str = "org.kipoi-containers.parents";
/// Format version of a result fragment.
const FRAGMENT_VERSION: u32 = 1;

/// One image of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseItem {
    /// The index name of the full image (`kipoi/kipoi-docker:deepmel`, or the base).
    pub image: String,
    /// Has a `-slim` and a SIF (every index image; not the base).
    pub with_slim: bool,
    /// Our images it (or its slim) is built `FROM` (index names, or the base image).
    pub parents: Vec<String>,
    /// The other images its recipes start `FROM` (the base recipe's miniconda, a slim
    /// recipe's Debian): their identity is part of the image's.
    pub external: Vec<String>,
    /// The index keys it serves, and its models.
    pub keys: Vec<String>,
    pub models: Vec<String>,
    /// What a release tests in it: every model; one per group for a shared image.
    pub test_models: Vec<String>,
    /// Its level in the whole release (0: the base), kept when `--only` leaves others out.
    pub level: usize,
}

/// How a release runs.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    /// Only these images (index names, full or slim); their parents are taken from the
    /// registry as they are.
    pub only: Vec<String>,
    pub push: bool,
    pub concurrency: usize,
    pub journal_dir: PathBuf,
    pub restart: bool,
    pub container_info: PathBuf,
    /// Write the results here instead of the index (a shard of a release).
    pub fragment: Option<PathBuf>,
}

/// The release, level by level: one item per entry of the release matrix
/// ([`crate::recipes::release_entries`]: the order and levels the GitHub Actions workflow
/// runs), with what the orchestrator needs besides (the images outside ours the recipes
/// start from, the index keys and models).
pub fn release_levels(
    index: &Index,
    recipes: &[crate::recipes::ImageRecipe],
) -> Result<Vec<Vec<ReleaseItem>>, crate::recipes::RecipeError> {
    let mut levels: Vec<Vec<ReleaseItem>> = Vec::new();
    for entry in crate::recipes::release_entries(index, recipes)? {
        let slim = entry.slim.as_deref();
        let own = recipes
            .iter()
            .filter(|r| r.image == entry.image || Some(r.image.as_str()) == slim);
        let mut external: Vec<String> = Vec::new();
        let mut models: Vec<String> = Vec::new();
        for recipe in own {
            for from in &recipe.from {
                if !crate::recipes::is_recipe_image(recipes, from) && !external.contains(from) {
                    external.push(from.clone());
                }
            }
            if recipe.image == entry.image {
                models.clone_from(&recipe.models);
            }
        }
        external.sort();
        let item = ReleaseItem {
            keys: index
                .keys_for_image(&entry.image)
                .into_iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            with_slim: entry.slim.is_some(),
            parents: entry.depends_on.clone().unwrap_or_default(),
            external,
            models,
            test_models: entry.models.clone(),
            image: entry.image,
            level: entry.level.unwrap_or(0),
        };
        let level = item.level;
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(item);
    }
    Ok(levels)
}

/// Keeps the images of `only` (index names, full or slim; empty: all); an unknown name is
/// an error.
pub fn plan_release(
    levels: Vec<Vec<ReleaseItem>>,
    only: &[String],
) -> Result<Vec<Vec<ReleaseItem>>, ReleaseError> {
    let wanted = |image: &str| {
        only.is_empty()
            || only
                .iter()
                .any(|o| crate::names::full_image(o) == image || o == image)
    };
    for o in only {
        let full = crate::names::full_image(o);
        if !levels
            .iter()
            .flatten()
            .any(|i| i.image == full || &i.image == o)
        {
            return Err(ReleaseError::UnknownImage(o.clone()));
        }
    }
    Ok(levels
        .into_iter()
        .map(|level| level.into_iter().filter(|i| wanted(&i.image)).collect())
        .filter(|level: &Vec<ReleaseItem>| !level.is_empty())
        .collect())
}

/// Why a release could not be planned or merged.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "`{0}` is not an image of the index (nor the base image); `release --dry-run` lists them"
    )]
    UnknownImage(String),
    #[error("could not read the result fragment `{}`", path.display())]
    ReadFragment {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a result fragment of this tool: {detail}", path.display())]
    BadFragment { path: PathBuf, detail: String },
    #[error("no result fragment (`*.json`) in `{}`", .0.display())]
    NoFragments(PathBuf),
    #[error(
        "`{image}` is in two result fragments, `{}` and `{}`: a directory holds the fragments of one \
         release, one per image (remove the stale one)",
        first.display(),
        second.display()
    )]
    DuplicateImage {
        image: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// What one shard of a release verified: its rows and the index changes of the images
/// that succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fragment {
    pub version: u32,
    /// The images this shard released, in order.
    pub images: Vec<String>,
    pub rows: Vec<SummaryRow>,
    pub changes: Vec<FragmentChange>,
}

/// The index change of one released image (its keys now point at `sif`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentChange {
    pub image: String,
    pub keys: Vec<String>,
    pub models: Vec<String>,
    pub sif: SingularityEntry,
}

impl FragmentChange {
    fn into_change(self) -> Change {
        Change::OwnImage {
            keys: self.keys,
            image: self.image,
            models: self.models,
            sif: self.sif,
        }
    }
}

/// The identity of an image's inputs besides its recipe: the digests (or ids) of the
/// images its recipes start from.
fn parents_identity(parents: &BTreeMap<String, String>) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for (image, digest) in parents {
        hasher.update(format!("{image}@{digest}\n").as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// Runs the release of `levels` against `index` with `steps`; returns the report and the
/// verified changes (applied to the index unless `opts.fragment` asks for a fragment).
pub async fn run<S: Steps>(
    opts: &ReleaseOptions,
    levels: Vec<Vec<ReleaseItem>>,
    index: Index,
    zoo_commit: &str,
    steps: &S,
) -> Result<SyncReport, SyncError> {
    let journal = Arc::new(Journal::open(&opts.journal_dir, opts.restart)?);
    let tree = crate::layout::Tree::default();
    let ctx = UnitContext {
        steps,
        index: &index,
        tree: &tree,
        zoo_commit,
        push: opts.push,
    };
    // The images released so far in this run (parents of later levels): their registry
    // digest, or `None` for one built and not pushed (`--no-push`), which is used as it is.
    let mut built: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut outcomes: Vec<UnitOutcome> = Vec::new();
    let mut released: Vec<String> = Vec::new();
    for level in levels {
        let mut level_outcomes: Vec<(usize, UnitOutcome)> =
            futures_util::stream::iter(level.into_iter().enumerate())
                .map(|(i, item)| {
                    let (ctx, journal, built) = (&ctx, Arc::clone(&journal), &built);
                    async move { (i, release_one(ctx, &journal, item, built).await) }
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect()
                .await;
        level_outcomes.sort_by_key(|(i, _)| *i);
        for (_, out) in level_outcomes {
            if out.result.is_ok() {
                built.insert(out.action.unit.clone(), out.image_digest.clone());
            }
            released.push(out.action.unit.clone());
            outcomes.push(out);
        }
    }
    let rows: Vec<SummaryRow> = outcomes.iter().map(SummaryRow::from_outcome).collect();
    let failed = rows.iter().filter(|r| r.result != "ok").count();
    let changes: Vec<FragmentChange> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            Ok(Change::OwnImage {
                keys,
                image,
                models,
                sif,
            }) => Some(FragmentChange {
                image: image.clone(),
                keys: keys.clone(),
                models: models.clone(),
                sif: sif.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut report = SyncReport {
        zoo: "release".into(),
        from: String::new(),
        to: zoo_commit.to_owned(),
        rows: rows.clone(),
        index_written: false,
        write_back: None,
        hash_moved: false,
        hash_note: Some("a release does not move the zoo commit".into()),
        journal: None,
    };
    if let Some(path) = &opts.fragment {
        let fragment = Fragment {
            version: FRAGMENT_VERSION,
            images: released,
            rows,
            changes,
        };
        let mut bytes = serde_json::to_vec_pretty(&fragment).map_err(|e| {
            SyncError::Setup(StepError::new(format!(
                "internal: the result fragment cannot be written as JSON: {e}"
            )))
        })?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(path, &bytes)?;
        report.write_back = Some(format!("result fragment `{}`", path.display()));
    } else {
        let mut updated = index.clone();
        let all: Vec<Change> = changes
            .into_iter()
            .map(FragmentChange::into_change)
            .collect();
        let index_changes = super::apply::apply(&mut updated, &all)?;
        (report.index_written, report.write_back) = super::save_and_write_back(
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
    }
    if super::completes_the_work(failed, &opts.only, opts.push) {
        super::finish_journal(journal)?;
    } else {
        report.journal = Some(journal.path().display().to_string());
    }
    Ok(report)
}

/// Releases one image; its outcome carries the digest of its full image (a parent of later
/// levels).
async fn release_one<S: Steps>(
    ctx: &UnitContext<'_, S>,
    journal: &Arc<Journal>,
    item: ReleaseItem,
    built: &BTreeMap<String, Option<String>>,
) -> UnitOutcome {
    let start = std::time::Instant::now();
    let action = Action {
        kind: ActionKind::UpdateImage,
        unit: item.image.clone(),
        image: Some(item.image.clone()),
        models: item.test_models.clone(),
        try_images: Vec::new(),
        reason: "release".into(),
        paths: Vec::new(),
    };
    let mut out = UnitOutcome {
        action,
        result: Ok(Change::NotPublished),
        digest: None,
        image_digest: None,
        sif_md5: None,
        notes: Vec::new(),
        seconds: 0.0,
    };
    out.result = async {
        let mut parents = BTreeMap::new();
        let mut local = Vec::new();
        for parent in &item.parents {
            let digest = match built.get(parent) {
                Some(Some(d)) => d.clone(),
                // Built here and not pushed: the local image is the parent.
                Some(None) => {
                    parents.insert(
                        parent.clone(),
                        ctx.steps.image_identity(parent, false).await?,
                    );
                    continue;
                }
                None => ctx
                    .steps
                    .remote(parent)
                    .await?
                    .map(|r| r.digest)
                    .ok_or_else(|| {
                        StepError::new(format!(
                            "`{}` is built FROM `{parent}`, which the registry does not have: release it first",
                            item.image
                        ))
                    })?,
            };
            local.push((parent.clone(), digest.clone()));
            parents.insert(parent.clone(), digest);
        }
        for image in &item.external {
            parents.insert(image.clone(), ctx.steps.image_identity(image, true).await?);
        }
        let previous = item
            .keys
            .iter()
            .find_map(|k| ctx.index.model_to_singularity.0.get(k.as_str()).cloned());
        // The record's text and the model-group label name the image's group when it has one.
        let unit = item.keys.first().cloned().unwrap_or_else(|| item.image.clone());
        let job = ImageJob {
            unit,
            action: "release".into(),
            image: item.image.clone(),
            with_slim: item.with_slim,
            identity: (PARENTS_LABEL, parents_identity(&parents)),
            test_models: item.test_models.clone(),
            keys: item.keys.clone(),
            models: item.models.clone(),
            previous,
            parents: local,
        };
        unit::own_image(ctx, journal, job, &mut out).await
    }
    .await;
    out.seconds = start.elapsed().as_secs_f64();
    match &out.result {
        Ok(_) => log::info!(
            "release of `{}`: done in {:.0}s ({})",
            item.image,
            out.seconds,
            out.notes.join(", ")
        ),
        Err(e) => log::error!("release of `{}` failed: {e}", item.image),
    }
    out
}

/// Reads every `*.json` fragment of `dir` (in file-name order). An image released by two
/// of them (a stale fragment of another run) is an error naming both files.
pub fn read_fragments(dir: &Path) -> Result<Vec<Fragment>, ReleaseError> {
    let read_err = |source| ReleaseError::ReadFragment {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ReleaseError::NoFragments(dir.to_path_buf()));
    }
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut fragments = Vec::with_capacity(paths.len());
    for path in paths {
        let fragment = read_fragment(&path)?;
        for image in &fragment.images {
            if let Some(first) = seen.insert(image.clone(), path.clone()) {
                return Err(ReleaseError::DuplicateImage {
                    image: image.clone(),
                    first,
                    second: path,
                });
            }
        }
        fragments.push(fragment);
    }
    Ok(fragments)
}

fn read_fragment(path: &Path) -> Result<Fragment, ReleaseError> {
    let bytes = std::fs::read(path).map_err(|source| ReleaseError::ReadFragment {
        path: path.to_path_buf(),
        source,
    })?;
    let fragment: Fragment =
        serde_json::from_slice(&bytes).map_err(|e| ReleaseError::BadFragment {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if fragment.version != FRAGMENT_VERSION {
        return Err(ReleaseError::BadFragment {
            path: path.to_path_buf(),
            detail: format!(
                "version {} (this tool reads version {FRAGMENT_VERSION})",
                fragment.version
            ),
        });
    }
    Ok(fragment)
}

/// The index changes of `fragments`, in a deterministic order (by image), and the rows.
pub fn merged_changes(fragments: Vec<Fragment>) -> (Vec<Change>, Vec<SummaryRow>) {
    let mut by_image: BTreeMap<String, FragmentChange> = BTreeMap::new();
    let mut rows = Vec::new();
    for fragment in fragments {
        rows.extend(fragment.rows);
        for change in fragment.changes {
            by_image.insert(change.image.clone(), change);
        }
    }
    (
        by_image
            .into_values()
            .map(FragmentChange::into_change)
            .collect(),
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(image: &str, parents: &[&str]) -> ReleaseItem {
        ReleaseItem {
            image: image.into(),
            with_slim: true,
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            external: Vec::new(),
            keys: Vec::new(),
            models: Vec::new(),
            test_models: Vec::new(),
            level: parents.len(),
        }
    }

    #[test]
    fn only_keeps_the_images_asked_for_full_or_slim() {
        let levels = vec![
            vec![item("k:base", &["debian:12"])],
            vec![item("k:own", &["k:base"]), item("k:shared", &["k:base"])],
        ];
        let only = plan_release(levels.clone(), &["k:shared-slim".into()]).unwrap();
        assert_eq!(only, vec![vec![item("k:shared", &["k:base"])]]);
        assert_eq!(plan_release(levels.clone(), &[]).unwrap(), levels);
        assert!(matches!(
            plan_release(levels, &["k:nope".into()]),
            Err(ReleaseError::UnknownImage(_))
        ));
    }

    #[test]
    fn parents_identity_is_stable_and_sensitive() {
        let a = BTreeMap::from([("k:base".to_owned(), "sha256:1".to_owned())]);
        let b = BTreeMap::from([("k:base".to_owned(), "sha256:2".to_owned())]);
        assert_eq!(parents_identity(&a), parents_identity(&a.clone()));
        assert_ne!(parents_identity(&a), parents_identity(&b));
        assert_ne!(parents_identity(&a), parents_identity(&BTreeMap::new()));
    }

    #[test]
    fn fragments_merge_deterministically() {
        let entry = |n: u64| SingularityEntry {
            url: crate::index::Url::new(format!("https://zenodo.org/record/{n}/files/x.sif"))
                .unwrap(),
            name: crate::index::SifName::new(format!("x{n}")).unwrap(),
            md5: crate::index::Md5::new(format!("{n:032}")).unwrap(),
        };
        let change = |image: &str, n: u64| FragmentChange {
            image: image.into(),
            keys: vec![image.to_uppercase()],
            models: vec![image.to_uppercase()],
            sif: entry(n),
        };
        let f1 = Fragment {
            version: 1,
            images: vec!["b".into()],
            rows: Vec::new(),
            changes: vec![change("b", 2)],
        };
        let f2 = Fragment {
            version: 1,
            images: vec!["a".into()],
            rows: Vec::new(),
            changes: vec![change("a", 1)],
        };
        let (one, _) = merged_changes(vec![f1.clone(), f2.clone()]);
        let (two, _) = merged_changes(vec![f2.clone(), f1]);
        assert_eq!(one, two);
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_fragments(dir.path()),
            Err(ReleaseError::NoFragments(_))
        ));
        std::fs::write(dir.path().join("x.json"), b"{}").unwrap();
        assert!(matches!(
            read_fragments(dir.path()),
            Err(ReleaseError::BadFragment { .. })
        ));
        // The same image in two fragments (a stale one left over): refused, naming both.
        std::fs::remove_file(dir.path().join("x.json")).unwrap();
        for name in ["a.json", "old-a.json"] {
            let bytes = serde_json::to_vec(&f2).unwrap();
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let e = read_fragments(dir.path()).unwrap_err();
        assert!(
            matches!(e, ReleaseError::DuplicateImage { ref image, .. } if image == "a"),
            "{e}"
        );
        assert!(e.to_string().contains("old-a.json"), "{e}");
    }
}
