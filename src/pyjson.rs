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
    match n.as_f64().filter(|_| n.is_f64()) {
        Some(f) => out.push_str(&float_repr(f)),
        None => {
            let _ = write!(out, "{n}");
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip (ties broken to even, as
/// CPython's dtoa does: 79879765268449.125 prints as `79879765268449.12`), in positional
/// notation when the decimal exponent is in `-4..16`, else scientific (`1e-07`, `1e+16`,
/// `1.5e+300`); integral positional values keep `.0`. (JSON holds no NaN or infinity:
/// `serde_json` refuses them before they get here.)
#[must_use]
pub fn float_repr(f: f64) -> String {
    // ryu gives the shortest round-trip digits with round-half-even, in its own layout
    // ("79879765268449.12", "1e16", "1.5e-7", "0.0001", "-0.0"): take the digits and the
    // decimal exponent from it and lay them out as Python does.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f);
    let (sign, text) = text.strip_prefix('-').map_or(("", text), |t| ("-", t));
    let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int_part}{frac_part}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return format!("{sign}0.0");
    }
    // Position of the first significant digit relative to the decimal point.
    let int_len = i32::try_from(int_part.len()).unwrap_or(i32::MAX);
    let leading = i32::try_from(leading).unwrap_or(0);
    let exp = exp + int_len - 1 - leading;
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point.unsigned_abs() as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{text}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.unsigned_abs())
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

    /// Expected strings printed by CPython 3.11: `repr(x)` (the same as `json.dumps(x)`).
    #[test]
    fn floats_like_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-07, "1e-07"),
            (1.5e-07, "1.5e-07"),
            (0.0001, "0.0001"),
            (1e-05, "1e-05"),
            (0.00012345, "0.00012345"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (1.5e300, "1.5e+300"),
            (-1e-300, "-1e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (std::f64::consts::PI, "3.141592653589793"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            // A tie: the exact value is ...449.125; CPython rounds half to even.
            (79879765268449.12, "79879765268449.12"),
            (0.3, "0.3"),
            (2.0e-5, "2e-05"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(*value), *expected, "{value:e}");
            assert_eq!(to_string_indent4(&json!(value)), *expected, "{value:e}");
        }
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
