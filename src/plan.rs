//! The sync plan: from what changed in the zoo and the current index, decide what a sync
//! must do, with a reason for each action. Pure: no I/O, deterministic output.
//!
//! The unit of a change is the longest index key that is a path prefix of the changed
//! path (`MMSplice/mtsplice/model.yaml` → `MMSplice/mtsplice`, `DeepBind/x/y` →
//! `DeepBind`). When no key covers a path, the depth of the index keys already under its
//! top-level group decides the unit (the other `MMSplice/*` keys are one level deep, so a
//! new `MMSplice/new/model.yaml` is the unit `MMSplice/new`). A changed file of a group
//! that belongs to none of its units (`MMSplice/dataloader.yaml`) affects all of them.
//! Nothing here names a model group: every rule comes from the index and the zoo layout.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::index::{common_path_prefix, is_path_prefix, Index};
use crate::layout::Layout;
use crate::names::{top_group, validate_model_name};

/// What to do for one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// The group was deleted from the zoo: drop its index entries.
    RemoveGroup,
    /// A group with its own image changed: rebuild full + slim, retest, reconvert the SIF.
    UpdateImage,
    /// A group on a shared image changed: retest its models in that image (a failure
    /// makes the sync give it its own image).
    RetestShared,
    /// A group new to the index: try the shared images, else build its own.
    AddGroup,
}

impl ActionKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RemoveGroup => "remove-group",
            Self::UpdateImage => "update-image",
            Self::RetestShared => "retest-shared",
            Self::AddGroup => "add-group",
        }
    }
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub kind: ActionKind,
    /// The index key (or new group/model path) the action is about.
    pub unit: String,
    /// The image the unit uses now (`None` for a group new to the index).
    pub image: Option<String>,
    /// Models to test (at the target commit); for `remove-group`, the models dropped.
    pub models: Vec<String>,
    /// Images to try first (`add-group`: the shared images, from the index).
    pub try_images: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// The changed paths that caused this action.
    pub paths: Vec<String>,
}

/// A changed path that causes no action, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// The plan of a sync from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub zoo: String,
    pub from: String,
    pub to: String,
    pub actions: Vec<Action>,
    pub skipped: Vec<Skipped>,
}

impl Plan {
    /// Nothing to build, test or remove.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

impl Plan {
    /// A readable table: one line per action with its reason, then the skipped paths.
    #[must_use]
    pub fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let short = |s: &str| s.get(..12).unwrap_or(s).to_owned();
        let mut out = format!(
            "Sync plan for {} from {} to {}\n",
            self.zoo,
            short(&self.from),
            short(&self.to)
        );
        if self.actions.is_empty() {
            out.push_str("nothing to do: no model group changed\n");
        } else {
            let rows: Vec<[String; 4]> = self
                .actions
                .iter()
                .map(|a| {
                    let models = match a.models.as_slice() {
                        [] => "-".to_owned(),
                        [one] => one.clone(),
                        many => format!("{} models", many.len()),
                    };
                    let image = a.image.clone().unwrap_or_else(|| {
                        format!("(try {} shared images first)", a.try_images.len())
                    });
                    [a.kind.as_str().to_owned(), a.unit.clone(), image, models]
                })
                .collect();
            let header = ["ACTION", "UNIT", "IMAGE", "MODELS"];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            let line = |cells: [&str; 4]| {
                format!(
                    "  {:w0$}  {:w1$}  {:w2$}  {}",
                    cells[0],
                    cells[1],
                    cells[2],
                    cells[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2]
                )
            };
            let _ = writeln!(out, "{}", line(header));
            for (row, action) in rows.iter().zip(&self.actions) {
                let _ = writeln!(out, "{}", line([&row[0], &row[1], &row[2], &row[3]]));
                let _ = writeln!(
                    out,
                    "      why: {} ({} changed path{})",
                    action.reason,
                    action.paths.len(),
                    if action.paths.len() == 1 { "" } else { "s" }
                );
            }
            let _ = writeln!(out, "{} action(s)", self.actions.len());
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "skipped {} path(s):", self.skipped.len());
            for s in &self.skipped {
                let _ = writeln!(out, "  {}: {}", s.path, s.reason);
            }
        }
        out
    }
}

/// Everything the planner needs, gathered by the caller.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub zoo: String,
    pub from: String,
    pub to: String,
    /// Paths that differ between the two commits.
    pub changed: Vec<String>,
    /// Zoo layout at `from` and at `to`.
    pub base: &'a Layout,
    pub head: &'a Layout,
    /// Models at `to` of every top-level group touched by `changed` (see [`touched_groups`]).
    pub head_models: &'a BTreeMap<String, Vec<String>>,
    pub index: &'a Index,
}

