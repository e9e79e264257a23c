//! Model zoo access: what a zoo holds at a commit and what changed between two commits.
//!
//! Two sources behind one interface ([`Zoo`]): a local git checkout (the `git` CLI) and
//! GitHub's REST API. Both reduce a commit to a [`Tree`] (path → object id of every
//! file), so the change between two commits is always the **tree difference** (what
//! `git diff A B` compares), never the merge-base difference: the real zoo's history was
//! rewritten and the stored hash is not an ancestor of its master. No file contents are
//! needed for it, so repositories with absent large blobs (LFS, partial clones) work.
//!
//! What a model group is, is derived from the tree: a top-level folder that holds a
//! `model.yaml` or `model-template.yaml` somewhere below it.

mod github;
mod local;

pub use github::GitHubZoo;
pub use local::LocalZoo;

use std::collections::{BTreeMap, BTreeSet};

use crate::names::validate_model_name;

/// File names that define a model (or a family of models, with `models.tsv`).
pub const MODEL_FILE: &str = "model.yaml";
pub const MODEL_TEMPLATE_FILE: &str = "model-template.yaml";
pub const MODELS_TSV: &str = "models.tsv";

/// Top-level folders of the zoo that hold infrastructure, never model groups, even if a
/// test fixture inside them looks like a model.
pub const NON_MODEL_FOLDERS: &[&str] = &["shared", "tests"];

/// Errors of zoo access.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    #[error("`git {args}` failed in `{repo}`: {stderr}")]
    Git {
        repo: String,
        args: String,
        stderr: String,
    },
    #[error("could not run `git` (is it installed?): {0}")]
    GitMissing(#[source] std::io::Error),
    #[error("`{0}` is not a git repository; pass a zoo checkout or `github:OWNER/REPO`")]
    NotARepo(String),
    #[error("unknown revision `{rev}` in {zoo}")]
    UnknownRevision { zoo: String, rev: String },
    #[error("GitHub {step} failed: {status} {message}{hint}")]
    GitHub {
        step: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error("GitHub {step} failed: {source}")]
    GitHubTransport {
        step: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GitHub {step}: unexpected answer: {message}")]
    GitHubShape { step: String, message: String },
    #[error("`{path}` does not exist at {commit}")]
    FileNotFound { path: String, commit: String },
    #[error("`{path}` at {commit}: {message}")]
    BadFile {
        path: String,
        commit: String,
        message: String,
    },
    #[error("invalid zoo `{0}`: expected a path to a git checkout or `github:OWNER/REPO`")]
    BadSpec(String),
}

/// A commit's files: path → object id (blob sha; mode-qualified so a mode change counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<String, String>,
}

impl Tree {
    /// Paths added, removed or changed between `self` (base) and `other` (head), sorted.
    #[must_use]
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut changed: BTreeSet<&String> = BTreeSet::new();
        for (path, id) in &self.files {
            if other.files.get(path) != Some(id) {
                changed.insert(path);
            }
        }
        for path in other.files.keys() {
            if !self.files.contains_key(path) {
                changed.insert(path);
            }
        }
        changed.into_iter().cloned().collect()
    }

    /// The zoo layout of this tree: model roots and groups.
    #[must_use]
    pub fn layout(&self) -> Layout {
        let mut roots = BTreeMap::new();
        let mut tables = BTreeSet::new();
        for path in self.files.keys() {
            let Some((dir, file)) = path.rsplit_once('/') else {
                continue; // top-level files are never models
            };
            if file == MODELS_TSV {
                tables.insert(dir.to_owned());
                continue;
            }
            let kind = match file {
                MODEL_FILE => RootKind::Model,
                MODEL_TEMPLATE_FILE => RootKind::Template,
                _ => continue,
            };
            let top = crate::names::top_group(dir);
            if top.starts_with('.') || NON_MODEL_FOLDERS.contains(&top) {
                continue;
            }
            if validate_model_name(dir).is_err() {
                log::warn!(
                    "skipping model folder with an invalid name: {}",
                    dir.escape_debug()
                );
                continue;
            }
            // A template wins over a plain model.yaml in the same folder.
            let entry = roots.entry(dir.to_owned()).or_insert(kind);
            if kind == RootKind::Template {
                *entry = RootKind::Template;
            }
        }
        let tables = tables
            .into_iter()
            .filter(|d| roots.get(d) == Some(&RootKind::Template))
            .collect();
        Layout { roots, tables }
    }
}

