//! The three index files and the lookups every other module uses.
//!
//! - `model-to-docker.json`: index key (a model group such as `Basset`, or a model such as
//!   `MMSplice/mtsplice`) → Docker image (`kipoi/kipoi-docker:<tag>`).
//! - `docker-to-model.json`: Docker image → the models to test in it.
//! - `model-to-singularity.json`: index key → `{url, name, md5}` of its SIF on Zenodo.
//!
//! Loading validates shapes and reports the file, the entry and the line/column of a
//! problem. Saving keeps key order and upstream's exact formatting (Python's
//! `json.dump(indent=4)`), so loading and saving an unchanged file changes no byte, and
//! is atomic (see [`crate::fsutil::write_atomic`]).

use crate::fsutil::{write_atomic, AtomicWriteError};
use crate::names::{top_group, validate_model_name};
use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

pub const MODEL_TO_DOCKER: &str = "model-to-docker.json";
pub const DOCKER_TO_MODEL: &str = "docker-to-model.json";
pub const MODEL_TO_SINGULARITY: &str = "model-to-singularity.json";
pub use crate::names::SLIM_SUFFIX;

/// Errors of loading or saving an index file.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file is not valid JSON, or an entry has the wrong shape.
    #[error("{file}: {message}")]
    Format {
        file: String,
        message: String,
        line: usize,
        column: usize,
    },
    /// The file could not be read.
    #[error("could not read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written; the previous file is intact.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

impl IndexError {
    fn format(file: &str, message: String) -> Self {
        IndexError::Format {
            file: file.to_owned(),
            message,
            line: 0,
            column: 0,
        }
    }
}

/// Which index file a path holds, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    ModelToDocker,
    DockerToModel,
    ModelToSingularity,
}

impl IndexKind {
    /// Recognises the three upstream file names.
    #[must_use]
    pub fn from_file_name(path: &Path) -> Option<Self> {
        match path.file_name()?.to_str()? {
            MODEL_TO_DOCKER => Some(Self::ModelToDocker),
            DOCKER_TO_MODEL => Some(Self::DockerToModel),
            MODEL_TO_SINGULARITY => Some(Self::ModelToSingularity),
            _ => None,
        }
    }

    #[must_use]
    pub fn file_name(self) -> &'static str {
        match self {
            Self::ModelToDocker => MODEL_TO_DOCKER,
            Self::DockerToModel => DOCKER_TO_MODEL,
            Self::ModelToSingularity => MODEL_TO_SINGULARITY,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Validated scalar types

/// A model or group name (`Basset`, `MMSplice/mtsplice`); see [`crate::names`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ModelName(String);

/// A Docker image reference with a tag (`kipoi/kipoi-docker:mmsplice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ImageName(String);

/// A lowercase or uppercase 32-hex-digit md5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Md5(String);

/// An `http(s)://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Url(String);

/// The name of a SIF (its file name without `.sif`): one safe path segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SifName(String);

macro_rules! validated_str {
    ($ty:ident, $expecting:literal, $check:path) => {
        impl $ty {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, String> {
                let s = s.into();
                $check(&s)?;
                Ok(Self(s))
            }
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        // Hash and Eq are those of the inner `String`, so maps keyed by the type can be
        // looked up with a `&str`.
        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        $ty::new(s).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

fn check_model_name(s: &str) -> Result<(), String> {
    validate_model_name(s).map_err(|e| e.to_string())
}

fn check_image_name(s: &str) -> Result<(), String> {
    let well_formed = s.rsplit_once(':').is_some_and(|(repo, tag)| {
        !repo.is_empty()
            && !tag.is_empty()
            && !tag.contains('/')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "image `{}` must look like `repository:tag`",
            s.escape_debug()
        ))
    }
}

fn check_sif_name(s: &str) -> Result<(), String> {
    crate::names::validate_file_name(s).map_err(|e| e.to_string())
}

fn check_md5(s: &str) -> Result<(), String> {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "md5 must be 32 hex digits, got `{}`",
            s.escape_debug()
        ))
    }
}

fn check_url(s: &str) -> Result<(), String> {
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "https://".len()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "url must be an http(s) URL, got `{}`",
            s.escape_debug()
        ))
    }
}

