//! Bindings for the naming rules (images, SIFs, Dockerfiles) and the index's key rules, so
//! the Python face never re-implements them.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::prelude::*;

use crate::{dockerfile, index, names};

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