/// What kind of definition a model root folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// `model.yaml`: the folder is one model.
    Model,
    /// `model-template.yaml` (+ `models.tsv`): the folder defines the models listed in the TSV.
    Template,
}

/// Model roots (folders holding `model.yaml` or `model-template.yaml`) of one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub roots: BTreeMap<String, RootKind>,
    /// Template roots that also hold a `models.tsv`.
    pub tables: BTreeSet<String>,
}

impl Layout {
    /// Top-level model groups.
    #[must_use]
    pub fn groups(&self) -> BTreeSet<String> {
        self.roots
            .keys()
            .map(|r| crate::names::top_group(r).to_owned())
            .collect()
    }

    /// Whether `unit` (a group, or a model path inside one) holds a model definition:
    /// a root at or below it, or a template root above it.
    #[must_use]
    pub fn holds_models(&self, unit: &str) -> bool {
        self.roots.keys().any(|root| {
            crate::index::is_path_prefix(unit, root) || crate::index::is_path_prefix(root, unit)
        })
    }

    /// Roots at or below `group`, in path order.
    pub fn roots_under<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = (&'a String, RootKind)> {
        self.roots
            .iter()
            .filter(move |(root, _)| crate::index::is_path_prefix(group, root))
            .map(|(r, k)| (r, *k))
    }
}

/// The `model` column of a `models.tsv`, validated; `dir` prefixes each model name.
pub fn parse_models_tsv(dir: &str, text: &str) -> Result<Vec<String>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("it is empty")?;
    let column = header
        .split('\t')
        .position(|h| h.trim() == "model")
        .ok_or("it has no `model` column")?;
    let mut models = Vec::new();
    for (n, line) in lines.enumerate() {
        let name = line.split('\t').nth(column).map(str::trim).unwrap_or("");
        if name.is_empty() {
            return Err(format!("row {} has no model name", n + 2));
        }
        let full = format!("{dir}/{name}");
        validate_model_name(&full).map_err(|e| format!("row {}: {e}", n + 2))?;
        models.push(full);
    }
    Ok(models)
}

/// A model zoo source.
#[derive(Debug)]
pub enum Zoo {
    Local(LocalZoo),
    GitHub(GitHubZoo),
}

