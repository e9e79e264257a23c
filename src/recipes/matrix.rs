//! GitHub Actions matrices computed from the index at run time (`fromJSON` of
//! `{"include": [...]}`), so adding a model group edits no workflow.
//!
//! - `test`: one entry per image of `docker-to-model.json`, with its slim image, its SIF
//!   and the models to test (one per model group for a shared image);
//! - `release`: the base image, then every image of `docker-to-model.json` (each entry builds
//!   the full and the slim image), in dependency order, each with the entries it depends on
//!   and its `level` (0: depends on no other entry; n: on entries up to level n-1), so a
//!   workflow runs level after level;
//! - `singularity`: the slim image of every image of `docker-to-model.json` and its SIF name.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{order, recipes_for_index, ImageRecipe, RecipeError, RecipeKind, RecipeOptions};
use crate::index::{one_model_per_modelgroup, Index};
use crate::names::{full_image, sif_name_for_image, slim_image, split_image};

/// Which matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixKind {
    Test,
    Release,
    Singularity,
}

impl MatrixKind {
    pub const ALL: [MatrixKind; 3] = [Self::Test, Self::Release, Self::Singularity];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Release => "release",
            Self::Singularity => "singularity",
        }
    }

    /// `test`, `release` or `singularity`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One job of a matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixEntry {
    /// The image the job is about (the full image; the slim one for `singularity`).
    pub image: String,
    pub tag: String,
    /// `base`, `shared-env` or `group`.
    pub kind: &'static str,
    /// The slim image (`test`, `release`; not for the base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slim: Option<String>,
    /// The SIF name (made from the slim image), as the index has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sif: Option<String>,
    /// The models to test: every model, one per model group for a shared image.
    pub models: Vec<String>,
    /// `release`: the images of other entries this one is built from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// `release`: 0 for an entry that depends on none, else one more than its deepest
    /// dependency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
}

/// A matrix: `{"include": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Matrix {
    pub include: Vec<MatrixEntry>,
}