validated_str!(
    ModelName,
    "a model name such as `MMSplice/mtsplice`",
    check_model_name
);
validated_str!(
    ImageName,
    "an image name such as `kipoi/kipoi-docker:basset`",
    check_image_name
);
validated_str!(Md5, "an md5 of 32 hex digits", check_md5);
validated_str!(
    SifName,
    "a SIF name such as `kipoi-docker_deepmel-slim` (one file name, no path)",
    check_sif_name
);
validated_str!(Url, "an http(s) URL", check_url);

impl ImageName {
    /// The tag after the last `:`.
    #[must_use]
    pub fn tag(&self) -> &str {
        self.0.rsplit_once(':').map_or("", |(_, t)| t)
    }

    /// `repo:tag-slim` for `repo:tag`; unchanged if already slim.
    #[must_use]
    pub fn slim(&self) -> ImageName {
        if self.is_slim() {
            self.clone()
        } else {
            ImageName(format!("{}{SLIM_SUFFIX}", self.0))
        }
    }

    /// `repo:tag` for `repo:tag-slim`; unchanged otherwise.
    #[must_use]
    pub fn full(&self) -> ImageName {
        ImageName(
            self.0
                .strip_suffix(SLIM_SUFFIX)
                .unwrap_or(&self.0)
                .to_owned(),
        )
    }

    #[must_use]
    pub fn is_slim(&self) -> bool {
        self.tag().ends_with(SLIM_SUFFIX)
    }
}

/// One published SIF: where it is, its name (file name without `.sif`, one safe path
/// segment: it becomes a download path) and its md5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingularityEntry {
    pub url: Url,
    pub name: SifName,
    pub md5: Md5,
}

// ---------------------------------------------------------------------------------------
// Ordered maps that reject duplicate keys

/// An ordered JSON object whose keys are parsed as `K`; a repeated key is an error
/// (Python would silently keep the last one and lose the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Entries<K: std::hash::Hash + Eq, V>(pub IndexMap<K, V>);

impl<K: std::hash::Hash + Eq, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self(IndexMap::new())
    }
}

impl<'de, K, V> Deserialize<'de> for Entries<K, V>
where
    K: Deserialize<'de> + std::hash::Hash + Eq + fmt::Display,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapV<K, V>(PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for MapV<K, V>
        where
            K: Deserialize<'de> + std::hash::Hash + Eq + fmt::Display,
            V: Deserialize<'de>,
        {
            type Value = Entries<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = IndexMap::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<K>()? {
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicate entry '{key}'")));
                    }
                    let value = map.next_value::<V>()?;
                    out.insert(key, value);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(MapV(PhantomData))
    }
}

pub type ModelToDocker = Entries<ModelName, ImageName>;
pub type DockerToModel = Entries<ImageName, Vec<ModelName>>;
pub type ModelToSingularity = Entries<ModelName, SingularityEntry>;

// ---------------------------------------------------------------------------------------
// Parse and format

/// Parses one index file's text; `file` names it in errors.
pub fn parse<T: de::DeserializeOwned>(file: &str, text: &str) -> Result<T, IndexError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| describe(file, &err))?;
    // Anything but whitespace after the value is an error too.
    de.end().map_err(|e| describe_inner(file, &[], &e))?;
    Ok(value)
}

fn describe(file: &str, err: &serde_path_to_error::Error<serde_json::Error>) -> IndexError {
    let keys: Vec<String> = err
        .path()
        .iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Some(format!("[{index}]")),
            _ => None,
        })
        .collect();
    describe_inner(file, &keys, err.inner())
}

