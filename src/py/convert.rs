//! Python objects <-> `serde_json::Value`, keeping dict order.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Containers nested deeper than this are refused (Python's `json` hits its recursion limit
/// around 1000 levels too); no index file comes close.
const MAX_DEPTH: usize = 512;

/// Converts a JSON-like Python object (dict with str keys, list, tuple, str, int, float,
/// bool, None) into a `Value`. A container that contains itself raises `ValueError:
/// Circular reference detected`, as `json.dump` does; absurd nesting raises `ValueError`
/// instead of overflowing the stack.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_in(obj, &mut Vec::new())
}

/// `stack` holds the addresses of the containers being converted (the path from the root).
fn to_value_in(obj: &Bound<'_, PyAny>, stack: &mut Vec<usize>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        let u: u64 = obj.extract()?;
        return Ok(Value::Number(u.into()));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and infinity cannot be written as JSON"));
    }
    let is_container = obj.cast::<PyDict>().is_ok()
        || obj.cast::<PyList>().is_ok()
        || obj.cast::<PyTuple>().is_ok();
    if !is_container {
        return Err(PyTypeError::new_err(format!(
            "cannot write a {} as JSON",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        )));
    }
    let address = obj.as_ptr() as usize;
    if stack.contains(&address) {
        return Err(PyValueError::new_err("Circular reference detected"));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "the object is nested more than {MAX_DEPTH} levels deep; it cannot be written as JSON"
        )));
    }
    stack.push(address);
    let value = container_to_value(obj, stack);
    stack.pop();
    value
}

fn container_to_value(obj: &Bound<'_, PyAny>, stack: &mut Vec<usize>) -> PyResult<Value> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "JSON object keys must be str, got {}",
                    k.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?;
            map.insert(key.to_cow()?.into_owned(), to_value_in(&v, stack)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_value_in(&v, stack))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    obj.cast::<PyTuple>()?
        .iter()
        .map(|v| to_value_in(&v, stack))
        .collect::<PyResult<_>>()
        .map(Value::Array)
}

/// Converts a `Value` into Python objects (dicts keep the JSON key order).
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Serialises any `Serialize` value into Python objects.
pub(crate) fn serialize_to_py<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value)
        .map_err(|e| PyTypeError::new_err(format!("cannot convert to Python: {e}")))?;
    to_py(py, &v)
}
