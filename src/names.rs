//! Validation of model and model-group names before they are used to build a path,
//! an image tag or a URL.
//!
//! A name is a relative, `/`-separated path of plain segments: no empty segment, no `.`
//! or `..`, no leading `/`, no backslash and no control characters.

/// Why a model or group name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model name `{name}`: {reason}")]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

/// Checks that `name` is a safe relative model path such as `MMSplice/mtsplice`.
pub fn validate_model_name(name: &str) -> Result<(), InvalidName> {
    let bad = |reason| {
        Err(InvalidName {
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.starts_with('/') {
        return bad("it is an absolute path");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if name.contains('\\') {
        return bad("it contains a backslash");
    }
    for segment in name.split('/') {
        match segment {
            "" => return bad("it has an empty path segment"),
            "." | ".." => return bad("it contains a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

/// The first path segment of a model name: its top-level model group.
#[must_use]
pub fn top_group(model: &str) -> &str {
    model.split('/').next().unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("Basset", true),
            ("MMSplice/mtsplice", true),
            ("DeepBind/Homo_sapiens/TF/D00328.018_ChIP-seq_CTCF", true),
            ("", false),
            ("/etc/passwd", false),
            ("../secret", false),
            ("a/../b", false),
            ("a//b", false),
            ("a/", false),
            ("./a", false),
            ("a\nb", false),
            ("a\u{7}b", false),
            ("a\\b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_model_name(name).is_ok(), *ok, "{name:?}");
        }
    }

    #[test]
    fn group() {
        assert_eq!(top_group("MMSplice/mtsplice"), "MMSplice");
        assert_eq!(top_group("Basset"), "Basset");
    }
}
