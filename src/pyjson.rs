//! JSON text exactly as Python's `json.dumps(obj, indent=4)` writes it.
//!
//! Upstream kipoi-containers writes the index files with `json.dump(d, f, indent=4)`:
//! four-space indent, `", "`-free item separators (`","` + newline), `": "` between key
//! and value, `ensure_ascii=True` escaping (`\uXXXX`, lowercase hex, surrogate pairs),
//! `{}`/`[]` for empty containers and no trailing newline. Writing the same bytes keeps
//! diffs of the index files minimal and makes load → save a byte-for-byte no-op.

use serde_json::Value;
use std::fmt::Write as _;

/// Formats `value` like `json.dumps(value, indent=4)`.
#[must_use]
pub fn to_string_indent4(value: &Value) -> String {
    let mut out = String::with_capacity(4096);
    write_value(&mut out, value, 0);
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            newline_indent(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, depth + 1);
                write_str(out, key);
                out.push_str(": ");
                write_value(out, item, depth + 1);
            }
            newline_indent(out, depth);
            out.push('}');
        }
    }
}

fn newline_indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        // Python's float repr: integral floats keep ".0", others use the shortest repr.
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
            let _ = write!(out, "{f:.1}");
        } else {
            let _ = write!(out, "{f}");
        }
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Python's `ensure_ascii=True` string encoder.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_layout() {
        let v = json!({"a": ["x", "y"], "b": {}, "c": [], "d": {"e": "f"}});
        assert_eq!(
            to_string_indent4(&v),
            "{\n    \"a\": [\n        \"x\",\n        \"y\"\n    ],\n    \"b\": {},\n    \"c\": [],\n    \"d\": {\n        \"e\": \"f\"\n    }\n}"
        );
    }

    #[test]
    fn escapes_like_ensure_ascii() {
        // Expected strings produced by CPython 3.11: json.dumps("é\"\\\n\x01😀")
        let v = json!("é\"\\\n\u{1}😀");
        assert_eq!(
            to_string_indent4(&v),
            "\"\\u00e9\\\"\\\\\\n\\u0001\\ud83d\\ude00\""
        );
    }

    #[test]
    fn numbers_like_python() {
        assert_eq!(to_string_indent4(&json!(3)), "3");
        assert_eq!(to_string_indent4(&json!(-3)), "-3");
        assert_eq!(to_string_indent4(&json!(1.0)), "1.0");
        assert_eq!(to_string_indent4(&json!(0.5)), "0.5");
        assert_eq!(to_string_indent4(&json!(true)), "true");
        assert_eq!(to_string_indent4(&json!(null)), "null");
    }
}
