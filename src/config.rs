//! Where things are unless told otherwise: the one place the engine reads its defaults from
//! the environment (as upstream and CI conventions name them). Every one is also an
//! argument of the calls that use it; an argument always wins.
//!
//! | what | argument | environment | default |
//! |---|---|---|---|
//! | the model zoo | `--zoo` | `KIPOI_MODEL_REPO` | `github:kipoi/models` |
//! | the index directory | `--container-info` | `KIPOI_CONTAINER_INFO` | `./container-info` |
//! | the stored zoo commit | `--hash-file` | `KIPOI_MODEL_REPO_HASH` | `./kipoi-model-repo-hash` |
//! | where images are pushed | `--registry` | `KIPOI_DOCKER_REPO` | `kipoi/kipoi-docker` |
//! | the base image of own images | `--base-image` | `KIPOI_BASE_IMAGE` | `kipoi/kipoi-docker:kipoi-base-env` |
//! | what the base recipe starts from | `--build-image` | `KIPOI_BUILD_IMAGE` | `continuumio/miniconda3:latest` |
//! | the sync journal | `--journal` | — | `./.kipoi-sync` (a release: `./.kipoi-release`) |
//! | where SIFs are downloaded (`get_singularity_image`) | `folder` | `SINGULARITY_PULL_FOLDER` | `.` |
//!
//! A sync or release builds its SIFs in its journal's `sif/` (a work directory of its own,
//! removed when the run completes), never in `SINGULARITY_PULL_FOLDER`: that folder holds the
//! user's downloaded SIFs, which a build of the same name would replace and then remove.
//!
//! Zenodo (`ZENODO_URL`, `ZENODO_ACCESS_TOKEN`), GitHub (`GITHUB_API_URL`, `GITHUB_PAT` /
//! `GITHUB_TOKEN`), Docker (`DOCKER_HOST`, `DOCKER_USERNAME` / `DOCKER_PASSWORD`) and HTTP
//! (`KIPOI_HTTP_TIMEOUT`) are read by their clients.

use std::path::{Path, PathBuf};

/// The real model zoo.
pub const DEFAULT_ZOO: &str = "github:kipoi/models";
/// The journal directory of a sync, relative to the working directory.
pub const DEFAULT_JOURNAL: &str = ".kipoi-sync";

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The zoo: `explicit`, else `KIPOI_MODEL_REPO`, else `github:kipoi/models`.
#[must_use]
pub fn zoo(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| env("KIPOI_MODEL_REPO"))
        .unwrap_or_else(|| DEFAULT_ZOO.to_owned())
}

/// The zoo checkout model tests run against: `explicit`, else `KIPOI_MODEL_REPO` when it
/// names a directory, else none (upstream's `kipoi test MODEL --source=kipoi`).
#[must_use]
pub fn test_zoo(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => env("KIPOI_MODEL_REPO")
            .map(PathBuf::from)
            .filter(|p| p.is_dir()),
    }
}

/// The index directory: `explicit`, else `KIPOI_CONTAINER_INFO`, else `./container-info`.
#[must_use]
pub fn container_info(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| env("KIPOI_CONTAINER_INFO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("container-info"))
}

/// The stored zoo commit: `explicit`, else `KIPOI_MODEL_REPO_HASH`, else
/// `./kipoi-model-repo-hash`.
#[must_use]
pub fn hash_file(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| env("KIPOI_MODEL_REPO_HASH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("kipoi-model-repo-hash"))
}

/// The repository images are pushed to: `explicit`, else `KIPOI_DOCKER_REPO`, else
/// `kipoi/kipoi-docker` (index entries keep the `kipoi/kipoi-docker:` form whatever it is).
#[must_use]
pub fn docker_repository(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| env("KIPOI_DOCKER_REPO"))
        .unwrap_or_else(|| crate::names::INDEX_REPOSITORY.to_owned())
}

/// The base image own images are built from: `explicit`, else `KIPOI_BASE_IMAGE`, else
/// `kipoi/kipoi-docker:kipoi-base-env`.
#[must_use]
pub fn base_image(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| env("KIPOI_BASE_IMAGE"))
        .unwrap_or_else(|| crate::dockerfile::DEFAULT_BASE_IMAGE.to_owned())
}

/// The image the base recipe starts from: `explicit`, else `KIPOI_BUILD_IMAGE`, else
/// `continuumio/miniconda3:latest`.
#[must_use]
pub fn build_image(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| env("KIPOI_BUILD_IMAGE"))
        .unwrap_or_else(|| crate::dockerfile::DEFAULT_BUILD_IMAGE.to_owned())
}

/// Where SIFs are downloaded (upstream's `SINGULARITY_PULL_FOLDER`): `explicit`, else
/// `SINGULARITY_PULL_FOLDER`, else `fallback`. Not where a sync or release builds them (its
/// journal's `sif/`): a build must never replace or remove a SIF the user downloaded.
#[must_use]
pub fn sif_folder(explicit: Option<&Path>, fallback: &Path) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| env("SINGULARITY_PULL_FOLDER").map(PathBuf::from))
        .unwrap_or_else(|| fallback.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_values_win() {
        assert_eq!(zoo(Some("/z")), "/z");
        assert_eq!(container_info(Some(Path::new("/c"))), PathBuf::from("/c"));
        assert_eq!(hash_file(Some(Path::new("/h"))), PathBuf::from("/h"));
        assert_eq!(docker_repository(Some("r")), "r");
        assert_eq!(base_image(Some("b:1")), "b:1");
        assert_eq!(
            sif_folder(Some(Path::new("/s")), Path::new("/f")),
            PathBuf::from("/s")
        );
        assert_eq!(test_zoo(Some(Path::new("/t"))), Some(PathBuf::from("/t")));
    }
}
