//! PyO3 bindings: argument conversion, GIL release and error mapping only. No logic.

mod convert;
mod docker;
mod errors;
mod github;
mod index;
mod names;
mod plan;
mod recipes;
mod sif;
mod sync;
mod wait;
mod zenodo;

use pyo3::prelude::*;

/// Registers every binding on the `_engine` module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(index::load_json, m)?)?;
    m.add_function(wrap_pyfunction!(index::save_json, m)?)?;
    m.add_function(wrap_pyfunction!(index::write_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(index::dumps_indent4, m)?)?;
    m.add_function(wrap_pyfunction!(index::one_model_per_modelgroup, m)?)?;
    m.add_function(wrap_pyfunction!(
        index::total_number_of_unique_containers,
        m
    )?)?;
    m.add_class::<index::PyIndex>()?;
    m.add_function(wrap_pyfunction!(names::image_tag_for_group, m)?)?;
    m.add_function(wrap_pyfunction!(names::image_for_group, m)?)?;
    m.add_function(wrap_pyfunction!(names::image_tag, m)?)?;
    m.add_function(wrap_pyfunction!(names::slim_image, m)?)?;
    m.add_function(wrap_pyfunction!(names::full_image, m)?)?;
    m.add_function(wrap_pyfunction!(names::sif_name_for_image, m)?)?;
    m.add_function(wrap_pyfunction!(names::dockerfile_for_image, m)?)?;
    m.add_function(wrap_pyfunction!(names::longest_prefix_key, m)?)?;
    m.add_function(wrap_pyfunction!(names::shared_images_of, m)?)?;
    m.add_function(wrap_pyfunction!(names::config_zoo, m)?)?;
    m.add_function(wrap_pyfunction!(names::config_test_zoo, m)?)?;
    m.add_function(wrap_pyfunction!(names::config_container_info, m)?)?;
    m.add_function(wrap_pyfunction!(names::config_hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(names::config_docker_repository, m)?)?;
    m.add_function(wrap_pyfunction!(names::config_sif_folder, m)?)?;
    m.add_function(wrap_pyfunction!(plan::plan, m)?)?;
    m.add_function(wrap_pyfunction!(plan::changed_paths, m)?)?;
    m.add_function(wrap_pyfunction!(plan::model_groups, m)?)?;
    m.add_function(wrap_pyfunction!(plan::models_of_group, m)?)?;
    m.add_function(wrap_pyfunction!(plan::resolve_revision, m)?)?;
    m.add_class::<plan::PyPlan>()?;
    m.add_class::<plan::PyAction>()?;
    m.add_class::<plan::PySkipped>()?;
    m.add_class::<docker::PyModelTestResult>()?;
    m.add_function(wrap_pyfunction!(docker::render_dockerfile, m)?)?;
    m.add_function(wrap_pyfunction!(docker::render_dockerfile_for_image, m)?)?;
    m.add_function(wrap_pyfunction!(docker::docker_ping, m)?)?;
    m.add_function(wrap_pyfunction!(docker::build_image, m)?)?;
    m.add_function(wrap_pyfunction!(docker::build_image_async, m)?)?;
    m.add_function(wrap_pyfunction!(docker::test_model, m)?)?;
    m.add_function(wrap_pyfunction!(docker::test_model_async, m)?)?;
    m.add_function(wrap_pyfunction!(docker::test_models, m)?)?;
    m.add_function(wrap_pyfunction!(docker::push_image, m)?)?;
    m.add_function(wrap_pyfunction!(docker::push_image_async, m)?)?;
    m.add_function(wrap_pyfunction!(docker::docker_cleanup, m)?)?;
    m.add_function(wrap_pyfunction!(docker::export_image, m)?)?;
    m.add_function(wrap_pyfunction!(docker::model_test_args, m)?)?;
    m.add_function(wrap_pyfunction!(docker::registry_image, m)?)?;
    m.add_function(wrap_pyfunction!(docker::pull_image, m)?)?;
    m.add_function(wrap_pyfunction!(docker::ensure_image, m)?)?;
    m.add_function(wrap_pyfunction!(github::zoo_branch_exists, m)?)?;
    m.add_function(wrap_pyfunction!(github::zoo_read_json, m)?)?;
    m.add_function(wrap_pyfunction!(github::zoo_write_json, m)?)?;
    m.add_function(wrap_pyfunction!(github::zoo_open_pull_request, m)?)?;
    m.add_class::<zenodo::PyZenodoClient>()?;
    m.add_function(wrap_pyfunction!(zenodo::md5_file, m)?)?;
    sif::register(m)?;
    recipes::register(m)?;
    m.add_class::<sync::PySyncReport>()?;
    m.add_function(wrap_pyfunction!(sync::sync, m)?)?;
    m.add_function(wrap_pyfunction!(sync::sync_async, m)?)?;
    m.add_function(wrap_pyfunction!(sync::sync_plan, m)?)?;
    m.add_function(wrap_pyfunction!(sync::stored_hash, m)?)?;
    m.add_function(wrap_pyfunction!(sync::release, m)?)?;
    m.add_function(wrap_pyfunction!(sync::release_plan, m)?)?;
    m.add_function(wrap_pyfunction!(sync::merge_results, m)?)?;
    m.add_function(wrap_pyfunction!(zenodo::record_id_of_url, m)?)?;
    m.add_function(wrap_pyfunction!(zenodo::record_text, m)?)?;
    m.add_function(wrap_pyfunction!(zenodo::model_group_text, m)?)?;
    m.add_function(wrap_pyfunction!(zenodo::shared_env_text, m)?)?;
    m.add_function(wrap_pyfunction!(zenodo::group_except_text, m)?)?;
    m.add_function(wrap_pyfunction!(zenodo::deposit_metadata, m)?)?;
    Ok(())
}
