//! A recipe for every image: the Dockerfile text, its hash (the image's recipe label), the
//! files its build context needs, the images it is built from, and the models it serves.
//!
//! Which recipe an image gets is decided by the index, never by the image's name:
//! - the base image (`kipoi/kipoi-docker:kipoi-base-env`, or [`RenderOptions::base_image`]):
//!   `Dockerfile-base.template` with the `kipoi-env` environment of `envfiles/kipoi-env.yml`;
//! - a shared image (its index keys span several model groups, [`Index::shared_images`]):
//!   `Dockerfile-env.template` with the environment file `envfiles/<tag>.yml`, built FROM the
//!   base, and `Dockerfile-env-slim.template`, which copies that environment out of the full
//!   image onto a slim Debian;
//! - any other image of `docker-to-model.json`: the group templates (`Dockerfile.template`,
//!   `Dockerfile-slim.template`) for its group, the common path prefix of its index keys
//!   (`MMSplice` for the four `MMSplice/*` keys of `mmsplice`), as the sync's plan has it.
//!
//! A shared image is never rendered from one group's template: [`group_recipe`] refuses it.
//! The build order is data: [`build_order`] reads each recipe's `FROM` images.
//!
//! ```text
//! kipoi-base-env ──FROM──> sharedpy3keras2tf1 ──FROM (stage)──> sharedpy3keras2tf1-slim
//!        └──────FROM──────> deepmel            (deepmel-slim: miniconda build stage + Debian)
//! ```

mod envfile;
mod from;
mod matrix;
mod order;

pub use envfile::{EnvFile, EnvFiles, BASE_ENV_FILE, BASE_ENV_NAME, ENVFILES_DIR};
pub use from::from_images;
pub use matrix::{matrix, release_entries, Matrix, MatrixEntry, MatrixKind};
pub use order::{build_order, is_recipe_image};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dockerfile::{self, DockerfileError, RenderOptions, Variant};
use crate::fsutil::{write_atomic, AtomicWriteError};
use crate::index::{one_model_per_modelgroup, Index};
use crate::names::{full_image, full_tag, is_slim, slim_image, split_image, top_group};

/// What an image's recipe is made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecipeKind {
    /// The base image, from the `kipoi-env` environment file.
    Base,
    /// A shared environment, from the environment file `envfiles/<env>.yml`.
    SharedEnv {
        /// The environment file's name without `.yml` (the image's full tag).
        env: String,
    },
    /// A model group's own image, from the group templates.
    Group { group: String },
}

impl RecipeKind {
    /// `base`, `shared-env` or `group`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::SharedEnv { .. } => "shared-env",
            Self::Group { .. } => "group",
        }
    }

    /// The group (own images) or the environment (shared ones); `None` for the base.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Base => None,
            Self::SharedEnv { env } => Some(env),
            Self::Group { group } => Some(group),
        }
    }
}

/// The recipe of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecipe {
    /// The image's index name (`kipoi/kipoi-docker:<tag>` or `…:<tag>-slim`), or the base.
    pub image: String,
    pub kind: RecipeKind,
    pub variant: Variant,
    /// `Dockerfile.<tag>` (upstream's file names; the tag has `-slim` for a slim image).
    pub file_name: String,
    /// The Dockerfile.
    pub text: String,
    /// sha256 hex of `text`: the image's recipe label. The text names the sha256 of every
    /// environment file it uses, so a changed environment changes the hash.
    pub hash: String,
    /// The images it is built from (`FROM` and `COPY --from=`, build stages left out).
    pub from: Vec<String>,
    /// Files the build context must hold besides the Dockerfile: (relative path, bytes).
    pub context: Vec<(String, Vec<u8>)>,
    /// The models it serves (`docker-to-model.json`; a slim image: its full image's).
    pub models: Vec<String>,
    /// The models a release tests in it: every model, one per model group for a shared
    /// image, none for the base.
    pub test_models: Vec<String>,
}

impl ImageRecipe {
    /// The image's tag (`deepmel-slim`).
    #[must_use]
    pub fn tag(&self) -> &str {
        split_image(&self.image).1.unwrap_or("latest")
    }
}