/// The top-level groups, present at `to`, whose models the planner needs.
#[must_use]
pub fn touched_groups(changed: &[String], head: &Layout) -> BTreeSet<String> {
    let groups = head.groups();
    changed
        .iter()
        .filter(|p| p.contains('/'))
        .map(|p| top_group(p).to_owned())
        .filter(|g| groups.contains(g))
        .collect()
}

/// Records an action: (kind, unit, image, reason, changed path).
type AddAction<'a> = dyn FnMut(ActionKind, &str, Option<String>, String, &str) + 'a;

/// Computes the plan.
#[must_use]
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let index = input.index;
    let keys: Vec<&str> = index.model_to_docker.0.keys().map(|k| k.as_str()).collect();
    let shared: BTreeSet<&str> = index
        .shared_images()
        .into_iter()
        .map(|i| i.as_str())
        .collect();
    let shared_images: Vec<String> = shared.iter().map(|s| (*s).to_owned()).collect();
    let base_groups = input.base.groups();
    let head_groups = input.head.groups();

    let mut actions: BTreeMap<(String, ActionKind), Action> = BTreeMap::new();
    let mut skipped = Vec::new();

    let models_under = |unit: &str| -> Vec<String> {
        input
            .head_models
            .get(top_group(unit))
            .map(|ms| {
                ms.iter()
                    .filter(|m| is_path_prefix(unit, m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut add =
        |kind: ActionKind, unit: &str, image: Option<String>, reason: String, path: &str| {
            let entry = actions.entry((unit.to_owned(), kind)).or_insert_with(|| {
                let models = match kind {
                    ActionKind::RemoveGroup => image
                        .as_deref()
                        .and_then(|i| index.models_for_image(i))
                        .map(|ms| {
                            ms.iter()
                                .map(ToString::to_string)
                                .filter(|m| is_path_prefix(unit, m))
                                .collect()
                        })
                        .unwrap_or_default(),
                    // Every model at the target that runs in this image.
                    ActionKind::UpdateImage => models_under(unit)
                        .into_iter()
                        .filter(|m| index.image_for_model(m).map(ToString::to_string) == image)
                        .collect(),
                    _ => models_under(unit),
                };
                Action {
                    kind,
                    unit: unit.to_owned(),
                    image,
                    models,
                    try_images: if kind == ActionKind::AddGroup {
                        shared_images.clone()
                    } else {
                        Vec::new()
                    },
                    reason,
                    paths: Vec::new(),
                }
            });
            entry.paths.push(path.to_owned());
        };

    // Update or retest an indexed key, or drop it when it is gone at the target.
    let for_key = |key: &str, path: &str, add: &mut AddAction<'_>| {
        let image = index.image_for_model(key).map(ToString::to_string);
        if !input.head.holds_models(key) {
            add(
                ActionKind::RemoveGroup,
                key,
                image,
                format!("`{key}` no longer exists in the zoo"),
                path,
            );
            return;
        }
        let name = image.clone().unwrap_or_default();
        if shared.contains(name.as_str()) {
            add(
                ActionKind::RetestShared,
                key,
                image,
                format!("`{key}` changed and runs in the shared image `{name}`"),
                path,
            );
        } else {
            // A group's own image may serve several of its keys (`mmsplice`): one rebuild
            // for the image, whose unit is what its keys have in common.
            let keys = index.keys_for_image(&name);
            let unit = common_path_prefix(keys.iter().map(|k| k.as_str())).unwrap_or(key);
            add(
                ActionKind::UpdateImage,
                unit,
                image,
                format!("`{unit}` changed and has its own image `{name}`"),
                path,
            );
        }
    };

    for path in &input.changed {
        if let Err(e) = validate_model_name(path) {
            skipped.push(Skipped {
                path: path.escape_debug().to_string(),
                reason: format!("rejected: {}", e.reason),
            });
            continue;
        }
        let top = top_group(path);
        if !path.contains('/') {
            skipped.push(Skipped {
                path: path.clone(),
                reason: "top-level file, not part of a model group".into(),
            });
            continue;
        }
        if !base_groups.contains(top) && !head_groups.contains(top) {
            skipped.push(Skipped {
                path: path.clone(),
                reason: format!(
                    "`{top}/` is not a model group (no model.yaml or model-template.yaml at either commit)"
                ),
            });
            continue;
        }
        if let Some(key) = crate::index::longest_prefix_key(keys.iter(), path) {
            for_key(key, path, &mut add);
            continue;
        }
        // No key covers the path: look at the keys already under its group.
        let group_keys: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| top_group(k) == top)
            .collect();
        if group_keys.is_empty() {
            if head_groups.contains(top) {
                add(
                    ActionKind::AddGroup,
                    top,
                    None,
                    format!("`{top}` is a model group with no entry in the index"),
                    path,
                );
            } else {
                skipped.push(Skipped {
                    path: path.clone(),
                    reason: format!("`{top}` was deleted and was never in the index"),
                });
            }
            continue;
        }
        let depth = group_keys
            .iter()
            .map(|k| k.split('/').count())
            .max()
            .unwrap_or(1);
        let segments: Vec<&str> = path.split('/').collect();
        let unit = segments[..depth.min(segments.len())].join("/");
        if segments.len() > depth
            && (input.head.holds_models(&unit) || input.base.holds_models(&unit))
        {
            if input.head.holds_models(&unit) {
                add(
                    ActionKind::AddGroup,
                    &unit,
                    None,
                    format!("`{unit}` is a model with no entry in the index"),
                    path,
                );
            } else {
                skipped.push(Skipped {
                    path: path.clone(),
                    reason: format!("`{unit}` was deleted and was never in the index"),
                });
            }
        } else {
            // A file shared by the group's units: every one of them is affected.
            for key in group_keys {
                for_key(key, path, &mut add);
            }
        }
    }

    let mut actions: Vec<Action> = actions.into_values().collect();
    actions.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.unit.cmp(&b.unit)));
    Plan {
        zoo: input.zoo.clone(),
        from: input.from.clone(),
        to: input.to.clone(),
        actions,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Tree;

    fn layout(paths: &[&str]) -> Layout {
        Tree {
            files: paths
                .iter()
                .map(|p| ((*p).to_owned(), "x".to_owned()))
                .collect(),
        }
        .layout()
    }

    fn index() -> Index {
        Index {
            model_to_docker: crate::index::parse(
                "model-to-docker.json",
                r#"{"Basset": "k:shared", "HAL": "k:shared", "MMSplice/deltaLogitPSI": "k:mmsplice",
                    "MMSplice/pathogenicity": "k:mmsplice", "MMSplice/mtsplice": "k:mtsplice", "DeepMEL": "k:deepmel"}"#,
            )
            .unwrap(),
            docker_to_model: crate::index::parse(
                "docker-to-model.json",
                r#"{"k:shared": ["Basset", "HAL"], "k:mmsplice": ["MMSplice/deltaLogitPSI", "MMSplice/pathogenicity"],
                    "k:mtsplice": ["MMSplice/mtsplice"], "k:deepmel": ["DeepMEL/a", "DeepMEL/b"]}"#,
            )
            .unwrap(),
            ..Index::default()
        }
    }

    const ZOO: &[&str] = &[
        "Basset/model.yaml",
        "HAL/model.yaml",
        "MMSplice/deltaLogitPSI/model.yaml",
        "MMSplice/pathogenicity/model.yaml",
        "MMSplice/mtsplice/model.yaml",
        "MMSplice/dataloader.yaml",
        "DeepMEL/a/model.yaml",
        "DeepMEL/b/model.yaml",
        "README.md",
        "tests/x.py",
    ];

    fn run(base: &[&str], head: &[&str], changed: &[&str]) -> Plan {
        let (b, h) = (layout(base), layout(head));
        let changed: Vec<String> = changed.iter().map(|s| (*s).to_owned()).collect();
        let mut models = BTreeMap::new();
        for g in touched_groups(&changed, &h) {
            let ms = h.roots_under(&g).map(|(r, _)| r.clone()).collect();
            models.insert(g, ms);
        }
        let idx = index();
        plan(&PlanInput {
            zoo: "z".into(),
            from: "a".into(),
            to: "b".into(),
            changed,
            base: &b,
            head: &h,
            head_models: &models,
            index: &idx,
        })
    }

    fn summary(p: &Plan) -> Vec<(String, &'static str)> {
        p.actions
            .iter()
            .map(|a| (a.unit.clone(), a.kind.as_str()))
            .collect()
    }

    #[test]
    fn table() {
        let mut with_new = ZOO.to_vec();
        with_new.push("MMSplice/newone/model.yaml");
        with_new.push("NewGroup/model.yaml");
        let without_deepmel: Vec<&str> = ZOO
            .iter()
            .copied()
            .filter(|p| !p.starts_with("DeepMEL"))
            .collect();
        type Case<'a> = (&'a str, Plan, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "own image",
                run(ZOO, ZOO, &["DeepMEL/a/model.yaml"]),
                vec![("DeepMEL", "update-image")],
            ),
            (
                "shared image",
                run(ZOO, ZOO, &["HAL/model.yaml"]),
                vec![("HAL", "retest-shared")],
            ),
            (
                "sub-model key",
                run(ZOO, ZOO, &["MMSplice/mtsplice/model.yaml"]),
                vec![("MMSplice/mtsplice", "update-image")],
            ),
            (
                "sibling keys on one image",
                run(ZOO, ZOO, &["MMSplice/pathogenicity/model.yaml"]),
                vec![("MMSplice", "update-image")],
            ),
            (
                "group-level file affects every unit",
                run(ZOO, ZOO, &["MMSplice/dataloader.yaml"]),
                vec![
                    ("MMSplice/mtsplice", "update-image"),
                    ("MMSplice", "update-image"),
                ],
            ),
            (
                "new group and new sub-model",
                run(
                    ZOO,
                    &with_new,
                    &["MMSplice/newone/model.yaml", "NewGroup/model.yaml"],
                ),
                vec![("MMSplice/newone", "add-group"), ("NewGroup", "add-group")],
            ),
            (
                "deleted group",
                run(
                    ZOO,
                    &without_deepmel,
                    &["DeepMEL/a/model.yaml", "DeepMEL/b/model.yaml"],
                ),
                vec![("DeepMEL", "remove-group")],
            ),
            (
                "non-model paths",
                run(
                    ZOO,
                    ZOO,
                    &["README.md", "tests/x.py", ".circleci/config.yml"],
                ),
                vec![],
            ),
        ];
        for (name, plan, expected) in cases {
            let mut got = summary(&plan);
            let mut want: Vec<(String, &str)> = expected
                .iter()
                .map(|(u, k)| ((*u).to_owned(), *k))
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn reasons_models_and_skips() {
        let p = run(
            ZOO,
            ZOO,
            &[
                "DeepMEL/a/model.yaml",
                "DeepMEL/b/model.yaml",
                "README.md",
                "../etc/passwd",
                "a\nb/c",
            ],
        );
        assert_eq!(p.actions.len(), 1);
        let a = &p.actions[0];
        assert_eq!(a.models, vec!["DeepMEL/a", "DeepMEL/b"]);
        assert_eq!(a.paths.len(), 2);
        assert_eq!(a.image.as_deref(), Some("k:deepmel"));
        assert!(a.reason.contains("own image"));
        let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons[0].starts_with("top-level file"));
        assert!(reasons[1].starts_with("rejected"), "{reasons:?}");
        assert!(reasons[2].starts_with("rejected"), "{reasons:?}");
    }

    #[test]
    fn add_group_tries_shared_images_and_removal_lists_models() {
        let mut with_new = ZOO.to_vec();
        with_new.push("NewGroup/model.yaml");
        let p = run(ZOO, &with_new, &["NewGroup/model.yaml"]);
        // `k:mmsplice` serves two keys of one group: MMSplice's own image, not shared.
        assert_eq!(p.actions[0].try_images, vec!["k:shared"]);
        assert_eq!(p.actions[0].models, vec!["NewGroup"]);
        let without: Vec<&str> = ZOO
            .iter()
            .copied()
            .filter(|p| !p.starts_with("DeepMEL"))
            .collect();
        let p = run(ZOO, &without, &["DeepMEL/a/model.yaml"]);
        assert_eq!(p.actions[0].models, vec!["DeepMEL/a", "DeepMEL/b"]);
    }

    #[test]
    fn one_rebuild_per_own_image_with_all_its_models() {
        let p = run(
            ZOO,
            ZOO,
            &[
                "MMSplice/pathogenicity/model.yaml",
                "MMSplice/deltaLogitPSI/model.yaml",
            ],
        );
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].unit, "MMSplice");
        assert_eq!(p.actions[0].image.as_deref(), Some("k:mmsplice"));
        assert_eq!(
            p.actions[0].models,
            vec!["MMSplice/deltaLogitPSI", "MMSplice/pathogenicity"]
        );
        assert_eq!(p.actions[0].paths.len(), 2);
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_path_prefix(["a/b", "a/c"].into_iter()), Some("a"));
        assert_eq!(
            common_path_prefix(["a/b/c", "a/b/d"].into_iter()),
            Some("a/b")
        );
        assert_eq!(common_path_prefix(["a/b"].into_iter()), Some("a/b"));
        assert_eq!(common_path_prefix(["a/b", "ab/c"].into_iter()), None);
    }

    #[test]
    fn deterministic_order() {
        let changed = [
            "NewGroup/model.yaml",
            "HAL/model.yaml",
            "DeepMEL/a/model.yaml",
        ];
        let mut with_new = ZOO.to_vec();
        with_new.push("NewGroup/model.yaml");
        let p1 = run(ZOO, &with_new, &changed);
        let mut rev = changed;
        rev.reverse();
        let p2 = run(ZOO, &with_new, &rev);
        assert_eq!(summary(&p1), summary(&p2));
        assert_eq!(
            summary(&p1),
            vec![
                ("DeepMEL".to_owned(), "update-image"),
                ("HAL".to_owned(), "retest-shared"),
                ("NewGroup".to_owned(), "add-group")
            ]
        );
    }
}
