//! Bindings for the naming rules (images, SIFs, Dockerfiles) and the index's key rules, so
//! the Python face never re-implements them.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::prelude::*;

use crate::{config, dockerfile, index, names};

/// `MMSplice/mtsplice` → `mmsplice-mtsplice`.
#[pyfunction]
pub(crate) fn image_tag_for_group(group: &str) -> String {
    names::image_tag_for_group(group)
}

/// `DeepMEL` → `kipoi/kipoi-docker:deepmel`.
#[pyfunction]
pub(crate) fn image_for_group(group: &str) -> String {
    names::image_for_group(group)
}

/// The tag of `image` (`kipoi/kipoi-docker:deepmel-slim` → `deepmel-slim`; `latest` when
/// it has none).
#[pyfunction]
pub(crate) fn image_tag(image: &str) -> String {
    names::split_image(image).1.unwrap_or("latest").to_owned()
}

/// `repo:tag` → `repo:tag-slim` (unchanged when already slim).
#[pyfunction]
pub(crate) fn slim_image(image: &str) -> String {
    names::slim_image(image)
}

/// `repo:tag-slim` → `repo:tag` (unchanged when not slim).
#[pyfunction]
pub(crate) fn full_image(image: &str) -> String {
    names::full_image(image)
}

/// `kipoi/kipoi-docker:deepmel[-slim]` → `kipoi-docker_deepmel-slim`.
#[pyfunction]
pub(crate) fn sif_name_for_image(image: &str) -> String {
    names::sif_name_for_image(image)
}

/// `(dir/Dockerfile.<tag>[-slim], "full" | "slim")` for an image.
#[pyfunction]
pub(crate) fn dockerfile_for_image(dockerfiles_dir: PathBuf, image: &str) -> (PathBuf, String) {
    let (path, variant) = dockerfile::dockerfile_for_image(&dockerfiles_dir, image);
    let name = match variant {
        dockerfile::Variant::Full => "full",
        dockerfile::Variant::Slim => "slim",
    };
    (path, name.to_owned())
}

/// The key of `keys` responsible for `model`: `model` itself, else the longest key that is
/// a `/`-boundary prefix of it; `None` when no key covers it.
#[pyfunction]
pub(crate) fn longest_prefix_key(keys: Vec<String>, model: &str) -> Option<String> {
    index::longest_prefix_key(keys.iter(), model).cloned()
}

/// The shared images of a `model-to-docker` mapping (images whose keys span several groups).
#[pyfunction]
pub(crate) fn shared_images_of(model_to_docker: HashMap<String, String>) -> Vec<String> {
    let mut shared: Vec<String> = index::shared_images_of(
        model_to_docker
            .iter()
            .map(|(k, i)| (k.as_str(), i.as_str())),
    )
    .into_iter()
    .map(str::to_owned)
    .collect();
    shared.sort();
    shared
}

/// The zoo: `explicit`, else `KIPOI_MODEL_REPO`, else `github:kipoi/models`.
#[pyfunction]
#[pyo3(signature = (explicit=None))]
pub(crate) fn config_zoo(explicit: Option<String>) -> String {
    config::zoo(explicit.as_deref())
}

/// The zoo checkout model tests run against (`explicit`, else `KIPOI_MODEL_REPO` when it is
/// a directory), or `None`.
#[pyfunction]
#[pyo3(signature = (explicit=None))]
pub(crate) fn config_test_zoo(explicit: Option<PathBuf>) -> Option<PathBuf> {
    config::test_zoo(explicit.as_deref())
}

/// The index directory (`explicit`, else `KIPOI_CONTAINER_INFO`, else `./container-info`).
#[pyfunction]
#[pyo3(signature = (explicit=None))]
pub(crate) fn config_container_info(explicit: Option<PathBuf>) -> PathBuf {
    config::container_info(explicit.as_deref())
}

/// The stored zoo commit's file (`explicit`, else `KIPOI_MODEL_REPO_HASH`, else
/// `./kipoi-model-repo-hash`).
#[pyfunction]
#[pyo3(signature = (explicit=None))]
pub(crate) fn config_hash_file(explicit: Option<PathBuf>) -> PathBuf {
    config::hash_file(explicit.as_deref())
}

/// Where images are pushed (`explicit`, else `KIPOI_DOCKER_REPO`, else `kipoi/kipoi-docker`).
#[pyfunction]
#[pyo3(signature = (explicit=None))]
pub(crate) fn config_docker_repository(explicit: Option<String>) -> String {
    config::docker_repository(explicit.as_deref())
}

/// Where SIFs are downloaded (`explicit`, else `SINGULARITY_PULL_FOLDER`, else `fallback`);
/// a sync or release builds them in its journal's `sif/` instead.
#[pyfunction]
#[pyo3(signature = (explicit=None, fallback=PathBuf::from(".")))]
pub(crate) fn config_sif_folder(explicit: Option<PathBuf>, fallback: PathBuf) -> PathBuf {
    config::sif_folder(explicit.as_deref(), &fallback)
}