fn describe_inner(file: &str, keys: &[String], inner: &serde_json::Error) -> IndexError {
    let (line, column) = (inner.line(), inner.column());
    let full = inner.to_string();
    let bare = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_owned();
    let what = if inner.is_syntax() || inner.is_eof() {
        format!("invalid JSON: {bare}")
    } else {
        match keys.split_first() {
            None => bare,
            Some((entry, [])) => format!("entry '{entry}': {bare}"),
            Some((entry, rest)) => {
                let field = rest.join(".");
                if bare.starts_with(&field) {
                    format!("entry '{entry}': {bare}")
                } else {
                    format!("entry '{entry}': {field}: {bare}")
                }
            }
        }
    };
    let message = if line > 0 {
        format!("{what} (line {line}, column {column})")
    } else {
        what
    };
    IndexError::Format {
        file: file.to_owned(),
        message,
        line,
        column,
    }
}

/// Serialises like upstream's `json.dump(d, f, indent=4)`.
pub fn to_text<T: Serialize>(file: &str, value: &T) -> Result<String, IndexError> {
    let v = serde_json::to_value(value)
        .map_err(|e| IndexError::format(file, format!("cannot serialise: {e}")))?;
    Ok(crate::pyjson::to_string_indent4(&v))
}

/// Reads and validates one index file.
pub fn load_file<T: de::DeserializeOwned>(path: &Path) -> Result<T, IndexError> {
    let text = std::fs::read_to_string(path).map_err(|source| IndexError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&display_name(path), &text)
}

