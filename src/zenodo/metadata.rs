//! The words of a SIF's Zenodo record: title and description, and the metadata body Zenodo
//! stores them in.
//!
//! Which text applies is decided from the index, never from a name ([`ImageRole::of`]):
//!
//! | the SIF's index keys                                  | role                  | title                                      |
//! |-------------------------------------------------------|-----------------------|--------------------------------------------|
//! | span two or more top-level model groups               | shared environment    | `sharedpy3keras2tf1 singularity container` |
//! | several keys of one group, other keys of it elsewhere | group except others   | `MMSplice singularity container except mtsplice` |
//! | otherwise                                             | the model group's own | `DeepMEL singularity container`            |

use serde_json::{json, Value};

use crate::index::is_path_prefix;
use crate::names::{top_group, INDEX_REPOSITORY, SLIM_SUFFIX};

/// The record's creator (upstream's value).
pub const CREATOR_NAME: &str = "Haimasree, Bhattacharya";
/// The creator's affiliation (upstream's value).
pub const CREATOR_AFFILIATION: &str = "EMBL";
/// Zenodo `upload_type` of every SIF record.
pub const UPLOAD_TYPE: &str = "physicalobject";
/// Licence of every SIF record.
pub const LICENSE: &str = "MIT";
/// Where a model group is described.
const MODELS_URL: &str = "https://kipoi.org/models";
/// Where the shared environments' conda files are.
const ENVFILES_URL: &str = "https://github.com/kipoi/kipoi-containers/blob/main/envfiles";
/// File extension of a SIF.
const SIF_EXTENSION: &str = ".sif";

/// What an image is to the zoo, as far as its record's text is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRole {
    /// The image of one model group (the caller names the group).
    OwnGroup,
    /// A conda environment shared by several model groups, e.g. `sharedpy3keras2tf1`.
    SharedEnv { env: String },
    /// The image of `group` except the sub-models `others`, which have their own images.
    GroupExcept { group: String, others: Vec<String> },
}

impl ImageRole {
    /// The role of the SIF named `sif_name` (`kipoi-docker_mmsplice-slim`, with or without
    /// `.sif`) among the `(key, sif name)` entries of `model-to-singularity.json`:
    /// - its keys span two or more top-level groups: a shared environment;
    /// - it serves several keys of one group: that group's image, except the group's keys
    ///   that are served by other images (sorted, relative to the group);
    /// - otherwise (one key, or none: a new image): a group's own image.
    #[must_use]
    pub fn of<'a>(sif_name: &str, index: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let name = sif_name.strip_suffix(SIF_EXTENSION).unwrap_or(sif_name);
        let entries: Vec<(&str, &str)> = index.into_iter().collect();
        let keys: Vec<&str> = entries
            .iter()
            .filter(|(_, n)| n.strip_suffix(SIF_EXTENSION).unwrap_or(n) == name)
            .map(|(k, _)| *k)
            .collect();
        let mut groups: Vec<&str> = keys.iter().map(|k| top_group(k)).collect();
        groups.sort_unstable();
        groups.dedup();
        match groups.as_slice() {
            [_, _, ..] => Self::SharedEnv {
                env: env_of_sif_name(name).to_owned(),
            },
            [group] if keys.len() >= 2 => {
                let mut others: Vec<String> = entries
                    .iter()
                    .filter(|(k, _)| !keys.contains(k) && is_path_prefix(group, k) && k != group)
                    .filter_map(|(k, _)| k.strip_prefix(group)?.strip_prefix('/'))
                    .map(str::to_owned)
                    .collect();
                others.sort();
                others.dedup();
                Self::GroupExcept {
                    group: (*group).to_owned(),
                    others,
                }
            }
            _ => Self::OwnGroup,
        }
    }
}