impl Matrix {
    /// One line of JSON (a GitHub Actions step output).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"include":[]}"#))
    }

    /// The entries of release level `level`.
    #[must_use]
    pub fn at_level(&self, level: usize) -> Matrix {
        Matrix {
            include: self
                .include
                .iter()
                .filter(|e| e.level == Some(level))
                .cloned()
                .collect(),
        }
    }

    /// The entries deeper than `level`.
    #[must_use]
    pub fn deeper_than(&self, level: usize) -> Vec<&MatrixEntry> {
        self.include
            .iter()
            .filter(|e| e.level.is_some_and(|l| l > level))
            .collect()
    }

    /// An error naming the entries deeper than `max` (a workflow that runs levels `0..=max`
    /// would not build them), if any.
    pub fn check_max_level(&self, max: usize) -> Result<(), RecipeError> {
        let deeper = self.deeper_than(max);
        if deeper.is_empty() {
            return Ok(());
        }
        Err(RecipeError::TooDeep {
            max,
            images: deeper
                .iter()
                .map(|e| format!("`{}` (level {})", e.image, e.level.unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The SIF name of `image`: the index's (`model-to-singularity.json`, for any key of the
/// image), else the naming rule.
fn sif_name(index: &Index, image: &str) -> String {
    index
        .keys_for_image(image)
        .into_iter()
        .find_map(|k| index.model_to_singularity.0.get(k))
        .map_or_else(
            || sif_name_for_image(image),
            |entry| entry.name.as_str().to_owned(),
        )
}

fn tag(image: &str) -> String {
    split_image(image).1.unwrap_or("latest").to_owned()
}

/// The full images of `docker-to-model.json`, in order, each once.
fn images(index: &Index) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for image in index.docker_to_model.0.keys() {
        let full = full_image(image.as_str());
        if !out.contains(&full) {
            out.push(full);
        }
    }
    out
}

fn test_models(index: &Index, image: &str) -> Vec<String> {
    let models: Vec<String> = index
        .models_for_image(image)
        .map(|ms| ms.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if index.is_shared(image) {
        one_model_per_modelgroup(&models)
    } else {
        models
    }
}

fn kind_of(index: &Index, image: &str) -> &'static str {
    if index.is_shared(image) {
        "shared-env"
    } else {
        "group"
    }
}

/// The `kind` matrix of `index`. `test` and `singularity` need only the index; `release`
/// makes every recipe to order them (so a missing recipe or a cycle is an error).
pub fn matrix(
    index: &Index,
    kind: MatrixKind,
    opts: &RecipeOptions,
) -> Result<Matrix, RecipeError> {
    let include = match kind {
        MatrixKind::Test => images(index)
            .into_iter()
            .map(|image| MatrixEntry {
                tag: tag(&image),
                kind: kind_of(index, &image),
                slim: Some(slim_image(&image)),
                sif: Some(sif_name(index, &image)),
                models: test_models(index, &image),
                depends_on: None,
                level: None,
                image,
            })
            .collect(),
        MatrixKind::Singularity => images(index)
            .into_iter()
            .map(|image| {
                let slim = slim_image(&image);
                MatrixEntry {
                    tag: tag(&slim),
                    kind: kind_of(index, &image),
                    slim: None,
                    sif: Some(sif_name(index, &image)),
                    models: test_models(index, &image),
                    depends_on: None,
                    level: None,
                    image: slim,
                }
            })
            .collect(),
        MatrixKind::Release => release_entries(index, &recipes_for_index(index, opts)?)?,
    };
    Ok(Matrix { include })
}

/// The release entries: one per full image (its slim recipe with it), in dependency order,
/// each with its level (the release runs level by level, here and as GitHub Actions jobs).
pub fn release_entries(
    index: &Index,
    recipes: &[ImageRecipe],
) -> Result<Vec<MatrixEntry>, RecipeError> {
    // Entries: the full images (the base's full image is itself), in recipe order.
    let mut entries: Vec<String> = Vec::new();
    let mut entry_of: Vec<usize> = Vec::with_capacity(recipes.len());
    for r in recipes {
        let full = full_image(&r.image);
        let i = entries.iter().position(|e| *e == full).unwrap_or_else(|| {
            entries.push(full);
            entries.len() - 1
        });
        entry_of.push(i);
    }
    let recipe_deps = order::dependencies(recipes)?;
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (r, ds) in recipe_deps.iter().enumerate() {
        let e = entry_of[r];
        for &d in ds {
            let de = entry_of[d];
            if de != e && !deps[e].contains(&de) {
                deps[e].push(de);
            }
        }
    }
    // Recipes already ordered themselves (a recipe cycle is found there first); entries can
    // still form one (`a-slim` FROM `b`, `b-slim` FROM `a`).
    order::topological(&recipe_deps).map_err(|cycle| RecipeError::Cycle {
        cycle: order::cycle_text(cycle.iter().map(|&i| recipes[i].image.as_str())),
    })?;
    let ordered = order::topological(&deps).map_err(|cycle| RecipeError::Cycle {
        cycle: order::cycle_text(cycle.iter().map(|&i| entries[i].as_str())),
    })?;
    let mut level: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in ordered {
        let my_level = deps[e]
            .iter()
            .map(|d| level.get(d).copied().unwrap_or(0) + 1)
            .max()
            .unwrap_or(0);
        level.insert(e, my_level);
        let image = entries[e].clone();
        let full_recipe = recipes
            .iter()
            .zip(&entry_of)
            .find(|(r, &i)| i == e && !crate::names::is_slim(&r.image))
            .map(|(r, _)| r);
        let is_base = full_recipe.is_some_and(|r| r.kind == RecipeKind::Base);
        out.push(MatrixEntry {
            tag: tag(&image),
            kind: full_recipe.map_or("group", |r| r.kind.as_str()),
            slim: (!is_base).then(|| slim_image(&image)),
            sif: (!is_base).then(|| sif_name(index, &image)),
            models: full_recipe
                .map(|r| r.test_models.clone())
                .unwrap_or_default(),
            depends_on: Some(deps[e].iter().map(|&d| entries[d].clone()).collect()),
            level: Some(my_level),
            image,
        });
    }
    Ok(out)
}
