//! Bindings for the recipes of every image, their check, and the CI matrices.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::dockerfile::Variant;
use crate::index::Index;
use crate::recipes::{self, MatrixKind, RecipeOptions};

/// The recipe of one image (read-only).
#[pyclass(module = "kipoi_containers._engine", name = "ImageRecipe", frozen)]
pub(crate) struct PyImageRecipe {
    #[pyo3(get)]
    image: String,
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    subject: Option<String>,
    #[pyo3(get)]
    variant: String,
    #[pyo3(get)]
    file_name: String,
    #[pyo3(get)]
    text: String,
    #[pyo3(get)]
    hash: String,
    #[pyo3(get)]
    from_images: Vec<String>,
    #[pyo3(get)]
    models: Vec<String>,
    #[pyo3(get)]
    test_models: Vec<String>,
    context: Vec<(String, Vec<u8>)>,
}

#[pymethods]
impl PyImageRecipe {
    /// The files its build context needs besides the Dockerfile: `[(path, bytes)]`.
    #[getter]
    fn context<'py>(&self, py: Python<'py>) -> Vec<(String, Bound<'py, PyBytes>)> {
        self.context
            .iter()
            .map(|(p, b)| (p.clone(), PyBytes::new(py, b)))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "ImageRecipe(image={:?}, kind={:?}, file_name={:?}, hash={:?})",
            self.image, self.kind, self.file_name, self.hash
        )
    }
}

impl From<recipes::ImageRecipe> for PyImageRecipe {
    fn from(r: recipes::ImageRecipe) -> Self {
        Self {
            kind: r.kind.as_str().to_owned(),
            subject: r.kind.subject().map(str::to_owned),
            variant: match r.variant {
                Variant::Full => "full",
                Variant::Slim => "slim",
            }
            .to_owned(),
            image: r.image,
            file_name: r.file_name,
            text: r.text,
            hash: r.hash,
            from_images: r.from,
            models: r.models,
            test_models: r.test_models,
            context: r.context,
        }
    }
}

/// One image of a recipe check (read-only).
#[pyclass(
    module = "kipoi_containers._engine",
    name = "RecipeCheckLine",
    frozen,
    get_all
)]
pub(crate) struct PyCheckLine {
    image: String,
    kind: String,
    subject: Option<String>,
    file_name: String,
    hash: String,
    keys: Vec<String>,
    models: usize,
    dependents: Vec<String>,
}

/// What a recipe check found (read-only).
#[pyclass(
    module = "kipoi_containers._engine",
    name = "RecipeCheck",
    frozen,
    get_all
)]
pub(crate) struct PyCheck {
    lines: Vec<Py<PyCheckLine>>,
    problems: Vec<String>,
}

#[pymethods]
impl PyCheck {
    fn __bool__(&self) -> bool {
        self.problems.is_empty()
    }
}

fn options(
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
) -> RecipeOptions {
    RecipeOptions::configured(
        template_dir,
        envfile_dir,
        base_image.as_deref(),
        build_image.as_deref(),
    )
}

fn load_index(container_info: Option<PathBuf>) -> PyResult<Index> {
    Ok(Index::load(&crate::config::container_info(
        container_info.as_deref(),
    ))?)
}

/// Every recipe of the index (`container_info`, default `$KIPOI_CONTAINER_INFO` or
/// `./container-info`): the base, then each image of `docker-to-model.json`, full then slim;
/// in build order when `build_order`.
#[pyfunction]
#[pyo3(signature = (container_info=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None, build_order=false))]
pub(crate) fn recipes_for_index(
    container_info: Option<PathBuf>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
    build_order: bool,
) -> PyResult<Vec<PyImageRecipe>> {
    let index = load_index(container_info)?;
    let all = recipes::recipes_for_index(
        &index,
        &options(template_dir, envfile_dir, base_image, build_image),
    )?;
    if build_order {
        let ordered = recipes::build_order(&all)?;
        Ok(ordered.into_iter().cloned().map(Into::into).collect())
    } else {
        Ok(all.into_iter().map(Into::into).collect())
    }
}

/// The recipe of `image`: the index's when it knows the image (a shared image: its
/// environment file), else the group templates for `model_group` (an image new to the index).
#[pyfunction]
#[pyo3(signature = (image, container_info=None, model_group=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None))]
pub(crate) fn recipe_for_image(
    image: &str,
    container_info: Option<PathBuf>,
    model_group: Option<&str>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
) -> PyResult<PyImageRecipe> {
    let index = load_index(container_info)?;
    let recipe = recipes::recipe_for_update(
        &index,
        image,
        model_group,
        &options(template_dir, envfile_dir, base_image, build_image),
    )?;
    Ok(recipe.into())
}

/// Writes the recipe of `image` ([`recipe_for_image`]) into `output_dir`:
/// `Dockerfile.<tag>` and the files of its context (`envfiles/…`), so `output_dir` is its
/// build context. Returns `(dockerfile path, recipe)`.
#[pyfunction]
#[pyo3(signature = (image, output_dir, container_info=None, model_group=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_image_recipe(
    image: &str,
    output_dir: PathBuf,
    container_info: Option<PathBuf>,
    model_group: Option<&str>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
) -> PyResult<(PathBuf, PyImageRecipe)> {
    let index = load_index(container_info)?;
    let recipe = recipes::recipe_for_update(
        &index,
        image,
        model_group,
        &options(template_dir, envfile_dir, base_image, build_image),
    )?;
    let path = recipes::write_recipe(&output_dir, &recipe)?;
    Ok((path, recipe.into()))
}