/// Writes one index file atomically in upstream's format.
pub fn save_file<T: Serialize>(path: &Path, value: &T) -> Result<(), IndexError> {
    let text = to_text(&display_name(path), value)?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Loads any JSON file as a plain value. The three index files (recognised by name) are
/// validated first, so a malformed index is reported with its entry and location; other
/// files only need to be valid JSON.
pub fn load_json_file(path: &Path) -> Result<serde_json::Value, IndexError> {
    let text = std::fs::read_to_string(path).map_err(|source| IndexError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = display_name(path);
    match IndexKind::from_file_name(path) {
        Some(IndexKind::ModelToDocker) => drop(parse::<ModelToDocker>(&name, &text)?),
        Some(IndexKind::DockerToModel) => drop(parse::<DockerToModel>(&name, &text)?),
        Some(IndexKind::ModelToSingularity) => drop(parse::<ModelToSingularity>(&name, &text)?),
        None => {}
    }
    parse(&name, &text)
}

/// Writes a plain JSON value atomically in upstream's format. A value for one of the three
/// index files (recognised by name) must have that file's shape: a malformed index is
/// refused before anything is written.
pub fn save_json_file(path: &Path, value: &serde_json::Value) -> Result<(), IndexError> {
    let name = display_name(path);
    match IndexKind::from_file_name(path) {
        Some(IndexKind::ModelToDocker) => validate_value::<ModelToDocker>(&name, value)?,
        Some(IndexKind::DockerToModel) => validate_value::<DockerToModel>(&name, value)?,
        Some(IndexKind::ModelToSingularity) => {
            validate_value::<ModelToSingularity>(&name, value)?;
        }
        None => {}
    }
    write_atomic(path, crate::pyjson::to_string_indent4(value).as_bytes())?;
    Ok(())
}

/// Checks that an in-memory value has the shape of index file `file`.
pub fn validate_value<T: de::DeserializeOwned>(
    file: &str,
    value: &serde_json::Value,
) -> Result<(), IndexError> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map(drop)
        .map_err(|err| describe(file, &err))
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// The whole index

/// The three index files of one `container-info` directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub model_to_docker: ModelToDocker,
    pub docker_to_model: DockerToModel,
    pub model_to_singularity: ModelToSingularity,
}

impl Index {
    /// Loads the three files from `dir`.
    pub fn load(dir: &Path) -> Result<Self, IndexError> {
        let index = Self {
            model_to_docker: load_file(&dir.join(MODEL_TO_DOCKER))?,
            docker_to_model: load_file(&dir.join(DOCKER_TO_MODEL))?,
            model_to_singularity: load_file(&dir.join(MODEL_TO_SINGULARITY))?,
        };
        log::debug!(
            "loaded index from `{}`: {} keys, {} images",
            dir.display(),
            index.model_to_docker.0.len(),
            index.docker_to_model.0.len()
        );
        Ok(index)
    }

    /// Saves the three files into `dir` atomically: all three are written and flushed
    /// before any replaces its predecessor.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        let texts = [
            (
                dir.join(MODEL_TO_DOCKER),
                to_text(MODEL_TO_DOCKER, &self.model_to_docker)?,
            ),
            (
                dir.join(DOCKER_TO_MODEL),
                to_text(DOCKER_TO_MODEL, &self.docker_to_model)?,
            ),
            (
                dir.join(MODEL_TO_SINGULARITY),
                to_text(MODEL_TO_SINGULARITY, &self.model_to_singularity)?,
            ),
        ];
        let files: Vec<(&Path, &[u8])> = texts
            .iter()
            .map(|(p, t)| (p.as_path(), t.as_bytes()))
            .collect();
        crate::fsutil::write_atomic_all(&files)?;
        log::debug!("saved index to `{}`", dir.display());
        Ok(())
    }

    /// The index key responsible for `model`: the key itself if present, else the
    /// longest key that is a path prefix of it (`MMSplice/mtsplice/x` → `MMSplice/mtsplice`,
    /// `DeepBind/Homo_sapiens/…` → `DeepBind`).
    #[must_use]
    pub fn key_for_model(&self, model: &str) -> Option<&ModelName> {
        longest_prefix_key(self.model_to_docker.0.keys(), model)
    }

    /// The Docker image that runs `model`.
    #[must_use]
    pub fn image_for_model(&self, model: &str) -> Option<&ImageName> {
        let key = self.key_for_model(model)?;
        self.model_to_docker.0.get(key)
    }

    /// The published SIF for `model` (same key resolution as [`Self::image_for_model`],
    /// over `model-to-singularity.json`).
    #[must_use]
    pub fn singularity_for_model(&self, model: &str) -> Option<&SingularityEntry> {
        let key = longest_prefix_key(self.model_to_singularity.0.keys(), model)?;
        self.model_to_singularity.0.get(key)
    }

    /// The models to test in `image`; a `-slim` image uses its full image's list.
    #[must_use]
    pub fn models_for_image(&self, image: &str) -> Option<&[ModelName]> {
        let lookup = |name: &str| {
            self.docker_to_model
                .0
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v.as_slice())
        };
        lookup(image).or_else(|| lookup(image.strip_suffix(SLIM_SUFFIX)?))
    }

    /// Index keys mapped to `image` (or to its full image when `image` is slim).
    #[must_use]
    pub fn keys_for_image(&self, image: &str) -> Vec<&ModelName> {
        let full = image.strip_suffix(SLIM_SUFFIX).unwrap_or(image);
        self.model_to_docker
            .0
            .iter()
            .filter(|(_, img)| img.as_str() == full)
            .map(|(k, _)| k)
            .collect()
    }

    /// The shared environments: images whose keys span two or more top-level model
    /// groups (see [`shared_images_of`]).
    #[must_use]
    pub fn shared_images(&self) -> Vec<&ImageName> {
        let shared = shared_images_of(
            self.model_to_docker
                .0
                .iter()
                .map(|(k, i)| (k.as_str(), i.as_str())),
        );
        self.model_to_docker
            .0
            .values()
            .filter(|i| shared.contains(&i.as_str()))
            .fold(Vec::new(), |mut out, i| {
                if !out.contains(&i) {
                    out.push(i);
                }
                out
            })
    }

    /// Whether `image` (or its full image, for a `-slim` tag) is a shared environment.
    #[must_use]
    pub fn is_shared(&self, image: &str) -> bool {
        let full = image.strip_suffix(SLIM_SUFFIX).unwrap_or(image);
        self.shared_images().iter().any(|i| i.as_str() == full)
    }

    /// Checks that the three files agree with each other; returns one line per problem.
    #[must_use]
    pub fn consistency_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, image) in &self.model_to_docker.0 {
            if self.models_for_image(image.as_str()).is_none() {
                problems.push(format!(
                    "{MODEL_TO_DOCKER}: entry '{key}': image `{image}` has no entry in {DOCKER_TO_MODEL}"
                ));
            }
            if !self.model_to_singularity.0.contains_key(key) {
                problems.push(format!(
                    "{MODEL_TO_DOCKER}: entry '{key}' has no entry in {MODEL_TO_SINGULARITY}"
                ));
            }
        }
        for key in self.model_to_singularity.0.keys() {
            if !self.model_to_docker.0.contains_key(key) {
                problems.push(format!(
                    "{MODEL_TO_SINGULARITY}: entry '{key}' has no entry in {MODEL_TO_DOCKER}"
                ));
            }
        }
        problems
    }
}