/// The environment a shared image stands for: its SIF name without the repository part and
/// the slim suffix (`kipoi-docker_sharedpy3keras2tf1-slim` → `sharedpy3keras2tf1`).
#[must_use]
pub fn env_of_sif_name(sif_name: &str) -> &str {
    let name = sif_name.strip_suffix(SIF_EXTENSION).unwrap_or(sif_name);
    let name = name.strip_suffix(SLIM_SUFFIX).unwrap_or(name);
    let repo = INDEX_REPOSITORY
        .rsplit('/')
        .next()
        .unwrap_or(INDEX_REPOSITORY);
    match name
        .strip_prefix(repo)
        .and_then(|rest| rest.strip_prefix('_'))
    {
        Some(env) => env,
        None => name.split_once('_').map_or(name, |(_, env)| env),
    }
}

/// Title and description of a SIF's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordText {
    pub title: String,
    pub description: String,
}

impl RecordText {
    /// The record of a model group's own image.
    #[must_use]
    pub fn model_group(group: &str) -> Self {
        Self {
            title: format!("{group} singularity container"),
            description: format!(
                "This is a singularity container for models under {MODELS_URL}/{group}/"
            ),
        }
    }

    /// The record of a shared conda environment's image.
    #[must_use]
    pub fn shared_env(env: &str) -> Self {
        Self {
            title: format!("{env} singularity container"),
            description: format!(
                "Singularity container with the conda environment {ENVFILES_URL}/{env}.yml \
                 shared by several kipoi model groups"
            ),
        }
    }

    /// The record of `group`'s image that does not serve `others` (sub-models with images
    /// of their own); without `others`, the group's own record.
    #[must_use]
    pub fn group_except<S: AsRef<str>>(group: &str, others: &[S]) -> Self {
        if others.is_empty() {
            return Self::model_group(group);
        }
        let listed = others
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            title: format!("{group} singularity container except {listed}"),
            description: format!(
                "Singularity container for {group} models except {listed}, see {MODELS_URL}/{group}/"
            ),
        }
    }

    /// The text for an image of the given role; `model_group` names an own group's image.
    #[must_use]
    pub fn for_role(role: &ImageRole, model_group: &str) -> Self {
        match role {
            ImageRole::OwnGroup => Self::model_group(model_group),
            ImageRole::SharedEnv { env } => Self::shared_env(env),
            ImageRole::GroupExcept { group, others } => Self::group_except(group, others),
        }
    }

    /// The text of the SIF `sif_name`, its role decided from the index (see [`ImageRole::of`]).
    #[must_use]
    pub fn for_image<'a>(
        sif_name: &str,
        model_group: &str,
        index: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self::for_role(&ImageRole::of(sif_name, index), model_group)
    }

    /// The deposition metadata Zenodo stores (`PUT …/depositions/{id}` replaces all of it).
    #[must_use]
    pub fn to_metadata(&self, publication_date: &str) -> Value {
        json!({
            "title": self.title,
            "upload_type": UPLOAD_TYPE,
            "description": self.description,
            "creators": [{"name": CREATOR_NAME, "affiliation": CREATOR_AFFILIATION}],
            "publication_date": publication_date,
            "license": LICENSE,
        })
    }
}

