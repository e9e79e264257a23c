//! PyO3 bindings: argument conversion, GIL release and error mapping only. No logic.

mod convert;
mod errors;
mod index;
mod plan;

use pyo3::prelude::*;

/// Registers every binding on the `_engine` module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(index::load_json, m)?)?;
    m.add_function(wrap_pyfunction!(index::save_json, m)?)?;
    m.add_function(wrap_pyfunction!(index::dumps_indent4, m)?)?;
    m.add_function(wrap_pyfunction!(index::one_model_per_modelgroup, m)?)?;
    m.add_function(wrap_pyfunction!(
        index::total_number_of_unique_containers,
        m
    )?)?;
    m.add_class::<index::PyIndex>()?;
    m.add_function(wrap_pyfunction!(plan::plan, m)?)?;
    m.add_function(wrap_pyfunction!(plan::changed_paths, m)?)?;
    m.add_function(wrap_pyfunction!(plan::model_groups, m)?)?;
    m.add_class::<plan::PyPlan>()?;
    m.add_class::<plan::PyAction>()?;
    m.add_class::<plan::PySkipped>()?;
    Ok(())
}
