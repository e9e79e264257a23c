//! Bindings for the index files: plain functions over dicts, and the typed `Index`.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::convert::{serialize_to_py, to_py, to_value};
use crate::index;

/// Reads a JSON file (validated when it is one of the three index files) into dicts/lists.
#[pyfunction]
pub(crate) fn load_json<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let value = py.detach(|| index::load_json_file(&path))?;
    to_py(py, &value)
}

/// Writes `obj` to `path` atomically, formatted like `json.dump(obj, f, indent=4)`.
#[pyfunction]
pub(crate) fn save_json(py: Python<'_>, path: PathBuf, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let value = to_value(obj)?;
    py.detach(|| index::save_json_file(&path, &value))?;
    Ok(())
}

/// Replaces the file at `path` with `data` atomically (the one atomic-write helper:
/// temporary file, fsync, rename, directory fsync), for files the Python face writes.
#[pyfunction]
pub(crate) fn write_atomic(py: Python<'_>, path: PathBuf, data: Vec<u8>) -> PyResult<()> {
    py.detach(|| crate::fsutil::write_atomic(&path, &data))?;
    Ok(())
}

/// Formats `obj` exactly as `json.dumps(obj, indent=4)` does.
#[pyfunction]
pub(crate) fn dumps_indent4(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(crate::pyjson::to_string_indent4(&to_value(obj)?))
}

#[pyfunction]
pub(crate) fn one_model_per_modelgroup(models: Vec<String>) -> Vec<String> {
    index::one_model_per_modelgroup(&models)
}

#[pyfunction]
pub(crate) fn total_number_of_unique_containers(containers: Vec<String>) -> usize {
    index::total_number_of_unique_containers(&containers)
}

/// The three index files of one `container-info` directory, validated, with lookups.
#[pyclass(module = "kipoi_containers._engine", name = "Index", frozen)]
pub(crate) struct PyIndex {
    pub(crate) inner: index::Index,
}

#[pymethods]
impl PyIndex {
    /// Loads `model-to-docker.json`, `docker-to-model.json` and `model-to-singularity.json`
    /// from `directory`.
    #[staticmethod]
    fn load(py: Python<'_>, directory: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| index::Index::load(&directory))?;
        Ok(Self { inner })
    }

    /// Writes the three files into `directory`, each atomically.
    fn save(&self, py: Python<'_>, directory: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save(&directory))?;
        Ok(())
    }

    fn key_for_model(&self, model: &str) -> Option<String> {
        self.inner.key_for_model(model).map(ToString::to_string)
    }

    fn image_for_model(&self, model: &str) -> Option<String> {
        self.inner.image_for_model(model).map(ToString::to_string)
    }

    fn models_for_image(&self, image: &str) -> Option<Vec<String>> {
        self.inner
            .models_for_image(image)
            .map(|ms| ms.iter().map(ToString::to_string).collect())
    }

    fn keys_for_image(&self, image: &str) -> Vec<String> {
        self.inner
            .keys_for_image(image)
            .into_iter()
            .map(ToString::to_string)
            .collect()
    }

    fn singularity_for_model<'py>(
        &self,
        py: Python<'py>,
        model: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .singularity_for_model(model)
            .map(|e| serialize_to_py(py, e))
            .transpose()
    }

    fn shared_images(&self) -> Vec<String> {
        self.inner
            .shared_images()
            .into_iter()
            .map(ToString::to_string)
            .collect()
    }

    fn is_shared(&self, image: &str) -> bool {
        self.inner.is_shared(image)
    }

    fn consistency_problems(&self) -> Vec<String> {
        self.inner.consistency_problems()
    }

    #[getter]
    fn model_to_docker<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, &self.inner.model_to_docker)
    }

    #[getter]
    fn docker_to_model<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, &self.inner.docker_to_model)
    }

    #[getter]
    fn model_to_singularity<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, &self.inner.model_to_singularity)
    }

    fn __repr__(&self) -> String {
        format!(
            "Index({} keys, {} images, {} singularity entries)",
            self.inner.model_to_docker.0.len(),
            self.inner.docker_to_model.0.len(),
            self.inner.model_to_singularity.0.len()
        )
    }
}