/// Today's date in UTC as `YYYY-MM-DD` (a record's default `publication_date`).
#[must_use]
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // `d` is in 1..=31 and `m` in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn real_index() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("container-info");
        let index = crate::index::Index::load(&dir).unwrap();
        index
            .model_to_singularity
            .0
            .iter()
            .map(|(k, e)| (k.as_str().to_owned(), e.name.as_str().to_owned()))
            .collect()
    }

    fn pairs(index: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
        index.iter().map(|(k, n)| (k.as_str(), n.as_str()))
    }

    /// The three kinds of record, decided from the real index.
    #[test]
    fn roles_and_texts_from_the_real_index() {
        let index = real_index();
        let cases: &[(&str, &str, ImageRole, &str, &str)] = &[
            (
                "kipoi-docker_sharedpy3keras2tf1-slim",
                "Basenji",
                ImageRole::SharedEnv {
                    env: "sharedpy3keras2tf1".into(),
                },
                "sharedpy3keras2tf1 singularity container",
                "Singularity container with the conda environment https://github.com/kipoi/kipoi-containers/blob/main/envfiles/sharedpy3keras2tf1.yml shared by several kipoi model groups",
            ),
            (
                "kipoi-docker_mmsplice-slim.sif",
                "MMSplice",
                ImageRole::GroupExcept {
                    group: "MMSplice".into(),
                    others: vec!["mtsplice".into()],
                },
                "MMSplice singularity container except mtsplice",
                "Singularity container for MMSplice models except mtsplice, see https://kipoi.org/models/MMSplice/",
            ),
            (
                "kipoi-docker_deepmel-slim",
                "DeepMEL",
                ImageRole::OwnGroup,
                "DeepMEL singularity container",
                "This is a singularity container for models under https://kipoi.org/models/DeepMEL/",
            ),
            (
                "kipoi-docker_mmsplice-mtsplice-slim",
                "MMSplice/mtsplice",
                ImageRole::OwnGroup,
                "MMSplice/mtsplice singularity container",
                "This is a singularity container for models under https://kipoi.org/models/MMSplice/mtsplice/",
            ),
            (
                "kipoi-docker_brand-new-slim",
                "BrandNew",
                ImageRole::OwnGroup,
                "BrandNew singularity container",
                "This is a singularity container for models under https://kipoi.org/models/BrandNew/",
            ),
        ];
        for (sif, group, role, title, description) in cases {
            assert_eq!(&ImageRole::of(sif, pairs(&index)), role, "{sif}");
            let text = RecordText::for_image(sif, group, pairs(&index));
            assert_eq!(text.title, *title, "{sif}");
            assert_eq!(text.description, *description, "{sif}");
        }
    }

    #[test]
    fn roles_from_small_indexes() {
        let idx = [
            ("A", "img-a"),
            ("B/x", "img-shared"),
            ("C", "img-shared"),
            ("G/one", "img-g"),
            ("G/two", "img-g"),
            ("G/three/deep", "img-g3"),
            ("Gx/other", "img-gx"),
        ];
        assert_eq!(
            ImageRole::of("img-shared", idx),
            ImageRole::SharedEnv {
                env: "img-shared".into()
            }
        );
        // `Gx/other` is not below `G`; `G/three/deep` is.
        assert_eq!(
            ImageRole::of("img-g", idx),
            ImageRole::GroupExcept {
                group: "G".into(),
                others: vec!["three/deep".into()]
            }
        );
        assert_eq!(ImageRole::of("img-a", idx), ImageRole::OwnGroup);
        assert_eq!(
            RecordText::group_except::<&str>("G", &[]),
            RecordText::model_group("G")
        );
    }

    #[test]
    fn env_names() {
        assert_eq!(
            env_of_sif_name("kipoi-docker_sharedpy3keras1.2-slim.sif"),
            "sharedpy3keras1.2"
        );
        assert_eq!(env_of_sif_name("other-repo_env-slim"), "env");
        assert_eq!(env_of_sif_name("plain"), "plain");
    }

    #[test]
    fn metadata_body() {
        let md = RecordText::model_group("DeepMEL").to_metadata("2024-02-29");
        assert_eq!(
            md,
            json!({
                "title": "DeepMEL singularity container",
                "upload_type": "physicalobject",
                "description": "This is a singularity container for models under https://kipoi.org/models/DeepMEL/",
                "creators": [{"name": "Haimasree, Bhattacharya", "affiliation": "EMBL"}],
                "publication_date": "2024-02-29",
                "license": "MIT",
            })
        );
    }

    #[test]
    fn dates() {
        let cases = [
            (0, (1970, 1, 1)),
            (19_782, (2024, 2, 29)),
            (19_783, (2024, 3, 1)),
            (-1, (1969, 12, 31)),
            (10_957, (2000, 1, 1)),
        ];
        for (days, ymd) in cases {
            assert_eq!(civil_from_days(days), ymd, "{days}");
        }
        let today = today_utc();
        assert_eq!(today.len(), 10, "{today}");
    }
}