/// How recipes are made.
#[derive(Debug, Clone, Default)]
pub struct RecipeOptions {
    /// Templates (`template_dir`: the group templates, and any other it holds) and the images
    /// they start from (`base_image`: also the base recipe's image name).
    pub render: RenderOptions,
    /// A directory of environment files replacing the compiled-in ones.
    pub envfile_dir: Option<PathBuf>,
}

impl RecipeOptions {
    /// The options with the configured defaults: the packaged templates and environment
    /// files unless directories are given, `base_image` else `KIPOI_BASE_IMAGE`,
    /// `build_image` else `KIPOI_BUILD_IMAGE` ([`crate::config`]).
    #[must_use]
    pub fn configured(
        template_dir: Option<PathBuf>,
        envfile_dir: Option<PathBuf>,
        base_image: Option<&str>,
        build_image: Option<&str>,
    ) -> Self {
        Self {
            render: RenderOptions {
                template_dir,
                base_image: crate::config::base_image(base_image),
                build_image: crate::config::build_image(build_image),
                ..RenderOptions::default()
            },
            envfile_dir,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error(
        "`{image}` is a shared image (its index keys span the model groups {groups}): it is built \
         from its environment file, never from the template of one group (`{group}`)"
    )]
    SharedImage {
        image: String,
        groups: String,
        group: String,
    },
    #[error("`{image}` is neither an image of docker-to-model.json nor the base image `{base}`")]
    NotInIndex { image: String, base: String },
    #[error("`{image}` has no model group: no key of model-to-docker.json and no model of docker-to-model.json names it")]
    NoGroup { image: String },
    #[error("no environment file for `{image}`: expected `{file}` in {place}")]
    MissingEnvFile {
        image: String,
        file: String,
        place: String,
    },
    #[error("environment file `{file}` has no top-level `name:`")]
    EnvFileName { file: String },
    #[error(
        "environment file `{file}` creates `{name}`; the base image's environment must be \
         `{expected}` (the group templates run `kipoi env create` in it)"
    )]
    BaseEnvName {
        file: String,
        name: String,
        expected: &'static str,
    },
    #[error("could not read the environment files in `{}`", dir.display())]
    ReadEnvFiles {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read the environment file `{}`", path.display())]
    ReadEnvFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not render the recipe of `{image}`")]
    Render {
        image: String,
        #[source]
        source: DockerfileError,
    },
    #[error("`{image}` is built from `{from}`, an image of `{repository}` that has no recipe")]
    MissingRecipe {
        image: String,
        from: String,
        repository: String,
    },
    #[error("the recipes' FROM images form a cycle: {cycle}")]
    Cycle { cycle: String },
    #[error(
        "the release runs levels 0 to {max}, but {images} would build later: add a level to \
         the release workflow"
    )]
    TooDeep { max: usize, images: String },
    #[error("could not create the directory `{}`", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// Everything recipes are made from: the index, the environment files, the options.
struct Maker<'a> {
    index: &'a Index,
    env: EnvFiles,
    opts: &'a RecipeOptions,
}

impl<'a> Maker<'a> {
    fn new(index: &'a Index, opts: &'a RecipeOptions) -> Result<Self, RecipeError> {
        Ok(Self {
            index,
            env: EnvFiles::load(opts.envfile_dir.as_deref())?,
            opts,
        })
    }

    fn base_image(&self) -> &str {
        &self.opts.render.base_image
    }

    fn env_file(&self, image: &str, file: &str) -> Result<EnvFile, RecipeError> {
        self.env
            .get(file)?
            .ok_or_else(|| RecipeError::MissingEnvFile {
                image: image.to_owned(),
                file: file.to_owned(),
                place: self.env.place(),
            })
    }