impl Zoo {
    /// Opens a zoo from a spec: a path to a git checkout, or `github:OWNER/REPO`.
    /// GitHub uses `api_url` (default `$GITHUB_API_URL`, then https://api.github.com) and
    /// the token in `$GITHUB_PAT` or `$GITHUB_TOKEN` (optional for reads).
    pub fn open(spec: &str, api_url: Option<&str>) -> Result<Self, ZooError> {
        if let Some(repo) = spec.strip_prefix("github:") {
            let (owner, name) = repo
                .split_once('/')
                .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| ZooError::BadSpec(spec.to_owned()))?;
            Ok(Self::GitHub(GitHubZoo::from_env(owner, name, api_url)?))
        } else {
            Ok(Self::Local(LocalZoo::open(std::path::Path::new(spec))?))
        }
    }

    /// A short description for messages (`github:kipoi/models`, a path).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Local(z) => z.describe(),
            Self::GitHub(z) => z.describe(),
        }
    }

    /// The full commit sha of `rev` (a sha, a branch, a tag); `None` is the default
    /// branch's head.
    pub async fn resolve(&self, rev: Option<&str>) -> Result<String, ZooError> {
        match self {
            Self::Local(z) => z.resolve(rev),
            Self::GitHub(z) => z.resolve(rev).await,
        }
    }

    /// Every file of `commit` with its object id (no contents are read).
    pub async fn tree(&self, commit: &str) -> Result<Tree, ZooError> {
        match self {
            Self::Local(z) => z.tree(commit),
            Self::GitHub(z) => z.tree(commit).await,
        }
    }

    /// The bytes of `path` at `commit`.
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Vec<u8>, ZooError> {
        match self {
            Self::Local(z) => z.read_file(commit, path),
            Self::GitHub(z) => z.read_file(commit, path).await,
        }
    }

    /// Paths that differ between `from` and `to` (tree difference).
    pub async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>, ZooError> {
        Ok(self.tree(from).await?.diff(&self.tree(to).await?))
    }

    /// The sync plan from `from` (a revision; the stored hash) to `to` (default: the
    /// default branch's head) against `index`.
    pub async fn plan(
        &self,
        from: &str,
        to: Option<&str>,
        index: &crate::index::Index,
    ) -> Result<crate::plan::Plan, ZooError> {
        let from_sha = self.resolve(Some(from)).await?;
        let to_sha = self.resolve(to).await?;
        let (base, head) = if from_sha == to_sha {
            let t = self.tree(&to_sha).await?;
            (t.clone(), t)
        } else {
            (self.tree(&from_sha).await?, self.tree(&to_sha).await?)
        };
        let changed = base.diff(&head);
        let (base_layout, head_layout) = (base.layout(), head.layout());
        let mut head_models = BTreeMap::new();
        for group in crate::plan::touched_groups(&changed, &head_layout) {
            let models = self.models_of_group(&to_sha, &head_layout, &group).await?;
            head_models.insert(group, models);
        }
        log::info!(
            "{}: {} paths changed between {} and {}",
            self.describe(),
            changed.len(),
            short(&from_sha),
            short(&to_sha)
        );
        Ok(crate::plan::plan(&crate::plan::PlanInput {
            zoo: self.describe(),
            from: from_sha,
            to: to_sha,
            changed,
            base: &base_layout,
            head: &head_layout,
            head_models: &head_models,
            index,
        }))
    }

    /// The models of `group` at `commit` given that commit's `layout`: the `model`
    /// column of `models.tsv` beside a `model-template.yaml`, else every folder holding
    /// a `model.yaml`, else (a template without TSV) the folder itself.
    pub async fn models_of_group(
        &self,
        commit: &str,
        layout: &Layout,
        group: &str,
    ) -> Result<Vec<String>, ZooError> {
        let mut models = Vec::new();
        for (root, kind) in layout.roots_under(group) {
            match kind {
                RootKind::Model => models.push(root.clone()),
                // Whether the TSV exists comes from the tree, so any failure to read it
                // (a missing blob in a partial clone, a network error) is an error, never
                // "this template defines one model".
                RootKind::Template if layout.tables.contains(root.as_str()) => {
                    let tsv = format!("{root}/{MODELS_TSV}");
                    let bytes = self.read_file(commit, &tsv).await?;
                    let text = String::from_utf8_lossy(&bytes);
                    let listed =
                        parse_models_tsv(root, &text).map_err(|message| ZooError::BadFile {
                            path: tsv.clone(),
                            commit: commit.to_owned(),
                            message,
                        })?;
                    models.extend(listed);
                }
                RootKind::Template => models.push(root.clone()),
            }
        }
        Ok(models)
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[(&str, &str)]) -> Tree {
        Tree {
            files: paths
                .iter()
                .map(|(p, id)| ((*p).to_owned(), (*id).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn diff_is_symmetric_tree_difference() {
        let a = tree(&[
            ("A/model.yaml", "1"),
            ("B/model.yaml", "2"),
            ("README.md", "3"),
        ]);
        let b = tree(&[
            ("A/model.yaml", "1"),
            ("B/model.yaml", "9"),
            ("C/model.yaml", "4"),
        ]);
        assert_eq!(
            a.diff(&b),
            vec!["B/model.yaml", "C/model.yaml", "README.md"]
        );
        assert!(a.diff(&a).is_empty());
    }

    #[test]
    fn layout_finds_groups_not_infrastructure() {
        let t = tree(&[
            ("MMSplice/mtsplice/model.yaml", "1"),
            ("MMSplice/dataloader.yaml", "1"),
            ("DeepBind/model-template.yaml", "1"),
            ("DeepBind/models.tsv", "1"),
            ("tests/fake/model.yaml", "1"),
            (".circleci/x/model.yaml", "1"),
            ("shared/containers/model-to-docker.json", "1"),
            ("model.yaml", "1"),
        ]);
        let l = t.layout();
        assert_eq!(
            l.groups().into_iter().collect::<Vec<_>>(),
            vec!["DeepBind", "MMSplice"]
        );
        assert!(l.holds_models("MMSplice"));
        assert!(l.holds_models("MMSplice/mtsplice"));
        assert!(l.holds_models("DeepBind/Homo_sapiens/TF/x"));
        assert!(!l.holds_models("MMSplice/dataloader.yaml"));
    }

    #[test]
    fn models_tsv_column() {
        let text = "a\tmodel\tb\n1\tHomo/x\t2\n\n3\tHomo/y\t4\n";
        assert_eq!(
            parse_models_tsv("DeepBind", text).unwrap(),
            vec!["DeepBind/Homo/x", "DeepBind/Homo/y"]
        );
        assert!(parse_models_tsv("G", "name\nx\n")
            .unwrap_err()
            .contains("no `model` column"));
        assert!(parse_models_tsv("G", "model\n../x\n")
            .unwrap_err()
            .contains("row 2"));
    }
}
