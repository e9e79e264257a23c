//! Dockerfiles rendered from the templates in `dockerfiles/`.
//!
//! A template is plain Dockerfile text with `{{name}}` placeholders; every placeholder
//! must be known and every value is checked to be a single safe line, so a model group
//! name can never inject Dockerfile instructions. A model group's own image has a template
//! for the full and the `-slim` variant (`Dockerfile.template`, `Dockerfile-slim.template`);
//! the shared environments and the base image have theirs (`Dockerfile-env.template`,
//! `Dockerfile-env-slim.template`, `Dockerfile-base.template`; see [`crate::recipes`], which
//! decides from the index which template an image is rendered from). Tests point the engine
//! at their own template directory (a local base image, an offline environment step). The
//! rendered file is written to `dockerfiles/Dockerfile.<tag>[-slim]` like upstream, and its
//! sha256 is the image's recipe label.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fsutil::{write_atomic, AtomicWriteError};

pub const FULL_TEMPLATE: &str = "Dockerfile.template";
pub const SLIM_TEMPLATE: &str = "Dockerfile-slim.template";
/// The base image (`kipoi/kipoi-docker:kipoi-base-env`).
pub const BASE_TEMPLATE: &str = "Dockerfile-base.template";
/// A shared environment, full and slim.
pub const ENV_TEMPLATE: &str = "Dockerfile-env.template";
pub const ENV_SLIM_TEMPLATE: &str = "Dockerfile-env-slim.template";

/// Every template, compiled in so an installed package renders without a checkout.
const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        FULL_TEMPLATE,
        include_str!("../dockerfiles/Dockerfile.template"),
    ),
    (
        SLIM_TEMPLATE,
        include_str!("../dockerfiles/Dockerfile-slim.template"),
    ),
    (
        BASE_TEMPLATE,
        include_str!("../dockerfiles/Dockerfile-base.template"),
    ),
    (
        ENV_TEMPLATE,
        include_str!("../dockerfiles/Dockerfile-env.template"),
    ),
    (
        ENV_SLIM_TEMPLATE,
        include_str!("../dockerfiles/Dockerfile-env-slim.template"),
    ),
];

/// Default images the templates start from.
pub const DEFAULT_BASE_IMAGE: &str = "kipoi/kipoi-docker:kipoi-base-env";
pub const DEFAULT_BUILD_IMAGE: &str = "continuumio/miniconda3:latest";
pub const DEFAULT_SLIM_BASE_IMAGE: &str = "debian:bullseye-slim";

#[derive(Debug, thiserror::Error)]
pub enum DockerfileError {
    #[error("no Dockerfile template `{name}` is compiled in")]
    NoTemplate { name: String },
    #[error("could not read the Dockerfile template `{}`", path.display())]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template `{template}` uses `{{{{{name}}}}}`, which is not one of: {known}")]
    UnknownPlaceholder {
        template: String,
        name: String,
        known: String,
    },
    #[error("template `{template}` has an unclosed `{{{{` placeholder")]
    Unclosed { template: String },
    #[error("value of `{name}` cannot go into a Dockerfile: {value:?}")]
    UnsafeValue { name: String, value: String },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// Which Dockerfile of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Full,
    Slim,
}

/// Inputs of a rendering.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Directory with `Dockerfile.template` / `Dockerfile-slim.template` (both required);
    /// the base and shared-environment templates are read from it when it has them, else
    /// compiled in. `None`: every template compiled in.
    pub template_dir: Option<PathBuf>,
    pub base_image: String,
    pub build_image: String,
    pub slim_base_image: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            template_dir: None,
            base_image: DEFAULT_BASE_IMAGE.into(),
            build_image: DEFAULT_BUILD_IMAGE.into(),
            slim_base_image: DEFAULT_SLIM_BASE_IMAGE.into(),
        }
    }
}

/// A rendered Dockerfile and its recipe hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// sha256 hex of `text`.
    pub recipe_hash: String,
}

/// kipoi's conda environment name for a group: `MMSplice/mtsplice` → `MMSplice__mtsplice`.
#[must_use]
pub fn env_name(model_group: &str) -> String {
    model_group.replace('/', "__")
}

/// The text of template `file`: from `opts.template_dir` when set (a group template must be
/// there; any other falls back to the compiled-in one when the directory lacks it), else
/// compiled in.
pub fn template(file: &str, opts: &RenderOptions) -> Result<Cow<'static, str>, DockerfileError> {
    let builtin = BUILTIN_TEMPLATES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, text)| *text);
    if let Some(dir) = &opts.template_dir {
        let path = dir.join(file);
        let required = file == FULL_TEMPLATE || file == SLIM_TEMPLATE || builtin.is_none();
        if required || path.exists() {
            return std::fs::read_to_string(&path)
                .map(Cow::Owned)
                .map_err(|source| DockerfileError::ReadTemplate { path, source });
        }
    }
    builtin
        .map(Cow::Borrowed)
        .ok_or_else(|| DockerfileError::NoTemplate {
            name: file.to_owned(),
        })
}

/// Renders template `file` with `vars` plus the images of `opts` (`base_image`,
/// `build_image`, `slim_base_image`).
pub fn render_template(
    file: &str,
    vars: &BTreeMap<&str, String>,
    opts: &RenderOptions,
) -> Result<Rendered, DockerfileError> {
    let template = template(file, opts)?;
    let mut all = vars.clone();
    all.insert("base_image", opts.base_image.clone());
    all.insert("build_image", opts.build_image.clone());
    all.insert("slim_base_image", opts.slim_base_image.clone());
    let text = substitute(file, &template, &all)?;
    let recipe_hash = crate::docker::recipe_hash(&text);
    Ok(Rendered { text, recipe_hash })
}

