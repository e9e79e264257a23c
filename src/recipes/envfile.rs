//! Conda environment files: `dockerfiles/envfiles/<name>.yml`, compiled in, or read from
//! a directory that replaces them (tests, a checkout with edited environments).
//!
//! The base image's environment is `kipoi-env.yml`; a shared image `…:<tag>` is built from
//! `<tag>.yml`. Which images are shared comes from the index, never from a file name: a
//! file that no shared image of the index names serves no image, and `recipes check` says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RecipeError;

/// The environment file of the base image.
pub const BASE_ENV_FILE: &str = "kipoi-env.yml";
/// The conda environment the base image must have: the group templates run
/// `kipoi env create` in it.
pub const BASE_ENV_NAME: &str = "kipoi-env";
/// Where environment files sit in a build context and beside written recipes.
pub const ENVFILES_DIR: &str = "envfiles";

/// The environment files of `dockerfiles/envfiles/`, compiled in. A unit test checks that
/// this list and the directory agree.
const BUILTIN: &[(&str, &str)] = &[
    (
        "kipoi-env.yml",
        include_str!("../../dockerfiles/envfiles/kipoi-env.yml"),
    ),
    (
        "sharedpy3keras1.2.yml",
        include_str!("../../dockerfiles/envfiles/sharedpy3keras1.2.yml"),
    ),
    (
        "sharedpy3keras2tf1.yml",
        include_str!("../../dockerfiles/envfiles/sharedpy3keras2tf1.yml"),
    ),
    (
        "sharedpy3keras2tf2.yml",
        include_str!("../../dockerfiles/envfiles/sharedpy3keras2tf2.yml"),
    ),
];

/// One environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// File name (`sharedpy3keras2tf1.yml`).
    pub file: String,
    pub text: String,
    /// The conda environment it creates (its `name:`).
    pub name: String,
    /// sha256 hex of `text`.
    pub sha256: String,
}

impl EnvFile {
    /// Where it goes in a build context: `envfiles/<file>`.
    #[must_use]
    pub fn context_path(&self) -> String {
        format!("{ENVFILES_DIR}/{}", self.file)
    }
}

/// The set of environment files recipes are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFiles {
    files: BTreeMap<String, String>,
    dir: Option<PathBuf>,
}

impl EnvFiles {
    /// The compiled-in files, or every `*.yml` of `dir` instead.
    pub fn load(dir: Option<&Path>) -> Result<Self, RecipeError> {
        let Some(dir) = dir else {
            return Ok(Self {
                files: BUILTIN
                    .iter()
                    .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
                    .collect(),
                dir: None,
            });
        };
        let read_dir = |source| RecipeError::ReadEnvFiles {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !file.ends_with(".yml") || !path.is_file() {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|source| RecipeError::ReadEnvFile {
                    path: path.clone(),
                    source,
                })?;
            files.insert(file.to_owned(), text);
        }
        Ok(Self {
            files,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// Where the files come from, for messages.
    #[must_use]
    pub fn place(&self) -> String {
        match &self.dir {
            Some(dir) => format!("`{}`", dir.display()),
            None => "the compiled-in environment files (dockerfiles/envfiles/)".to_owned(),
        }
    }

    /// The file names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The file `file`, its environment name read; `None` when there is no such file.
    pub fn get(&self, file: &str) -> Result<Option<EnvFile>, RecipeError> {
        let Some(text) = self.files.get(file) else {
            return Ok(None);
        };
        let name = env_name(text).ok_or_else(|| RecipeError::EnvFileName {
            file: file.to_owned(),
        })?;
        Ok(Some(EnvFile {
            file: file.to_owned(),
            text: text.clone(),
            name,
            sha256: crate::docker::recipe_hash(text),
        }))
    }
}

/// The top-level `name:` of a conda environment file.
fn env_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("name:")?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in list is exactly the directory's files.
    #[test]
    fn builtin_list_matches_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dockerfiles/envfiles");
        let on_disk = EnvFiles::load(Some(&dir)).unwrap();
        let builtin = EnvFiles::load(None).unwrap();
        assert_eq!(on_disk.files, builtin.files);
    }

    #[test]
    fn names_are_read() {
        let files = EnvFiles::load(None).unwrap();
        let base = files.get(BASE_ENV_FILE).unwrap().unwrap();
        assert_eq!(base.name, BASE_ENV_NAME);
        assert_eq!(base.context_path(), "envfiles/kipoi-env.yml");
        let tf1 = files.get("sharedpy3keras2tf1.yml").unwrap().unwrap();
        assert_eq!(tf1.name, "kipoi-shared__envs__kipoi-py3-keras2-tf1");
        assert!(files.get("nope.yml").unwrap().is_none());
        assert_eq!(env_name("# c\nname: 'x'\n"), Some("x".to_owned()));
        assert_eq!(env_name("  name: nested\n"), None);
    }

    #[test]
    fn a_file_without_a_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yml"), "channels: []\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let files = EnvFiles::load(Some(dir.path())).unwrap();
        assert_eq!(files.names().collect::<Vec<_>>(), ["x.yml"]);
        let err = files.get("x.yml").unwrap_err();
        assert!(err.to_string().contains("`x.yml`"), "{err}");
    }
}
