//! Applying verified unit results to the index, in plan order, and listing the key changes
//! the zoo's copies of `model-to-docker.json` and `model-to-singularity.json` receive.

use crate::index::{ImageName, Index, ModelName, SingularityEntry};

use super::unit::Change;

/// What changed, key by key (`None`: removed), for the write-back to the zoo.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexChanges {
    pub model_to_docker: Vec<(String, Option<String>)>,
    pub model_to_singularity: Vec<(String, Option<SingularityEntry>)>,
    /// `docker-to-model.json` changed (it is only written locally).
    pub docker_to_model: bool,
}

impl IndexChanges {
    /// Whether the zoo's copies (`model-to-docker.json`, `model-to-singularity.json`) change.
    #[must_use]
    pub fn touches_zoo(&self) -> bool {
        !self.model_to_docker.is_empty() || !self.model_to_singularity.is_empty()
    }

    /// `self` followed by `newer`: a key both change takes `newer`'s value.
    #[must_use]
    pub fn then(mut self, newer: IndexChanges) -> IndexChanges {
        fn merge<V>(old: &mut Vec<(String, V)>, new: Vec<(String, V)>) {
            for (key, value) in new {
                match old.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => old.push((key, value)),
                }
            }
        }
        merge(&mut self.model_to_docker, newer.model_to_docker);
        merge(&mut self.model_to_singularity, newer.model_to_singularity);
        self.docker_to_model |= newer.docker_to_model;
        self
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.model_to_docker.is_empty()
            && self.model_to_singularity.is_empty()
            && !self.docker_to_model
    }
}

/// Why a result could not go into the index.
#[derive(Debug, thiserror::Error)]
#[error("cannot record `{subject}` in the index: {reason}")]
pub struct ApplyError {
    pub subject: String,
    pub reason: String,
}

fn model(name: &str) -> Result<ModelName, ApplyError> {
    ModelName::new(name).map_err(|reason| ApplyError {
        subject: name.to_owned(),
        reason,
    })
}

fn image(name: &str) -> Result<ImageName, ApplyError> {
    ImageName::new(name).map_err(|reason| ApplyError {
        subject: name.to_owned(),
        reason,
    })
}

/// Applies `changes` to `index`; returns what changed.
pub fn apply(index: &mut Index, changes: &[Change]) -> Result<IndexChanges, ApplyError> {
    let before = index.clone();
    for change in changes {
        match change {
            Change::OwnImage {
                keys,
                image: img,
                models,
                sif,
            } => {
                let img = image(img)?;
                for key in keys {
                    index.model_to_docker.0.insert(model(key)?, img.clone());
                    index
                        .model_to_singularity
                        .0
                        .insert(model(key)?, sif.clone());
                }
                let list = models.iter().map(|m| model(m)).collect::<Result<_, _>>()?;
                index.docker_to_model.0.insert(img, list);
            }
            Change::Shared {
                group,
                image: img,
                models,
                sif,
            } => {
                let img = image(img)?;
                index.model_to_docker.0.insert(model(group)?, img.clone());
                index
                    .model_to_singularity
                    .0
                    .insert(model(group)?, sif.clone());
                replace_models(index, &img, group, models)?;
            }
            Change::Retested {
                group,
                image: img,
                models,
            } => replace_models(index, &image(img)?, group, models)?,
            Change::Removed { keys, image: img } => {
                for key in keys {
                    index.model_to_docker.0.shift_remove(key.as_str());
                    index.model_to_singularity.0.shift_remove(key.as_str());
                }
                if let Some(img) = img {
                    let unit_keys: Vec<&String> = keys.iter().collect();
                    if let Some(list) = index.docker_to_model.0.get_mut(img.as_str()) {
                        list.retain(|m| {
                            !unit_keys
                                .iter()
                                .any(|k| crate::index::is_path_prefix(k, m.as_str()))
                        });
                        if list.is_empty() {
                            index.docker_to_model.0.shift_remove(img.as_str());
                        }
                    }
                }
            }
            Change::NotPublished | Change::ImageOnly { .. } => {}
        }
    }
    Ok(diff(&before, index))
}

/// In `image`'s model list, replaces the models of `unit` with `models` (new ones appended).
fn replace_models(
    index: &mut Index,
    img: &ImageName,
    unit: &str,
    models: &[String],
) -> Result<(), ApplyError> {
    let list = index.docker_to_model.0.entry(img.clone()).or_default();
    let mut kept: Vec<ModelName> = Vec::with_capacity(list.len() + models.len());
    let mut inserted = false;
    for m in list.iter() {
        if crate::index::is_path_prefix(unit, m.as_str()) {
            if !inserted {
                // Keep the unit's models where they were.
                for new in models {
                    kept.push(model(new)?);
                }
                inserted = true;
            }
        } else {
            kept.push(m.clone());
        }
    }
    if !inserted {
        for new in models {
            kept.push(model(new)?);
        }
    }
    *list = kept;
    Ok(())
}