/// The shared environments among `(key, image)` entries of `model-to-docker.json`: images
/// whose keys span two or more top-level model groups (`sharedpy3keras2tf2` runs Basset,
/// HAL, ...), in first-seen order. An image used by several keys of one group (`mmsplice`
/// for four `MMSplice/*` models) is that group's own image.
pub fn shared_images_of<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<&'a str> {
    let mut groups: IndexMap<&str, std::collections::BTreeSet<&str>> = IndexMap::new();
    for (key, image) in entries {
        groups.entry(image).or_default().insert(top_group(key));
    }
    groups
        .into_iter()
        .filter(|(_, g)| g.len() > 1)
        .map(|(i, _)| i)
        .collect()
}

/// The longest common `/`-separated prefix of `paths` (`None` when there is none): the
/// unit the keys of one own image have in common (`MMSplice` for `MMSplice/pathogenicity`,
/// `MMSplice/deltaLogitPSI`, ...), used by the plan and the recipes alike.
pub fn common_path_prefix<'a>(mut paths: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = paths.next()?;
    let mut len = first.len();
    for p in paths {
        while !is_path_prefix(&first[..len], p) {
            len = first[..len].rfind('/')?;
        }
    }
    Some(&first[..len])
}

/// The longest key equal to `model` or a `/`-boundary prefix of it.
pub fn longest_prefix_key<'a, K: AsRef<str> + 'a>(
    keys: impl Iterator<Item = &'a K>,
    model: &str,
) -> Option<&'a K> {
    keys.filter(|k| is_path_prefix(k.as_ref(), model))
        .max_by_key(|k| k.as_ref().len())
}

