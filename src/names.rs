//! Validation of model and model-group names before they are used to build a path,
//! an image tag or a URL.
//!
//! A name is a relative, `/`-separated path of plain segments: no empty segment, no `.`
//! or `..`, no leading `/`, no backslash and no control characters.

/// Why a model or group name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{name}`: {reason}")]
pub struct InvalidName {
    /// What kind of name: `model name`, `file name`.
    pub what: &'static str,
    pub name: String,
    pub reason: &'static str,
}

/// Checks that `name` is a safe relative model path such as `MMSplice/mtsplice`.
pub fn validate_model_name(name: &str) -> Result<(), InvalidName> {
    let bad = |reason| {
        Err(InvalidName {
            what: "model name",
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

/// Checks that `name` is one safe path segment, usable as a file name: a SIF name from the
/// index (`kipoi-docker_deepmel-slim`), an upload's file name. No `/`, no `\\`, not `.` or
/// `..`, no control characters, not empty, at most 255 bytes.
pub fn validate_file_name(name: &str) -> Result<(), InvalidName> {
    let bad = |reason| {
        Err(InvalidName {
            what: "file name",
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("it is `.` or `..`");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("it contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    Ok(())
}

/// Why a revision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid revision `{rev}`: {reason}; use a commit sha, or a branch or tag name")]
pub struct InvalidRevision {
    pub rev: String,
    pub reason: &'static str,
}

/// Checks a revision before it is used in a command or a URL: a hex commit sha (4 to 64
/// digits), or a branch or tag name that passes git's ref-format rules
/// (`git check-ref-format --allow-onelevel`), `HEAD` included.
pub fn validate_revision(rev: &str) -> Result<(), InvalidRevision> {
    let bad = |reason| {
        Err(InvalidRevision {
            rev: rev.escape_debug().to_string(),
            reason,
        })
    };
    if rev.is_empty() {
        return bad("it is empty");
    }
    if (4..=64).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    if rev.len() > 255 {
        return bad("it is too long");
    }
    if rev.starts_with('-') {
        return bad("it starts with `-`");
    }
    if rev == "@" {
        return bad("it is `@`");
    }
    if rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return bad("it has an empty path component");
    }
    if rev.ends_with('.') {
        return bad("it ends with `.`");
    }
    if rev.contains("..") {
        return bad("it contains `..`");
    }
    if rev.contains("@{") {
        return bad("it contains `@{`");
    }
    if rev
        .chars()
        .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
    {
        return bad(
            "it contains a character git does not allow in names (space, control, ~ ^ : ? * [ \\)",
        );
    }
    for component in rev.split('/') {
        if component.starts_with('.') {
            return bad("a component starts with `.`");
        }
        if component.ends_with(".lock") {
            return bad("a component ends with `.lock`");
        }
    }
    Ok(())
}

/// The repository the index names images in, whatever registry they are pushed to.
pub const INDEX_REPOSITORY: &str = "kipoi/kipoi-docker";
/// Suffix of the slim variant of an image tag (`…:mmsplice-slim`).
pub const SLIM_SUFFIX: &str = "-slim";

/// The tag of a group's own image: `MMSplice/mtsplice` → `mmsplice-mtsplice`, `DeepMEL`
/// → `deepmel`.
#[must_use]
pub fn image_tag_for_group(group: &str) -> String {
    group.to_lowercase().replace('/', "-")
}

/// The index name of a group's own image: `kipoi/kipoi-docker:<tag>`.
#[must_use]
pub fn image_for_group(group: &str) -> String {
    format!("{INDEX_REPOSITORY}:{}", image_tag_for_group(group))
}

/// `repository:tag` split at the last `:` that is not part of a registry host
/// (`127.0.0.1:5000/kipoi/kipoi-docker` has no tag).
#[must_use]
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() => (repo, Some(tag)),
        _ => (image, None),
    }
}

/// The tag of the full image of `image` (`…:deepmel-slim` → `deepmel`).
#[must_use]
pub fn full_tag(image: &str) -> &str {
    let tag = split_image(image).1.unwrap_or("latest");
    tag.strip_suffix(SLIM_SUFFIX).unwrap_or(tag)
}

/// The slim image of `image` (unchanged when already slim).
#[must_use]
pub fn slim_image(image: &str) -> String {
    let (repo, _) = split_image(image);
    format!("{repo}:{}{SLIM_SUFFIX}", full_tag(image))
}

/// The full image of `image` (unchanged when not slim).
#[must_use]
pub fn full_image(image: &str) -> String {
    let (repo, _) = split_image(image);
    format!("{repo}:{}", full_tag(image))
}

/// Whether `image`'s tag is a slim one.
#[must_use]
pub fn is_slim(image: &str) -> bool {
    split_image(image)
        .1
        .is_some_and(|t| t.ends_with(SLIM_SUFFIX))
}

/// The SIF name of an image (made from its slim variant): the last segment of the
/// repository, `_`, the slim tag — `kipoi/kipoi-docker:deepmel` → `kipoi-docker_deepmel-slim`.
#[must_use]
pub fn sif_name_for_image(image: &str) -> String {
    let (repo, _) = split_image(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    format!("{last}_{}{SLIM_SUFFIX}", full_tag(image))
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
    fn file_names() {
        let cases: &[(&str, bool)] = &[
            ("kipoi-docker_deepmel-slim", true),
            ("kipoi-docker_sharedpy3keras1.2-slim.sif", true),
            ("a b", true),
            ("", false),
            (".", false),
            ("..", false),
            ("../../../tmp/evil", false),
            ("a/b", false),
            ("a\\b", false),
            ("a\nb", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_file_name(name).is_ok(), *ok, "{name:?}");
        }
        assert!(validate_file_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn revisions() {
        let cases: &[(&str, bool)] = &[
            ("d8d209d1", true),
            ("06bfe84758b996d06f7f604b29e5b0342a700551", true),
            ("master", true),
            ("HEAD", true),
            ("update-json", true),
            ("feature/x.y", true),
            ("v1.2", true),
            ("../../../../user", false),
            ("a/../b", false),
            ("..", false),
            ("", false),
            ("-x", false),
            ("@", false),
            ("a@{1}", false),
            ("HEAD~1", false),
            ("a^", false),
            ("a:b", false),
            ("a b", false),
            ("a\nb", false),
            (".hidden", false),
            ("x/.y", false),
            ("x.lock", false),
            ("x/", false),
            ("/x", false),
            ("x//y", false),
            ("x.", false),
            ("a?", false),
        ];
        for (rev, ok) in cases {
            assert_eq!(validate_revision(rev).is_ok(), *ok, "{rev:?}");
        }
    }

    #[test]
    fn image_naming() {
        assert_eq!(
            image_tag_for_group("MMSplice/mtsplice"),
            "mmsplice-mtsplice"
        );
        assert_eq!(image_for_group("DeepMEL"), "kipoi/kipoi-docker:deepmel");
        assert_eq!(
            slim_image("kipoi/kipoi-docker:deepmel"),
            "kipoi/kipoi-docker:deepmel-slim"
        );
        assert_eq!(
            slim_image("kipoi/kipoi-docker:deepmel-slim"),
            "kipoi/kipoi-docker:deepmel-slim"
        );
        assert_eq!(
            full_image("kipoi/kipoi-docker:deepmel-slim"),
            "kipoi/kipoi-docker:deepmel"
        );
        assert_eq!(
            full_image("127.0.0.1:5000/k/d:x-slim"),
            "127.0.0.1:5000/k/d:x"
        );
        assert!(is_slim("a:b-slim") && !is_slim("a:b") && !is_slim("127.0.0.1:5000/a"));
        assert_eq!(
            sif_name_for_image("kipoi/kipoi-docker:sharedpy3keras1.2-slim"),
            "kipoi-docker_sharedpy3keras1.2-slim"
        );
        assert_eq!(
            sif_name_for_image("kipoi/kipoi-docker:mmsplice"),
            "kipoi-docker_mmsplice-slim"
        );
    }

    /// The naming rules reproduce every entry of the real index.
    #[test]
    fn real_index_follows_the_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("container-info");
        let index = crate::index::Index::load(&dir).unwrap();
        for (key, image) in &index.model_to_docker.0 {
            let sif = &index.model_to_singularity.0[key];
            assert_eq!(
                sif.name.as_str(),
                sif_name_for_image(image.as_str()),
                "{key}"
            );
            if !index.is_shared(image.as_str()) && index.keys_for_image(image.as_str()).len() == 1 {
                assert_eq!(image.as_str(), image_for_group(key.as_str()), "{key}");
            }
        }
    }

    #[test]
    fn group() {
        assert_eq!(top_group("MMSplice/mtsplice"), "MMSplice");
        assert_eq!(top_group("Basset"), "Basset");
    }
}
