//! Edits of an index file, applied to whatever the file holds when it is written.
//!
//! The write-back never overwrites an index file blindly: it reads the current text, applies
//! an [`IndexEdit`] (set these keys, remove those), and writes the result only if it differs.
//! When someone else wrote the file between the read and the write (a compare-and-swap
//! conflict), the same edit is applied again to the new text, so both writers' keys survive.
//!
//! Key order is kept: a key that is set keeps its place, a new key is appended (in the
//! order the edit lists it), a removed key leaves the others in order. The result is
//! formatted with [`crate::pyjson::to_string_indent4`], upstream's exact
//! `json.dumps(d, indent=4)` bytes.

use serde_json::{Map, Value};

/// One change of a JSON object's top-level keys.
#[derive(Debug, Clone, PartialEq)]
pub enum EditOp {
    /// Set `key` to `value` (in place when present, appended when new).
    Set { key: String, value: Value },
    /// Remove `key` (nothing happens when it is absent).
    Remove { key: String },
}

/// An ordered list of changes to an index file's top-level object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEdit {
    ops: Vec<EditOp>,
}

/// Why an edit cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the file holds a JSON {found}, not an object")]
pub struct NotAnObject {
    pub found: &'static str,
}

impl IndexEdit {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds "set `key` to `value`".
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: Value) -> Self {
        self.ops.push(EditOp::Set {
            key: key.into(),
            value,
        });
        self
    }

    /// Adds "remove `key`".
    #[must_use]
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.ops.push(EditOp::Remove { key: key.into() });
        self
    }

    /// The edit that turns `from` into `to`: every key of `to` whose value is new or
    /// different is set (in `to`'s order), every key of `from` missing from `to` is removed.
    /// Applied to `from` it gives `to` (up to the order of keys present in both); applied
    /// to a file someone else changed meanwhile, it keeps their other changes.
    #[must_use]
    pub fn diff(from: &Map<String, Value>, to: &Map<String, Value>) -> Self {
        let mut edit = Self::new();
        for key in from.keys().filter(|k| !to.contains_key(*k)) {
            edit = edit.remove(key.clone());
        }
        for (key, value) in to {
            if from.get(key) != Some(value) {
                edit = edit.set(key.clone(), value.clone());
            }
        }
        edit
    }

    #[must_use]
    pub fn ops(&self) -> &[EditOp] {
        &self.ops
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies the edit to `current` (`None`: the file does not exist yet, read as `{}`).
    pub fn apply(&self, current: Option<&Value>) -> Result<Value, NotAnObject> {
        let mut map = match current {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(NotAnObject {
                    found: json_kind(other),
                })
            }
        };
        for op in &self.ops {
            match op {
                EditOp::Set { key, value } => {
                    // `insert` keeps the position of an existing key (preserve_order).
                    map.insert(key.clone(), value.clone());
                }
                EditOp::Remove { key } => {
                    map.shift_remove(key);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// What writing one file would change, computed from its current text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Applied {
    /// The edit changes nothing (compared as JSON values, as upstream compares dicts).
    Unchanged,
    /// The new text, in upstream's format.
    Changed(String),
}

/// Parses `current` (absent file: `None`), applies `edit`, and formats the result.
pub(crate) fn apply_to_text(
    edit: &IndexEdit,
    current: Option<&str>,
) -> Result<(Applied, Value), ApplyError> {
    let parsed = match current {
        Some(text) => Some(serde_json::from_str::<Value>(text).map_err(ApplyError::Json)?),
        None => None,
    };
    let new = edit
        .apply(parsed.as_ref())
        .map_err(ApplyError::NotAnObject)?;
    let empty = new.as_object().is_some_and(Map::is_empty);
    // An absent file that would stay empty is not created.
    if parsed.as_ref().map_or(empty, |p| *p == new) {
        return Ok((Applied::Unchanged, new));
    }
    Ok((
        Applied::Changed(crate::pyjson::to_string_indent4(&new)),
        new,
    ))
}

/// Why the current text could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("it is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error(transparent)]
    NotAnObject(NotAnObject),
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn set_keeps_position_new_keys_append_remove_keeps_order() {
        let current = json!({"a": 1, "b": 2, "c": 3});
        let cases: &[(&str, IndexEdit, Value, &[&str])] = &[
            (
                "set existing in place",
                IndexEdit::new().set("b", json!(20)),
                json!({"a": 1, "b": 20, "c": 3}),
                &["a", "b", "c"],
            ),
            (
                "new keys appended in edit order",
                IndexEdit::new().set("z", json!(0)).set("d", json!(4)),
                json!({"a": 1, "b": 2, "c": 3, "z": 0, "d": 4}),
                &["a", "b", "c", "z", "d"],
            ),
            (
                "remove keeps the rest in order",
                IndexEdit::new().remove("a"),
                json!({"b": 2, "c": 3}),
                &["b", "c"],
            ),
            (
                "remove of an absent key is a no-op",
                IndexEdit::new().remove("nope"),
                json!({"a": 1, "b": 2, "c": 3}),
                &["a", "b", "c"],
            ),
            (
                "remove then set re-appends",
                IndexEdit::new().remove("a").set("a", json!(1)),
                json!({"b": 2, "c": 3, "a": 1}),
                &["b", "c", "a"],
            ),
        ];
        for (name, edit, expected, order) in cases {
            let out = edit.apply(Some(&current)).unwrap();
            assert_eq!(&out, expected, "{name}");
            assert_eq!(keys(&out), *order, "{name}");
        }
    }

    #[test]
    fn absent_file_is_an_empty_object_and_non_objects_are_refused() {
        let out = IndexEdit::new().set("k", json!("v")).apply(None).unwrap();
        assert_eq!(out, json!({"k": "v"}));
        let err = IndexEdit::new().apply(Some(&json!([1]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file holds a JSON array, not an object"
        );
    }

    #[test]
    fn diff_applied_to_its_base_gives_the_target() {
        let from = json!({"a": 1, "b": {"x": 1}, "c": 3});
        let to = json!({"a": 1, "b": {"x": 2}, "d": 4});
        let edit = IndexEdit::diff(&obj(from.clone()), &obj(to.clone()));
        assert_eq!(
            edit.ops(),
            &[
                EditOp::Remove { key: "c".into() },
                EditOp::Set {
                    key: "b".into(),
                    value: json!({"x": 2})
                },
                EditOp::Set {
                    key: "d".into(),
                    value: json!(4)
                },
            ]
        );
        let out = edit.apply(Some(&from)).unwrap();
        assert_eq!(out, to);
        assert_eq!(keys(&out), ["a", "b", "d"]);
        assert!(IndexEdit::diff(&obj(to.clone()), &obj(to)).is_empty());
    }

    #[test]
    fn diff_reapplied_to_a_changed_file_merges() {
        // We read `base` and want `ours`; meanwhile someone wrote `theirs`.
        let base = json!({"A": "a", "B": "b"});
        let ours = json!({"A": "a2", "B": "b", "N": "new"});
        let theirs = json!({"A": "a", "B": "b", "T": "theirs"});
        let edit = IndexEdit::diff(&obj(base), &obj(ours));
        let merged = edit.apply(Some(&theirs)).unwrap();
        assert_eq!(
            merged,
            json!({"A": "a2", "B": "b", "T": "theirs", "N": "new"})
        );
        assert_eq!(keys(&merged), ["A", "B", "T", "N"]);
    }

    #[test]
    fn unchanged_is_a_value_comparison_and_changed_text_is_python_exact() {
        // Different formatting, same value: nothing to write (upstream compares dicts).
        let text = "{\"a\": 1,\n  \"b\": [1, 2]}";
        let (applied, _) = apply_to_text(&IndexEdit::new().set("a", json!(1)), Some(text)).unwrap();
        assert_eq!(applied, Applied::Unchanged);
        let (applied, _) =
            apply_to_text(&IndexEdit::new().set("c", json!("é")), Some(text)).unwrap();
        // json.dumps({"a": 1, "b": [1, 2], "c": "é"}, indent=4)
        assert_eq!(
            applied,
            Applied::Changed(
                "{\n    \"a\": 1,\n    \"b\": [\n        1,\n        2\n    ],\n    \"c\": \"\\u00e9\"\n}"
                    .into()
            )
        );
        let (applied, _) = apply_to_text(&IndexEdit::new(), None).unwrap();
        assert_eq!(
            applied,
            Applied::Unchanged,
            "an absent file is not created empty"
        );
        let (applied, _) = apply_to_text(&IndexEdit::new().set("k", json!(1)), None).unwrap();
        assert_eq!(applied, Applied::Changed("{\n    \"k\": 1\n}".into()));
        assert!(matches!(
            apply_to_text(&IndexEdit::new(), Some("{oops")),
            Err(ApplyError::Json(_))
        ));
    }
}