/// `prefix == path` or `path` starts with `prefix/`.
#[must_use]
pub fn is_path_prefix(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One model per top-level model group, in first-seen order.
///
/// Upstream's version compared with a substring test (`group in model`), so a group
/// whose name occurs inside another's (`SiSp` / `xSiSp`) could be skipped; this compares
/// the first path segment exactly.
#[must_use]
pub fn one_model_per_modelgroup<S: AsRef<str>>(models: &[S]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    models
        .iter()
        .filter(|m| seen.insert(top_group(m.as_ref()).to_owned()))
        .map(|m| m.as_ref().to_owned())
        .collect()
}

/// How many distinct names `containers` holds.
#[must_use]
pub fn total_number_of_unique_containers<S: AsRef<str>>(containers: &[S]) -> usize {
    containers
        .iter()
        .map(AsRef::as_ref)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(r: Result<ModelToSingularity, IndexError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn bad_md5_names_entry_field_and_line() {
        let text = "{\n    \"DeepMEL\": {\n        \"url\": \"https://zenodo.org/x\",\n        \"name\": \"n\",\n        \"md5\": \"123\"\n    }\n}";
        let msg = err_text(parse(MODEL_TO_SINGULARITY, text));
        assert!(
            msg.starts_with(
                "model-to-singularity.json: entry 'DeepMEL': md5 must be 32 hex digits"
            ),
            "{msg}"
        );
        assert!(msg.contains("line 5"), "{msg}");
    }

    #[test]
    fn truncated_json_reports_location() {
        let text = "{\n    \"DeepMEL\": {\n        \"url\": \"https://zeno";
        let msg = err_text(parse(MODEL_TO_SINGULARITY, text));
        assert!(msg.contains("invalid JSON"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn wrong_type_is_named() {
        let r: Result<ModelToDocker, _> = parse(MODEL_TO_DOCKER, "{\n    \"Basset\": 5\n}");
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("entry 'Basset'"), "{msg}");
        assert!(msg.contains("invalid type: integer `5`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn duplicate_and_unsafe_keys_rejected() {
        let r: Result<ModelToDocker, _> = parse(MODEL_TO_DOCKER, r#"{"A": "r:a", "A": "r:b"}"#);
        assert!(r.unwrap_err().to_string().contains("duplicate entry 'A'"));
        let r: Result<ModelToDocker, _> = parse(MODEL_TO_DOCKER, r#"{"../x": "r:a"}"#);
        assert!(r.unwrap_err().to_string().contains("`.` or `..`"));
    }

    #[test]
    fn sif_names_are_one_safe_path_segment() {
        for name in ["../../../tmp/evil", "a/b", "..", ""] {
            let text = format!(
                r#"{{"DeepMEL": {{"url": "https://zenodo.org/x", "name": "{name}", "md5": "{}"}}}}"#,
                "0".repeat(32)
            );
            let msg = err_text(parse(MODEL_TO_SINGULARITY, &text));
            assert!(msg.contains("entry 'DeepMEL'"), "{msg}");
            assert!(msg.contains("SIF name") || msg.contains("invalid"), "{msg}");
        }
    }

    #[test]
    fn trailing_garbage_rejected() {
        let r: Result<ModelToDocker, _> = parse(MODEL_TO_DOCKER, "{}\n{}");
        assert!(r.is_err());
    }

    #[test]
    fn prefix_resolution() {
        let idx = Index {
            model_to_docker: parse(
                MODEL_TO_DOCKER,
                r#"{"MMSplice/deltaLogitPSI": "k:mmsplice", "MMSplice/mtsplice": "k:mtsplice", "DeepBind": "k:tf1", "Deep": "k:nope"}"#,
            )
            .unwrap(),
            ..Index::default()
        };
        let img = |m: &str| idx.image_for_model(m).map(ToString::to_string);
        assert_eq!(img("MMSplice/mtsplice").as_deref(), Some("k:mtsplice"));
        assert_eq!(img("MMSplice/deltaLogitPSI").as_deref(), Some("k:mmsplice"));
        assert_eq!(img("DeepBind/Homo_sapiens/TF/x").as_deref(), Some("k:tf1"));
        assert_eq!(img("DeepBindX"), None);
        assert_eq!(img("MMSplice"), None);
    }

    fn real_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("container-info")
    }

    #[test]
    fn real_files_round_trip_byte_identically() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::load(&real_dir()).unwrap();
        index.save(dir.path()).unwrap();
        for name in [MODEL_TO_DOCKER, DOCKER_TO_MODEL, MODEL_TO_SINGULARITY] {
            let original = std::fs::read(real_dir().join(name)).unwrap();
            let saved = std::fs::read(dir.path().join(name)).unwrap();
            assert!(original == saved, "{name} changed on load+save");
        }
    }

    #[test]
    fn every_real_key_resolves() {
        let index = Index::load(&real_dir()).unwrap();
        assert_eq!(index.model_to_docker.0.len(), 40);
        assert!(index.consistency_problems().is_empty());
        for (key, image) in &index.model_to_docker.0 {
            assert_eq!(index.image_for_model(key.as_str()), Some(image));
            assert!(index.models_for_image(image.as_str()).is_some(), "{key}");
            assert!(
                index.models_for_image(image.slim().as_str()).is_some(),
                "{key}"
            );
            let sif = index.singularity_for_model(key.as_str()).unwrap();
            assert!(
                sif.name.as_str().contains(image.tag()),
                "{key}: {} vs {image}",
                sif.name
            );
        }
    }

    #[test]
    fn one_per_group_is_exact() {
        let models = ["xSiSp/a", "SiSp/b", "SiSp/c", "Basset"];
        assert_eq!(
            one_model_per_modelgroup(&models),
            vec!["xSiSp/a", "SiSp/b", "Basset"]
        );
        assert_eq!(total_number_of_unique_containers(&["a", "b", "a"]), 2);
    }
}