    fn models(&self, image: &str) -> Vec<String> {
        self.index
            .models_for_image(image)
            .map(|ms| ms.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    fn is_indexed(&self, image: &str) -> bool {
        let full = full_image(image);
        self.index.models_for_image(&full).is_some() || !self.index.keys_for_image(&full).is_empty()
    }

    fn finish(
        &self,
        image: &str,
        kind: RecipeKind,
        variant: Variant,
        file: &str,
        vars: &BTreeMap<&str, String>,
        context: Vec<(String, Vec<u8>)>,
    ) -> Result<ImageRecipe, RecipeError> {
        let rendered =
            dockerfile::render_template(file, vars, &self.opts.render).map_err(|source| {
                RecipeError::Render {
                    image: image.to_owned(),
                    source,
                }
            })?;
        let models = match kind {
            RecipeKind::Base => Vec::new(),
            _ => self.models(image),
        };
        let test_models = match kind {
            RecipeKind::Base => Vec::new(),
            RecipeKind::SharedEnv { .. } => one_model_per_modelgroup(&models),
            RecipeKind::Group { .. } => models.clone(),
        };
        let tag = split_image(image).1.unwrap_or("latest");
        Ok(ImageRecipe {
            image: image.to_owned(),
            kind,
            variant,
            file_name: format!("Dockerfile.{tag}"),
            from: from_images(&rendered.text),
            text: rendered.text,
            hash: rendered.recipe_hash,
            context,
            models,
            test_models,
        })
    }

    fn base(&self) -> Result<ImageRecipe, RecipeError> {
        let image = self.base_image();
        let env = self.env_file(image, BASE_ENV_FILE)?;
        if env.name != BASE_ENV_NAME {
            return Err(RecipeError::BaseEnvName {
                file: env.file,
                name: env.name,
                expected: BASE_ENV_NAME,
            });
        }
        let vars = env_vars(image, &env);
        let context = vec![(env.context_path(), env.text.into_bytes())];
        self.finish(
            image,
            RecipeKind::Base,
            Variant::Full,
            dockerfile::BASE_TEMPLATE,
            &vars,
            context,
        )
    }

    fn shared(&self, image: &str) -> Result<ImageRecipe, RecipeError> {
        let env_stem = full_tag(image).to_owned();
        let env = self.env_file(image, &format!("{env_stem}.yml"))?;
        let vars = env_vars(&full_image(image), &env);
        let kind = RecipeKind::SharedEnv { env: env_stem };
        if is_slim(image) {
            // The slim image copies the environment out of the full one: no context.
            self.finish(
                image,
                kind,
                Variant::Slim,
                dockerfile::ENV_SLIM_TEMPLATE,
                &vars,
                Vec::new(),
            )
        } else {
            let context = vec![(env.context_path(), env.text.into_bytes())];
            self.finish(
                image,
                kind,
                Variant::Full,
                dockerfile::ENV_TEMPLATE,
                &vars,
                context,
            )
        }
    }

    fn group(&self, group: &str, image: &str) -> Result<ImageRecipe, RecipeError> {
        if self.index.is_shared(image) {
            let full = full_image(image);
            let groups: std::collections::BTreeSet<&str> = self
                .index
                .keys_for_image(&full)
                .into_iter()
                .map(|k| top_group(k.as_str()))
                .collect();
            return Err(RecipeError::SharedImage {
                image: image.to_owned(),
                groups: groups
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                group: group.to_owned(),
            });
        }
        let (variant, file) = if is_slim(image) {
            (Variant::Slim, dockerfile::SLIM_TEMPLATE)
        } else {
            (Variant::Full, dockerfile::FULL_TEMPLATE)
        };
        let mut vars = BTreeMap::new();
        vars.insert("model_group", group.to_owned());
        vars.insert("env_name", dockerfile::env_name(group));
        self.finish(
            image,
            RecipeKind::Group {
                group: group.to_owned(),
            },
            variant,
            file,
            &vars,
            Vec::new(),
        )
    }

    /// The recipe the index gives `image`.
    fn for_image(&self, image: &str) -> Result<ImageRecipe, RecipeError> {
        if image == self.base_image() {
            return self.base();
        }
        if !self.is_indexed(image) {
            return Err(RecipeError::NotInIndex {
                image: image.to_owned(),
                base: self.base_image().to_owned(),
            });
        }
        if self.index.is_shared(image) {
            return self.shared(image);
        }
        let group =
            group_of_image(self.index, &full_image(image)).ok_or_else(|| RecipeError::NoGroup {
                image: image.to_owned(),
            })?;
        self.group(&group, image)
    }

    /// The full images of the index: `docker-to-model.json`'s, in its order.
    fn indexed_images(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for image in self.index.docker_to_model.0.keys() {
            let full = full_image(image.as_str());
            if !out.contains(&full) {
                out.push(full);
            }
        }
        out
    }
}

/// The template variables of a recipe made from environment file `env` for `image`.
fn env_vars(image: &str, env: &EnvFile) -> BTreeMap<&'static str, String> {
    let mut vars = BTreeMap::new();
    vars.insert("image", image.to_owned());
    vars.insert("full_image", full_image(image));
    vars.insert("env_name", env.name.clone());
    vars.insert("env_file", env.file.clone());
    vars.insert("env_file_sha256", env.sha256.clone());
    vars
}

/// The model group an own image is built for: the common path prefix of its index keys
/// (`MMSplice` for `MMSplice/pathogenicity`, `MMSplice/deltaLogitPSI`, …; `DeepMEL` for
/// `DeepMEL`), else of the models `docker-to-model.json` lists for it.
#[must_use]
pub fn group_of_image(index: &Index, image: &str) -> Option<String> {
    let full = full_image(image);
    let keys = index.keys_for_image(&full);
    if !keys.is_empty() {
        return crate::index::common_path_prefix(keys.iter().map(|k| k.as_str()))
            .map(str::to_owned);
    }
    let models = index.models_for_image(&full)?;
    crate::index::common_path_prefix(models.iter().map(|m| m.as_str())).map(str::to_owned)
}

/// Every recipe of the index: the base first, then each image of `docker-to-model.json` in
/// its order, full then slim. Deterministic; the first image without a recipe is an error
/// (see [`check`] for all problems at once).
pub fn recipes_for_index(
    index: &Index,
    opts: &RecipeOptions,
) -> Result<Vec<ImageRecipe>, RecipeError> {
    let maker = Maker::new(index, opts)?;
    let mut out = vec![maker.base()?];
    for full in maker.indexed_images() {
        out.push(maker.for_image(&full)?);
        out.push(maker.for_image(&slim_image(&full))?);
    }
    Ok(out)
}

/// The recipe the index gives `image` (full or `-slim`, or the base image).
pub fn recipe_for_image(
    index: &Index,
    image: &str,
    opts: &RecipeOptions,
) -> Result<ImageRecipe, RecipeError> {
    Maker::new(index, opts)?.for_image(image)
}

/// The group templates rendered for `group` as `image` (full or slim from its tag): how an
/// image for a group new to the index is made. Refused for an image that is shared in the
/// index ([`RecipeError::SharedImage`]): a shared image is only ever built from its
/// environment file.
pub fn group_recipe(
    index: &Index,
    group: &str,
    image: &str,
    opts: &RecipeOptions,
) -> Result<ImageRecipe, RecipeError> {
    Maker::new(index, opts)?.group(group, image)
}

/// The recipe to (re)build `image` with: the index's ([`recipe_for_image`]) when the index
/// knows the image, else the group templates for `group` ([`group_recipe`]; `group` is
/// needed then).
pub fn recipe_for_update(
    index: &Index,
    image: &str,
    group: Option<&str>,
    opts: &RecipeOptions,
) -> Result<ImageRecipe, RecipeError> {
    let maker = Maker::new(index, opts)?;
    match group {
        Some(group) if image != maker.base_image() && !maker.is_indexed(image) => {
            maker.group(group, image)
        }
        _ => maker.for_image(image),
    }
}

/// Writes `recipe` into `dir`: `dir/Dockerfile.<tag>` and its context files
/// (`dir/envfiles/<file>.yml`), so `dir` is a build context for it. Atomic per file.
/// Returns the Dockerfile's path.
pub fn write_recipe(dir: &Path, recipe: &ImageRecipe) -> Result<PathBuf, RecipeError> {
    for (rel, bytes) in &recipe.context {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| RecipeError::CreateDir {
                dir: parent.to_path_buf(),
                source,
            })?;
        }
        write_atomic(&path, bytes)?;
    }
    let path = dir.join(&recipe.file_name);
    write_atomic(&path, recipe.text.as_bytes())?;
    Ok(path)
}

