//! The layout of a model zoo, from its file list alone (pure: no I/O).
//!
//! A commit is reduced to a [`Tree`] (path → object id of every file), so the change between
//! two commits is the tree difference. What a model group is, is derived from the tree: a
//! top-level folder that holds a `model.yaml` or `model-template.yaml` somewhere below it
//! ([`Layout`]); a template folder's models are the `model` column of its `models.tsv`
//! ([`parse_models_tsv`]). Both the zoo readers and the planner use this module.

use std::collections::{BTreeMap, BTreeSet};

use crate::names::validate_model_name;

/// File names that define a model (or a family of models, with `models.tsv`).
pub const MODEL_FILE: &str = "model.yaml";
pub const MODEL_TEMPLATE_FILE: &str = "model-template.yaml";
pub const MODELS_TSV: &str = "models.tsv";

/// Top-level folders of the zoo that hold infrastructure, never model groups, even if a
/// test fixture inside them looks like a model.
pub const NON_MODEL_FOLDERS: &[&str] = &["shared", "tests"];

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

    /// The content of `unit` (a group or a model folder): a sha256 over the sorted paths
    /// and object ids of every file at or below it. Equal content gives an equal hash,
    /// whichever source (local git or GitHub) listed the tree; any added, removed, renamed
    /// or changed file changes it. The sync records it as an image label and skips a unit
    /// whose image carries the same hash and recipe.
    #[must_use]
    pub fn content_hash(&self, unit: &str) -> String {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for (path, id) in &self.files {
            if crate::index::is_path_prefix(unit, path) {
                hasher.update(path.as_bytes());
                hasher.update([0]);
                hasher.update(id.as_bytes());
                hasher.update([b'\n']);
            }
        }
        format!("{:x}", hasher.finalize())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_covers_exactly_the_unit() {
        let t = tree(&[
            ("A/model.yaml", "1"),
            ("A/x/y.py", "2"),
            ("AB/model.yaml", "3"),
        ]);
        let mut changed = t.clone();
        changed.files.insert("AB/model.yaml".into(), "9".into());
        assert_eq!(
            t.content_hash("A"),
            changed.content_hash("A"),
            "a sibling with a common prefix"
        );
        changed.files.insert("A/x/y.py".into(), "7".into());
        assert_ne!(t.content_hash("A"), changed.content_hash("A"));
        let mut renamed = t.clone();
        let id = renamed.files.remove("A/x/y.py").unwrap();
        renamed.files.insert("A/x/z.py".into(), id);
        assert_ne!(t.content_hash("A"), renamed.content_hash("A"));
        assert_eq!(
            t.content_hash("A/x"),
            tree(&[("A/x/y.py", "2")]).content_hash("A/x")
        );
    }

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