/// Writes every recipe of the index into `output_dir`; returns the files written.
#[pyfunction]
#[pyo3(signature = (output_dir, container_info=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None))]
pub(crate) fn write_recipes(
    output_dir: PathBuf,
    container_info: Option<PathBuf>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
) -> PyResult<Vec<PathBuf>> {
    let index = load_index(container_info)?;
    let all = recipes::recipes_for_index(
        &index,
        &options(template_dir, envfile_dir, base_image, build_image),
    )?;
    Ok(recipes::write_recipes(&output_dir, &all)?)
}

/// Checks that every image of the index (its `-slim`, the base) has a recipe, that every
/// environment file serves an image and that the recipes have a build order.
#[pyfunction]
#[pyo3(signature = (container_info=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None))]
pub(crate) fn check_recipes(
    py: Python<'_>,
    container_info: Option<PathBuf>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
) -> PyResult<PyCheck> {
    let index = load_index(container_info)?;
    let report = recipes::check(
        &index,
        &options(template_dir, envfile_dir, base_image, build_image),
    );
    let lines = report
        .lines
        .into_iter()
        .map(|l| {
            Py::new(
                py,
                PyCheckLine {
                    kind: l.kind.as_str().to_owned(),
                    subject: l.kind.subject().map(str::to_owned),
                    image: l.image,
                    file_name: l.file_name,
                    hash: l.hash,
                    keys: l.keys,
                    models: l.models,
                    dependents: l.dependents,
                },
            )
        })
        .collect::<PyResult<_>>()?;
    Ok(PyCheck {
        lines,
        problems: report.problems,
    })
}

/// The GitHub Actions matrix `kind` (`test`, `release`, `singularity`) of the index as one
/// line of JSON; `level` keeps the release entries of that level, `max_level` fails naming
/// any release entry deeper than it.
#[pyfunction]
#[pyo3(signature = (kind, container_info=None, level=None, max_level=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn recipe_matrix(
    kind: &str,
    container_info: Option<PathBuf>,
    level: Option<usize>,
    max_level: Option<usize>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
) -> PyResult<String> {
    let kind = MatrixKind::parse(kind).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "kind must be `test`, `release` or `singularity`, got `{kind}`"
        ))
    })?;
    let index = load_index(container_info)?;
    let matrix = recipes::matrix(
        &index,
        kind,
        &options(template_dir, envfile_dir, base_image, build_image),
    )?;
    if let Some(max) = max_level {
        matrix.check_max_level(max)?;
    }
    Ok(match level {
        Some(l) => matrix.at_level(l).to_json(),
        None => matrix.to_json(),
    })
}

/// Builds `image` from its recipe ([`recipe_for_image`]): the Dockerfile and the files its
/// build context needs go to the engine from memory. Labelled with the recipe hash, and with
/// `model_group` / `zoo_commit` when given. Returns the image id.
#[pyfunction]
#[pyo3(signature = (image, container_info=None, model_group=None, template_dir=None, envfile_dir=None, base_image=None, build_image=None, labels=None, nocache=false, zoo_commit=None, docker_host=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_recipe(
    py: Python<'_>,
    image: &str,
    container_info: Option<PathBuf>,
    model_group: Option<&str>,
    template_dir: Option<PathBuf>,
    envfile_dir: Option<PathBuf>,
    base_image: Option<String>,
    build_image: Option<String>,
    labels: Option<std::collections::HashMap<String, String>>,
    nocache: bool,
    zoo_commit: Option<String>,
    docker_host: Option<String>,
) -> PyResult<String> {
    let index = load_index(container_info)?;
    let recipe = recipes::recipe_for_update(
        &index,
        image,
        model_group,
        &options(template_dir, envfile_dir, base_image, build_image),
    )?;
    let mut all = crate::docker::group_labels(model_group, zoo_commit.as_deref());
    all.extend(labels.unwrap_or_default());
    super::wait::wait(py, || async move {
        let engine = crate::docker::Engine::connect(docker_host.as_deref()).await?;
        let image = recipe.image.clone();
        let mut on_line = |line: &str| log::info!("[build {image}] {line}");
        let id = engine
            .build_recipe(&recipe, &all, nocache, &mut on_line)
            .await?;
        Ok::<_, PyErr>(id)
    })
}

/// Registers the recipe bindings.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyImageRecipe>()?;
    m.add_class::<PyCheckLine>()?;
    m.add_class::<PyCheck>()?;
    m.add_function(wrap_pyfunction!(recipes_for_index, m)?)?;
    m.add_function(wrap_pyfunction!(recipe_for_image, m)?)?;
    m.add_function(wrap_pyfunction!(write_image_recipe, m)?)?;
    m.add_function(wrap_pyfunction!(write_recipes, m)?)?;
    m.add_function(wrap_pyfunction!(check_recipes, m)?)?;
    m.add_function(wrap_pyfunction!(recipe_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(build_recipe, m)?)?;
    Ok(())
}