/// Writes every recipe into `dir` ([`write_recipe`]); returns the files written, sorted.
pub fn write_recipes(dir: &Path, recipes: &[ImageRecipe]) -> Result<Vec<PathBuf>, RecipeError> {
    let mut written = std::collections::BTreeSet::new();
    for recipe in recipes {
        written.insert(write_recipe(dir, recipe)?);
        written.extend(recipe.context.iter().map(|(rel, _)| dir.join(rel)));
    }
    Ok(written.into_iter().collect())
}

/// Renders the group templates for `group` as `image` ([`group_recipe`], so never a shared
/// image) and writes it into `dir` ([`write_recipe`]).
pub fn write_group_recipe(
    index: &Index,
    dir: &Path,
    group: &str,
    image: &str,
    opts: &RecipeOptions,
) -> Result<(PathBuf, ImageRecipe), RecipeError> {
    let recipe = group_recipe(index, group, image, opts)?;
    let path = write_recipe(dir, &recipe)?;
    Ok((path, recipe))
}

/// One image in [`check`]'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub image: String,
    pub kind: RecipeKind,
    pub file_name: String,
    pub hash: String,
    /// Its index keys (the model groups or models it serves); none for the base.
    pub keys: Vec<String>,
    /// How many models it serves.
    pub models: usize,
    /// The images built from it (a recipe of ours names it in `FROM`).
    pub dependents: Vec<String>,
}