/// Renders the `variant` Dockerfile of `model_group` from the group templates. This is
/// the template step only: which images may be rendered this way is decided by
/// [`crate::recipes`] from the index (never a shared image).
pub fn render(
    model_group: &str,
    variant: Variant,
    opts: &RenderOptions,
) -> Result<Rendered, DockerfileError> {
    let file = match variant {
        Variant::Full => FULL_TEMPLATE,
        Variant::Slim => SLIM_TEMPLATE,
    };
    let mut vars = BTreeMap::new();
    vars.insert("model_group", model_group.to_owned());
    vars.insert("env_name", env_name(model_group));
    render_template(file, &vars, opts)
}

/// Replaces `{{name}}` placeholders; unknown names and unsafe values are errors.
pub fn substitute(
    template_name: &str,
    template: &str,
    vars: &BTreeMap<&str, String>,
) -> Result<String, DockerfileError> {
    for (name, value) in vars {
        let safe = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c));
        if !safe {
            return Err(DockerfileError::UnsafeValue {
                name: (*name).to_owned(),
                value: value.clone(),
            });
        }
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| DockerfileError::Unclosed {
            template: template_name.to_owned(),
        })?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| DockerfileError::UnknownPlaceholder {
                template: template_name.to_owned(),
                name: name.to_owned(),
                known: vars.keys().copied().collect::<Vec<_>>().join(", "),
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where upstream keeps a rendered Dockerfile: `<dir>/Dockerfile.<tag>[-slim]`.
#[must_use]
pub fn rendered_path(dir: &Path, tag: &str, variant: Variant) -> PathBuf {
    match variant {
        Variant::Full => dir.join(format!("Dockerfile.{tag}")),
        Variant::Slim => dir.join(format!("Dockerfile.{tag}-slim")),
    }
}

/// The Dockerfile of an image, one rule for every group: `<dir>/Dockerfile.<tag>` for the
/// full image, `<dir>/Dockerfile.<tag>-slim` for its slim one (upstream special-cased
/// MMSplice and APARENT to get the same names).
#[must_use]
pub fn dockerfile_for_image(dir: &Path, image: &str) -> (PathBuf, Variant) {
    let variant = if crate::names::is_slim(image) {
        Variant::Slim
    } else {
        Variant::Full
    };
    (
        rendered_path(dir, crate::names::full_tag(image), variant),
        variant,
    )
}

/// Renders and writes the Dockerfile (atomically); returns the path and the rendering.
pub fn write(
    dir: &Path,
    tag: &str,
    model_group: &str,
    variant: Variant,
    opts: &RenderOptions,
) -> Result<(PathBuf, Rendered), DockerfileError> {
    let rendered = render(model_group, variant, opts)?;
    let path = rendered_path(dir, tag, variant);
    write_atomic(&path, rendered.text.as_bytes())?;
    Ok((path, rendered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_builtin_templates() {
        let r = render(
            "MMSplice/mtsplice",
            Variant::Full,
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(r.text.contains("FROM kipoi/kipoi-docker:kipoi-base-env"));
        assert!(r.text.contains("kipoi env create MMSplice/mtsplice"));
        assert!(r.text.contains("kipoi-MMSplice__mtsplice/bin"));
        assert!(!r.text.contains("{{"));
        assert_eq!(r.recipe_hash.len(), 64);
        let s = render("Basset", Variant::Slim, &RenderOptions::default()).unwrap();
        assert!(s.text.contains("FROM debian:bullseye-slim"));
        assert_ne!(s.recipe_hash, r.recipe_hash);
    }

    #[test]
    fn rejects_injection_and_unknown_placeholders() {
        let e = render("x\nRUN rm -rf /", Variant::Full, &RenderOptions::default()).unwrap_err();
        assert!(e.to_string().contains("cannot go into a Dockerfile"), "{e}");
        let vars: BTreeMap<&str, String> = [("a", "1".to_owned())].into();
        let e = substitute("t", "x {{b}}", &vars).unwrap_err();
        assert!(e.to_string().contains("`{{b}}`"), "{e}");
        assert!(substitute("t", "x {{a", &vars).is_err());
        assert_eq!(substitute("t", "x {{ a }} y", &vars).unwrap(), "x 1 y");
    }

    #[test]
    fn dockerfile_of_an_image() {
        let d = Path::new("dockerfiles");
        assert_eq!(
            dockerfile_for_image(d, "kipoi/kipoi-docker:mmsplice-mtsplice-slim"),
            (
                PathBuf::from("dockerfiles/Dockerfile.mmsplice-mtsplice-slim"),
                Variant::Slim
            )
        );
        assert_eq!(
            dockerfile_for_image(d, "kipoi/kipoi-docker:aparent-veff"),
            (
                PathBuf::from("dockerfiles/Dockerfile.aparent-veff"),
                Variant::Full
            )
        );
    }

    #[test]
    fn paths_like_upstream() {
        let d = Path::new("dockerfiles");
        assert_eq!(
            rendered_path(d, "deepmel", Variant::Slim),
            Path::new("dockerfiles/Dockerfile.deepmel-slim")
        );
        assert_eq!(
            rendered_path(d, "deepmel", Variant::Full),
            Path::new("dockerfiles/Dockerfile.deepmel")
        );
    }
}