fn diff(before: &Index, after: &Index) -> IndexChanges {
    let mut changes = IndexChanges::default();
    for (key, value) in &after.model_to_docker.0 {
        if before.model_to_docker.0.get(key) != Some(value) {
            changes
                .model_to_docker
                .push((key.as_str().to_owned(), Some(value.as_str().to_owned())));
        }
    }
    for key in before.model_to_docker.0.keys() {
        if !after.model_to_docker.0.contains_key(key) {
            changes
                .model_to_docker
                .push((key.as_str().to_owned(), None));
        }
    }
    for (key, value) in &after.model_to_singularity.0 {
        if before.model_to_singularity.0.get(key) != Some(value) {
            changes
                .model_to_singularity
                .push((key.as_str().to_owned(), Some(value.clone())));
        }
    }
    for key in before.model_to_singularity.0.keys() {
        if !after.model_to_singularity.0.contains_key(key) {
            changes
                .model_to_singularity
                .push((key.as_str().to_owned(), None));
        }
    }
    changes.docker_to_model = before.docker_to_model != after.docker_to_model;
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::parse;

    fn entry(n: u8) -> SingularityEntry {
        SingularityEntry {
            url: crate::index::Url::new(format!(
                "https://zenodo.org/record/{n}/files/x.sif?download=1"
            ))
            .unwrap(),
            name: crate::index::SifName::new(format!("kipoi-docker_x{n}-slim")).unwrap(),
            md5: crate::index::Md5::new(format!("{n:032}")).unwrap(),
        }
    }

    fn index() -> Index {
        Index {
            model_to_docker: parse(
                "model-to-docker.json",
                r#"{"A": "k:shared", "B": "k:shared", "M/x": "k:m", "M/y": "k:m", "C": "k:c"}"#,
            )
            .unwrap(),
            docker_to_model: parse(
                "docker-to-model.json",
                r#"{"k:shared": ["A", "B/1", "B/2"], "k:m": ["M/x", "M/y"], "k:c": ["C"]}"#,
            )
            .unwrap(),
            model_to_singularity: parse(
                "model-to-singularity.json",
                &format!(
                    r#"{{"A": {e1}, "B": {e1}, "M/x": {e2}, "M/y": {e2}, "C": {e3}}}"#,
                    e1 = serde_json::to_string(&entry(1)).unwrap(),
                    e2 = serde_json::to_string(&entry(2)).unwrap(),
                    e3 = serde_json::to_string(&entry(3)).unwrap()
                ),
            )
            .unwrap(),
        }
    }

    #[test]
    fn own_image_updates_every_key_of_the_image() {
        let mut idx = index();
        let changes = apply(
            &mut idx,
            &[Change::OwnImage {
                keys: vec!["M/x".into(), "M/y".into()],
                image: "k:m".into(),
                models: vec!["M/x".into(), "M/y".into(), "M/z".into()],
                sif: entry(9),
            }],
        )
        .unwrap();
        assert!(changes.model_to_docker.is_empty());
        assert_eq!(
            changes.model_to_singularity,
            vec![
                ("M/x".into(), Some(entry(9))),
                ("M/y".into(), Some(entry(9)))
            ]
        );
        assert!(changes.docker_to_model);
        assert_eq!(idx.models_for_image("k:m").unwrap().len(), 3);
    }

    #[test]
    fn shared_retested_and_removed() {
        let mut idx = index();
        let changes = apply(
            &mut idx,
            &[
                Change::Shared {
                    group: "N".into(),
                    image: "k:shared".into(),
                    models: vec!["N/1".into()],
                    sif: entry(1),
                },
                Change::Retested {
                    group: "B".into(),
                    image: "k:shared".into(),
                    models: vec!["B/1".into(), "B/3".into()],
                },
                Change::Removed {
                    keys: vec!["C".into()],
                    image: Some("k:c".into()),
                },
            ],
        )
        .unwrap();
        let listed: Vec<&str> = idx
            .models_for_image("k:shared")
            .unwrap()
            .iter()
            .map(ModelName::as_str)
            .collect();
        assert_eq!(listed, vec!["A", "B/1", "B/3", "N/1"]);
        assert_eq!(
            changes.model_to_docker,
            vec![("N".into(), Some("k:shared".into())), ("C".into(), None)]
        );
        assert_eq!(
            changes.model_to_singularity,
            vec![("N".into(), Some(entry(1))), ("C".into(), None)]
        );
        assert!(idx.models_for_image("k:c").is_none());
        assert!(
            idx.consistency_problems().is_empty(),
            "{:?}",
            idx.consistency_problems()
        );
    }

    #[test]
    fn nothing_published_changes_nothing() {
        let mut idx = index();
        let changes = apply(&mut idx, &[Change::NotPublished]).unwrap();
        assert!(changes.is_empty());
        assert_eq!(idx, index());
    }
}