/// What [`check`] found: one line per image with a recipe, and every problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub lines: Vec<CheckLine>,
    pub problems: Vec<String>,
}

impl CheckReport {
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks that every image of the index (and its `-slim`, and the base) has a recipe, that
/// every environment file serves an image, and that the recipes have a build order. Never
/// stops at the first problem.
#[must_use]
pub fn check(index: &Index, opts: &RecipeOptions) -> CheckReport {
    let mut report = CheckReport::default();
    let problem = |e: &RecipeError| crate::errchain::chain(e);
    let maker = match Maker::new(index, opts) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(problem(&e));
            return report;
        }
    };
    let mut recipes = Vec::new();
    match maker.base() {
        Ok(r) => recipes.push(r),
        Err(e) => report.problems.push(problem(&e)),
    }
    let mut images = maker.indexed_images();
    for image in index.model_to_docker.0.values() {
        let full = full_image(image.as_str());
        if !images.contains(&full) {
            report.problems.push(format!(
                "`{full}` (model-to-docker.json) has no entry in docker-to-model.json, so no recipe"
            ));
            images.push(full);
        }
    }
    for full in &images {
        for image in [full.clone(), slim_image(full)] {
            match maker.for_image(&image) {
                Ok(r) => recipes.push(r),
                Err(e) => report
                    .problems
                    .push(format!("`{image}` has no recipe: {}", problem(&e))),
            }
        }
    }
    // Environment files that no image of the index is built from serve no image.
    let used: Vec<String> = std::iter::once(BASE_ENV_FILE.to_owned())
        .chain(
            images
                .iter()
                .filter(|i| index.is_shared(i))
                .map(|i| format!("{}.yml", full_tag(i))),
        )
        .collect();
    for file in maker.env.names() {
        if used.iter().any(|u| u == file) {
            continue;
        }
        let stem = file.strip_suffix(".yml").unwrap_or(file);
        let own = images.iter().find(|i| full_tag(i) == stem);
        let why = match own {
            Some(image) => format!(
                "`{image}` is not a shared image (its index keys are all in one model group), so it is built from the group templates"
            ),
            None => format!("no image of the index has the tag `{stem}`"),
        };
        report.problems.push(format!(
            "environment file `{ENVFILES_DIR}/{file}` ({}) serves no image: {why}",
            maker.env.place()
        ));
    }
    let deps = match order::dependencies(&recipes) {
        Ok(d) => d,
        Err(e) => {
            report.problems.push(problem(&e));
            vec![Vec::new(); recipes.len()]
        }
    };
    if let Err(cycle) = order::topological(&deps) {
        let e = RecipeError::Cycle {
            cycle: order::cycle_text(cycle.iter().map(|&i| recipes[i].image.as_str())),
        };
        report.problems.push(problem(&e));
    }
    for (i, r) in recipes.iter().enumerate() {
        let keys = match r.kind {
            RecipeKind::Base => Vec::new(),
            _ => index
                .keys_for_image(&full_image(&r.image))
                .into_iter()
                .map(ToString::to_string)
                .collect(),
        };
        let dependents = deps
            .iter()
            .enumerate()
            .filter(|(_, d)| d.contains(&i))
            .map(|(j, _)| recipes[j].image.clone())
            .collect();
        report.lines.push(CheckLine {
            image: r.image.clone(),
            kind: r.kind.clone(),
            file_name: r.file_name.clone(),
            hash: r.hash.clone(),
            keys,
            models: r.models.len(),
            dependents,
        });
    }
    report
}

#[cfg(test)]
mod tests;
