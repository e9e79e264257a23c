//! The orchestrator's decisions against an in-memory fake of the outside world (the real
//! steps are tested end to end on the real engine, registry and emulators in pytest).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::steps::{PublishJob, Recipe, Remote, Sif, SifSource, StepError, Steps, TestOutcome};
use super::{execute, missing_secrets_in, IndexChanges, SyncOptions};
use crate::index::{parse, Index, SingularityEntry};
use crate::layout::Tree;
use crate::plan::{Action, ActionKind, Plan};

const REGISTRY: &str = "reg.example/kipoi/kipoi-docker";

#[derive(Default)]
struct Fake {
    /// Registry content by index image name.
    remote: Mutex<HashMap<String, Remote>>,
    /// Labels of local builds by image.
    built: Mutex<HashMap<String, HashMap<String, String>>>,
    calls: Mutex<Vec<String>>,
    failing_models: HashSet<String>,
    /// The next publication dies after its draft exists (a killed run).
    die_after_draft: AtomicBool,
    next_id: AtomicU64,
    /// Published records (id → entry) and open drafts.
    records: Mutex<Vec<u64>>,
    drafts: Mutex<HashSet<u64>>,
    writebacks: Mutex<Vec<IndexChanges>>,
    /// The next write-back fails (the zoo is unreachable).
    fail_write_back: AtomicBool,
    /// Identities of images we do not build (default `id-of-IMAGE`).
    identities: Mutex<HashMap<String, String>>,
    work: PathBuf,
}

impl Fake {
    fn new(work: &Path) -> Self {
        Self {
            work: work.to_path_buf(),
            next_id: AtomicU64::new(100),
            ..Self::default()
        }
    }
    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
}

fn md5_of(text: &str) -> String {
    use md5::Digest as _;
    format!("{:x}", md5::Md5::digest(text.as_bytes()))
}

impl Steps for Fake {
    fn render(&self, unit: &str, image: &str) -> Result<Recipe, StepError> {
        Ok(Recipe {
            path: self.work.join(format!("Dockerfile.{image}")),
            hash: md5_of(&format!("recipe {unit} {image}")),
        })
    }

    async fn remote(&self, image: &str) -> Result<Option<Remote>, StepError> {
        Ok(self.remote.lock().unwrap().get(image).cloned())
    }

    async fn build(
        &self,
        image: &str,
        recipe: &Recipe,
        labels: &HashMap<String, String>,
    ) -> Result<(), StepError> {
        self.log(format!("build {image}"));
        let mut labels = labels.clone();
        labels.insert(crate::docker::RECIPE_LABEL.into(), recipe.hash.clone());
        self.built.lock().unwrap().insert(image.into(), labels);
        Ok(())
    }

    async fn test_image(&self, image: &str, models: &[String]) -> TestOutcome {
        self.log(format!("test {image} {}", models.join(",")));
        match models.iter().find(|m| self.failing_models.contains(*m)) {
            Some(m) => Err(StepError {
                message: format!("model `{m}` failed its test in `{image}`"),
                log_tail: Some("RuntimeError: broken".into()),
            }),
            None => Ok(()),
        }
    }

    async fn push(&self, image: &str) -> Result<Remote, StepError> {
        self.log(format!("push {image}"));
        let labels = self
            .built
            .lock()
            .unwrap()
            .get(image)
            .cloned()
            .unwrap_or_default();
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let remote = Remote {
            reference: format!(
                "{REGISTRY}:{}",
                crate::names::split_image(image).1.unwrap_or("")
            ),
            digest: format!("sha256:{n:064}"),
            labels,
        };
        self.remote
            .lock()
            .unwrap()
            .insert(image.into(), remote.clone());
        Ok(remote)
    }

    async fn ensure_local(&self, image: &str, _digest: Option<&str>) -> Result<(), StepError> {
        self.log(format!("local {image}"));
        Ok(())
    }

    async fn image_identity(&self, image: &str, pull: bool) -> Result<String, StepError> {
        self.log(format!("identity {image} pull={pull}"));
        Ok(self
            .identities
            .lock()
            .unwrap()
            .get(image)
            .cloned()
            .unwrap_or_else(|| format!("id-of-{image}")))
    }

    async fn convert(
        &self,
        image: &str,
        file_name: &str,
        source: &SifSource,
    ) -> Result<Sif, StepError> {
        self.log(format!("convert {image}"));
        let path = self.work.join(file_name);
        std::fs::write(&path, source.digest.as_bytes()).unwrap();
        // Deterministic: the same image digest gives the same SIF.
        Ok(Sif {
            path,
            md5: md5_of(&source.digest),
            size: 1,
        })
    }

    async fn test_sif(&self, _sif: &Path, models: &[String]) -> TestOutcome {
        self.log(format!("testsif {}", models.join(",")));
        Ok(())
    }

    async fn publish(&self, job: PublishJob) -> Result<SingularityEntry, StepError> {
        self.log(format!(
            "publish {} resume={:?}",
            job.unit, job.resume_draft
        ));
        let draft = match job.resume_draft {
            Some(d) if self.drafts.lock().unwrap().contains(&d) => d,
            _ => {
                let d = self.next_id.fetch_add(1, Ordering::SeqCst);
                self.drafts.lock().unwrap().insert(d);
                d
            }
        };
        job.report.draft_created(draft);
        if self.die_after_draft.swap(false, Ordering::SeqCst) {
            return Err(StepError::new("killed during the upload"));
        }
        job.report.file_uploaded(draft, Some(&job.sif.md5));
        self.drafts.lock().unwrap().remove(&draft);
        self.records.lock().unwrap().push(draft);
        Ok(entry(
            &job.file_name.replace(".sif", ""),
            draft,
            &job.sif.md5,
        ))
    }

    fn discard_sif(&self, sif: &Path) {
        let _ = std::fs::remove_file(sif);
    }

    async fn write_back(
        &self,
        changes: &IndexChanges,
        _index: &Index,
    ) -> Result<Option<String>, StepError> {
        if self.fail_write_back.swap(false, Ordering::SeqCst) {
            return Err(StepError::new("GitHub answered 503"));
        }
        self.writebacks.lock().unwrap().push(changes.clone());
        Ok(Some("committed on `update-json`".into()))
    }
}

fn entry(name: &str, record: u64, md5: &str) -> SingularityEntry {
    SingularityEntry {
        url: crate::index::Url::new(format!(
            "https://zenodo.org/record/{record}/files/{name}.sif?download=1"
        ))
        .unwrap(),
        name: crate::index::SifName::new(name.to_owned()).unwrap(),
        md5: crate::index::Md5::new(md5.to_owned()).unwrap(),
    }
}

fn index() -> Index {
    let e = |name: &str, n: u64| serde_json::to_string(&entry(name, n, &"0".repeat(32))).unwrap();
    Index {
        model_to_docker: parse(
            "model-to-docker.json",
            r#"{"A": "kipoi/kipoi-docker:shared", "B": "kipoi/kipoi-docker:shared", "Own": "kipoi/kipoi-docker:own", "Other": "kipoi/kipoi-docker:other"}"#,
        )
        .unwrap(),
        docker_to_model: parse(
            "docker-to-model.json",
            r#"{"kipoi/kipoi-docker:shared": ["A", "B"], "kipoi/kipoi-docker:own": ["Own/x", "Own/y"], "kipoi/kipoi-docker:other": ["Other"]}"#,
        )
        .unwrap(),
        model_to_singularity: parse(
            "model-to-singularity.json",
            &format!(
                r#"{{"A": {s}, "B": {s}, "Own": {o}, "Other": {t}}}"#,
                s = e("kipoi-docker_shared-slim", 1),
                o = e("kipoi-docker_own-slim", 2),
                t = e("kipoi-docker_other-slim", 3)
            ),
        )
        .unwrap(),
    }
}

fn action(kind: ActionKind, unit: &str, image: Option<&str>, models: &[&str]) -> Action {
    Action {
        kind,
        unit: unit.into(),
        image: image.map(str::to_owned),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        try_images: if kind == ActionKind::AddGroup {
            vec!["kipoi/kipoi-docker:shared".into()]
        } else {
            Vec::new()
        },
        reason: "test".into(),
        paths: vec![format!("{unit}/model.yaml")],
    }
}

fn plan(actions: Vec<Action>) -> Plan {
    Plan {
        zoo: "zoo".into(),
        from: "a".repeat(40),
        to: "b".repeat(40),
        actions,
        skipped: Vec::new(),
    }
}

fn tree() -> Tree {
    Tree {
        files: [
            ("Own/x/model.yaml", "1"),
            ("Own/y/model.yaml", "2"),
            ("Other/model.yaml", "3"),
            ("New/model.yaml", "4"),
            ("A/model.yaml", "5"),
        ]
        .iter()
        .map(|(p, i)| ((*p).to_owned(), (*i).to_owned()))
        .collect(),
    }
}

struct Setup {
    dir: tempfile::TempDir,
    opts: SyncOptions,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ci = dir.path().join("container-info");
    std::fs::create_dir(&ci).unwrap();
    index().save(&ci).unwrap();
    let hash = dir.path().join("kipoi-model-repo-hash");
    std::fs::write(&hash, "a".repeat(40)).unwrap();
    let opts = SyncOptions {
        from: None,
        to: None,
        container_info: ci,
        hash_file: hash,
        only: Vec::new(),
        push: true,
        concurrency: 2,
        journal_dir: dir.path().join(".kipoi-sync"),
        restart: false,
    };
    Setup { dir, opts }
}

fn load(s: &Setup) -> Index {
    Index::load(&s.opts.container_info).unwrap()
}

fn hash(s: &Setup) -> String {
    std::fs::read_to_string(&s.opts.hash_file)
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn update_image_rebuilds_publishes_and_moves_the_hash() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let p = plan(vec![action(
        ActionKind::UpdateImage,
        "Own",
        Some("kipoi/kipoi-docker:own"),
        &["Own/x", "Own/y"],
    )]);
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.to_table());
    assert_eq!(
        fake.calls()[..6],
        [
            "build kipoi/kipoi-docker:own",
            "test kipoi/kipoi-docker:own Own/x,Own/y",
            "build kipoi/kipoi-docker:own-slim",
            "test kipoi/kipoi-docker:own-slim Own/x,Own/y",
            "push kipoi/kipoi-docker:own",
            "push kipoi/kipoi-docker:own-slim",
        ]
    );
    assert_eq!(fake.count("publish Own resume=None"), 1);
    let idx = load(&s);
    let e = idx.singularity_for_model("Own").unwrap();
    assert_ne!(e.md5.as_str(), "0".repeat(32));
    assert_eq!(
        idx.singularity_for_model("Other").unwrap().md5.as_str(),
        "0".repeat(32)
    );
    assert_eq!(hash(&s), "b".repeat(40));
    assert!(
        !s.opts.journal_dir.join("journal.json").exists(),
        "journal removed on success"
    );
    let wb = fake.writebacks.lock().unwrap();
    assert_eq!(wb.len(), 1);
    assert_eq!(wb[0].model_to_singularity.len(), 1);
    assert!(wb[0].model_to_docker.is_empty());
    // The SIF file is not left in the work directory.
    assert!(!s.dir.path().join("kipoi-docker_own-slim.sif").exists());
}

#[tokio::test]
async fn an_image_already_built_from_the_same_inputs_is_not_rebuilt() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let p = plan(vec![action(
        ActionKind::UpdateImage,
        "Own",
        Some("kipoi/kipoi-docker:own"),
        &["Own/x", "Own/y"],
    )]);
    execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    let published = fake.records.lock().unwrap().len();
    // The same plan again (e.g. the hash file was not kept): the registry holds images with
    // the same content and recipes, and the SIF converts to the md5 the index has.
    std::fs::write(&s.opts.hash_file, "a".repeat(40)).unwrap();
    fake.calls.lock().unwrap().clear();
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0);
    assert_eq!(fake.count("build"), 0, "{:?}", fake.calls());
    assert_eq!(fake.count("push"), 0);
    assert_eq!(
        fake.count("publish"),
        0,
        "an unchanged SIF is not uploaded again"
    );
    assert_eq!(fake.records.lock().unwrap().len(), published);
    assert!(
        report.rows[0].detail.contains("image unchanged"),
        "{}",
        report.rows[0].detail
    );
    assert!(
        report.rows[0].detail.contains("SIF unchanged"),
        "{}",
        report.rows[0].detail
    );
}

#[tokio::test]
async fn a_run_killed_after_its_draft_resumes_without_a_second_record_or_push() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    fake.die_after_draft.store(true, Ordering::SeqCst);
    let p = plan(vec![action(
        ActionKind::UpdateImage,
        "Own",
        Some("kipoi/kipoi-docker:own"),
        &["Own/x", "Own/y"],
    )]);
    let first = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(first.failed(), 1);
    assert_eq!(hash(&s), "a".repeat(40), "the hash does not move");
    assert!(
        s.opts.journal_dir.join("journal.json").exists(),
        "the journal is kept"
    );
    let draft = *fake.drafts.lock().unwrap().iter().next().unwrap();
    fake.calls.lock().unwrap().clear();
    let second = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(second.failed(), 0, "{}", second.to_table());
    let calls = fake.calls();
    assert_eq!(fake.count("push"), 0, "{calls:?}");
    assert_eq!(fake.count("build"), 0, "{calls:?}");
    assert!(
        calls.contains(&format!("publish Own resume=Some({draft})")),
        "{calls:?}"
    );
    assert_eq!(
        *fake.records.lock().unwrap(),
        vec![draft],
        "exactly one record"
    );
    assert!(fake.drafts.lock().unwrap().is_empty(), "no draft left");
    assert_eq!(hash(&s), "b".repeat(40));
}

#[tokio::test]
async fn a_failing_group_fails_alone_and_keeps_its_entries() {
    let s = setup();
    let mut fake = Fake::new(s.dir.path());
    fake.failing_models.insert("Other".into());
    let p = plan(vec![
        action(
            ActionKind::UpdateImage,
            "Other",
            Some("kipoi/kipoi-docker:other"),
            &["Other"],
        ),
        action(
            ActionKind::UpdateImage,
            "Own",
            Some("kipoi/kipoi-docker:own"),
            &["Own/x", "Own/y"],
        ),
    ]);
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 1);
    let failed = &report.rows[0];
    assert_eq!(
        (failed.unit.as_str(), failed.result.as_str()),
        ("Other", "failed")
    );
    assert_eq!(failed.log_tail.as_deref(), Some("RuntimeError: broken"));
    assert!(report.to_table().contains("| RuntimeError: broken"));
    let idx = load(&s);
    assert_eq!(
        idx.singularity_for_model("Other").unwrap().md5.as_str(),
        "0".repeat(32)
    );
    assert_ne!(
        idx.singularity_for_model("Own").unwrap().md5.as_str(),
        "0".repeat(32)
    );
    assert_eq!(
        fake.count("push kipoi/kipoi-docker:other"),
        0,
        "nothing of a failing group is pushed"
    );
    assert_eq!(hash(&s), "a".repeat(40));
    assert!(report.journal.is_some());
}

#[tokio::test]
async fn a_new_group_takes_a_shared_image_that_runs_it() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let p = plan(vec![action(ActionKind::AddGroup, "New", None, &["New"])]);
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0);
    assert_eq!(fake.count("build"), 0);
    assert_eq!(
        fake.count("publish"),
        0,
        "no second record for a shared image"
    );
    let idx = load(&s);
    assert_eq!(
        idx.image_for_model("New").unwrap().as_str(),
        "kipoi/kipoi-docker:shared"
    );
    assert_eq!(
        idx.singularity_for_model("New"),
        idx.singularity_for_model("A")
    );
    let models: Vec<&str> = idx
        .models_for_image("kipoi/kipoi-docker:shared")
        .unwrap()
        .iter()
        .map(|m| m.as_str())
        .collect();
    assert_eq!(models, vec!["A", "B", "New"]);
}

#[tokio::test]
async fn a_new_group_that_runs_in_no_shared_image_gets_its_own() {
    let s = setup();
    let p = plan(vec![action(ActionKind::AddGroup, "New", None, &["New"])]);
    // The shared image does not run it; its own image does.
    let fake = FailIn {
        inner: Fake::new(s.dir.path()),
        image: "kipoi/kipoi-docker:shared".into(),
    };
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.to_table());
    let idx = load(&s);
    assert_eq!(
        idx.image_for_model("New").unwrap().as_str(),
        "kipoi/kipoi-docker:new"
    );
    assert_eq!(
        idx.singularity_for_model("New").unwrap().name.as_str(),
        "kipoi-docker_new-slim"
    );
    assert_eq!(fake.inner.count("publish New resume=None"), 1);
}

#[tokio::test]
async fn removed_group_leaves_the_index() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let p = plan(vec![action(
        ActionKind::RemoveGroup,
        "Other",
        Some("kipoi/kipoi-docker:other"),
        &["Other"],
    )]);
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0);
    let idx = load(&s);
    assert!(idx.image_for_model("Other").is_none());
    assert!(idx.models_for_image("kipoi/kipoi-docker:other").is_none());
    assert!(idx.consistency_problems().is_empty());
    assert_eq!(
        fake.writebacks.lock().unwrap()[0].model_to_docker,
        vec![("Other".into(), None)]
    );
}

#[tokio::test]
async fn no_push_builds_and_tests_only() {
    let mut s = setup();
    s.opts.push = false;
    let fake = Fake::new(s.dir.path());
    let p = plan(vec![action(
        ActionKind::UpdateImage,
        "Own",
        Some("kipoi/kipoi-docker:own"),
        &["Own/x", "Own/y"],
    )]);
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0);
    assert_eq!(fake.count("build"), 2);
    assert_eq!(fake.count("push"), 0);
    assert_eq!(fake.count("convert"), 0);
    assert_eq!(load(&s), index());
    assert_eq!(hash(&s), "a".repeat(40));
    assert!(!report.index_written);
}

#[test]
fn secrets_are_named_before_any_work() {
    let p = plan(vec![action(
        ActionKind::UpdateImage,
        "Own",
        Some("kipoi/kipoi-docker:own"),
        &["Own/x"],
    )]);
    let none = missing_secrets_in(&p, true, true, |_| false);
    assert_eq!(
        none,
        vec![
            "`DOCKER_USERNAME`",
            "`DOCKER_PASSWORD`",
            "`ZENODO_ACCESS_TOKEN`",
            "`GITHUB_PAT or GITHUB_TOKEN`"
        ]
    );
    assert!(missing_secrets_in(&p, true, true, |_| true).is_empty());
    assert!(
        missing_secrets_in(&p, false, true, |_| false).is_empty(),
        "--no-push needs none"
    );
    let removal = plan(vec![action(ActionKind::RemoveGroup, "Other", None, &[])]);
    assert_eq!(
        missing_secrets_in(&removal, true, false, |_| false),
        Vec::<String>::new(),
        "a removal builds and publishes nothing"
    );
    let e = super::SyncError::MissingSecrets(none);
    assert!(
        e.to_string()
            .contains("set them in the environment (nothing was done)"),
        "{e}"
    );
}

/// [`Fake`] whose model tests fail inside one image.
struct FailIn {
    inner: Fake,
    image: String,
}

impl Steps for FailIn {
    fn render(&self, unit: &str, image: &str) -> Result<Recipe, StepError> {
        self.inner.render(unit, image)
    }
    async fn remote(&self, image: &str) -> Result<Option<Remote>, StepError> {
        self.inner.remote(image).await
    }
    async fn build(
        &self,
        image: &str,
        recipe: &Recipe,
        labels: &HashMap<String, String>,
    ) -> Result<(), StepError> {
        self.inner.build(image, recipe, labels).await
    }
    async fn test_image(&self, image: &str, models: &[String]) -> TestOutcome {
        if image == self.image {
            return Err(StepError::new("does not run here"));
        }
        self.inner.test_image(image, models).await
    }
    async fn push(&self, image: &str) -> Result<Remote, StepError> {
        self.inner.push(image).await
    }
    async fn ensure_local(&self, image: &str, digest: Option<&str>) -> Result<(), StepError> {
        self.inner.ensure_local(image, digest).await
    }
    async fn image_identity(&self, image: &str, pull: bool) -> Result<String, StepError> {
        self.inner.image_identity(image, pull).await
    }
    async fn convert(
        &self,
        image: &str,
        file_name: &str,
        source: &SifSource,
    ) -> Result<Sif, StepError> {
        self.inner.convert(image, file_name, source).await
    }
    async fn test_sif(&self, sif: &Path, models: &[String]) -> TestOutcome {
        self.inner.test_sif(sif, models).await
    }
    async fn publish(&self, job: PublishJob) -> Result<SingularityEntry, StepError> {
        self.inner.publish(job).await
    }
    fn discard_sif(&self, sif: &Path) {
        self.inner.discard_sif(sif);
    }
    async fn write_back(
        &self,
        changes: &IndexChanges,
        index: &Index,
    ) -> Result<Option<String>, StepError> {
        self.inner.write_back(changes, index).await
    }
}

// ------------------------------------------------------------------------------ release

fn release_item(
    image: &str,
    slim: bool,
    parents: &[&str],
    external: &[&str],
    keys: &[&str],
    models: &[&str],
) -> super::release::ReleaseItem {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    super::release::ReleaseItem {
        image: image.into(),
        with_slim: slim,
        parents: strings(parents),
        external: strings(external),
        keys: strings(keys),
        models: strings(models),
        test_models: strings(models),
        level: parents.len(),
    }
}

const BASE: &str = "kipoi/kipoi-docker:base";

fn release_items() -> Vec<Vec<super::release::ReleaseItem>> {
    let own = release_item(
        "kipoi/kipoi-docker:own",
        true,
        &[BASE],
        &["debian"],
        &["Own"],
        &["Own/x", "Own/y"],
    );
    let shared = release_item(
        "kipoi/kipoi-docker:shared",
        true,
        &[BASE],
        &[],
        &["A", "B"],
        &["A", "B"],
    );
    let base = release_item(BASE, false, &[], &["miniconda"], &[], &[]);
    vec![vec![base], vec![own, shared]]
}

fn release_opts(
    s: &Setup,
    only: &[&str],
    fragment: Option<PathBuf>,
) -> super::release::ReleaseOptions {
    super::release::ReleaseOptions {
        only: only.iter().map(|o| (*o).to_owned()).collect(),
        push: true,
        concurrency: 2,
        journal_dir: s.dir.path().join(".kipoi-release"),
        restart: false,
        container_info: s.opts.container_info.clone(),
        fragment,
    }
}

async fn release(
    s: &Setup,
    fake: &Fake,
    only: &[&str],
    fragment: Option<PathBuf>,
) -> super::SyncReport {
    let opts = release_opts(s, only, fragment);
    let levels = super::release::plan_release(release_items(), &opts.only).unwrap();
    super::release::run(&opts, levels, load(s), &"a".repeat(40), fake)
        .await
        .unwrap()
}

fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no `{call}` in {calls:#?}"))
}

#[tokio::test]
async fn a_release_rebuilds_in_order_and_a_second_one_publishes_nothing() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let report = release(&s, &fake, &[], None).await;
    assert_eq!(report.failed(), 0, "{:#?}", report.rows);
    assert_eq!(report.rows.len(), 3);
    let calls = fake.calls();
    let base_push = position(&calls, &format!("push {BASE}"));
    for image in ["kipoi/kipoi-docker:own", "kipoi/kipoi-docker:shared"] {
        let local = position(&calls, &format!("local {BASE}"));
        assert!(base_push < local && local < position(&calls, &format!("build {image}")));
        assert!(
            position(&calls, &format!("build {image}"))
                < position(&calls, &format!("build {image}-slim"))
        );
    }
    // The base has no slim and no SIF; the two others get new versions of their records.
    assert_eq!(fake.count(&format!("build {BASE}-slim")), 0);
    assert_eq!(fake.records.lock().unwrap().len(), 2);
    let index = load(&s);
    let own = &index.model_to_singularity.0["Own"];
    assert_ne!(
        own.md5.as_str(),
        "0".repeat(32),
        "the new SIF is in the index"
    );
    assert_eq!(
        index.model_to_singularity.0["A"],
        index.model_to_singularity.0["B"]
    );
    assert_eq!(fake.writebacks.lock().unwrap().len(), 1);
    assert!(
        report.journal.is_none(),
        "a successful release leaves nothing to resume"
    );

    // Nothing changed: nothing is built, pushed or published, the index is untouched.
    let before = fake.calls().len();
    let again = release(&s, &fake, &[], None).await;
    assert_eq!(again.failed(), 0, "{:#?}", again.rows);
    let later: Vec<String> = fake.calls()[before..].to_vec();
    assert!(
        later.iter().all(|c| !c.starts_with("build")
            && !c.starts_with("push")
            && !c.starts_with("publish")),
        "{later:#?}"
    );
    assert_eq!(fake.records.lock().unwrap().len(), 2);
    assert!(!again.index_written);
    assert_eq!(load(&s), index);
}

#[tokio::test]
async fn a_new_upstream_base_rebuilds_everything_built_from_it() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    release(&s, &fake, &[], None).await;
    let before = fake.calls().len();
    fake.identities
        .lock()
        .unwrap()
        .insert("miniconda".into(), "sha256:new".into());
    let report = release(&s, &fake, &[], None).await;
    assert_eq!(report.failed(), 0, "{:#?}", report.rows);
    let later: Vec<String> = fake.calls()[before..].to_vec();
    for image in [BASE, "kipoi/kipoi-docker:own", "kipoi/kipoi-docker:shared"] {
        assert!(
            later.contains(&format!("build {image}")),
            "{image} rebuilt: {later:#?}"
        );
    }
    assert_eq!(
        fake.records.lock().unwrap().len(),
        4,
        "a new version for each SIF"
    );
}

#[tokio::test]
async fn shards_write_fragments_and_their_merge_leaves_failed_images_alone() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let before = load(&s);
    let frags = s.dir.path().join("fragments");
    std::fs::create_dir(&frags).unwrap();
    let base = release(&s, &fake, &[BASE], Some(frags.join("base.json"))).await;
    assert_eq!(base.failed(), 0);
    assert_eq!(load(&s), before, "a shard never writes the index");
    // The shared image's shard fails (its model test); the own image's succeeds.
    let failing = FailIn {
        inner: Fake::new(s.dir.path()),
        image: "kipoi/kipoi-docker:shared".into(),
    };
    *failing.inner.remote.lock().unwrap() = fake.remote.lock().unwrap().clone();
    let opts = release_opts(
        &s,
        &["kipoi/kipoi-docker:shared"],
        Some(frags.join("shared.json")),
    );
    let levels = super::release::plan_release(release_items(), &opts.only).unwrap();
    let shared = super::release::run(&opts, levels, load(&s), &"a".repeat(40), &failing)
        .await
        .unwrap();
    assert_eq!(shared.failed(), 1);
    let own = release(
        &s,
        &fake,
        &["kipoi/kipoi-docker:own-slim"],
        Some(frags.join("own.json")),
    )
    .await;
    assert_eq!(own.failed(), 0);
    assert!(
        fake.calls()
            .contains(&"local kipoi/kipoi-docker:base".to_owned()),
        "the parent is pulled"
    );

    let fragments = super::release::read_fragments(&frags).unwrap();
    assert_eq!(fragments.len(), 3);
    let (changes, rows) = super::release::merged_changes(fragments);
    assert_eq!(rows.iter().filter(|r| r.result != "ok").count(), 1);
    let mut merged = before.clone();
    super::apply::apply(&mut merged, &changes).unwrap();
    assert_ne!(
        merged.model_to_singularity.0["Own"],
        before.model_to_singularity.0["Own"]
    );
    assert_eq!(
        merged.model_to_singularity.0["A"], before.model_to_singularity.0["A"],
        "the failed image keeps its entries"
    );
    assert_eq!(merged.model_to_docker, before.model_to_docker);
}

#[tokio::test]
async fn a_no_push_release_builds_children_from_the_parent_it_just_built() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    release(&s, &fake, &[], None).await;
    fake.identities
        .lock()
        .unwrap()
        .insert("miniconda".into(), "sha256:new".into());
    let before = fake.calls().len();
    let mut opts = release_opts(&s, &[], None);
    opts.push = false;
    let levels = super::release::plan_release(release_items(), &opts.only).unwrap();
    let report = super::release::run(&opts, levels, load(&s), &"a".repeat(40), &fake)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{:#?}", report.rows);
    let later: Vec<String> = fake.calls()[before..].to_vec();
    for image in [BASE, "kipoi/kipoi-docker:own", "kipoi/kipoi-docker:shared"] {
        assert!(
            later.contains(&format!("build {image}")),
            "{image}: {later:#?}"
        );
    }
    // The children use the base built here: never replaced by the registry's older one.
    assert!(!later.contains(&format!("local {BASE}")), "{later:#?}");
    assert!(
        later.contains(&format!("identity {BASE} pull=false")),
        "{later:#?}"
    );
    assert!(
        later
            .iter()
            .all(|c| !c.starts_with("push") && !c.starts_with("publish")),
        "{later:#?}"
    );
}

/// A sync of one updated group whose write-back to the zoo fails: its results are in the
/// local index, the write-back is pending in the journal, the hash has not moved.
async fn update_whose_write_back_fails() -> (Setup, Fake, Plan) {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    let p = plan(vec![action(
        ActionKind::UpdateImage,
        "Own",
        Some("kipoi/kipoi-docker:own"),
        &["Own/x", "Own/y"],
    )]);
    fake.fail_write_back.store(true, Ordering::SeqCst);
    let err = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap_err();
    assert!(matches!(err, super::SyncError::WriteBack(_)), "{err}");
    (s, fake, p)
}

#[tokio::test]
async fn a_failed_write_back_is_done_by_the_next_run() {
    let (s, fake, p) = update_whose_write_back_fails().await;
    let after_first = load(&s);
    assert_ne!(
        after_first,
        index(),
        "the verified results are in the local index"
    );
    assert_eq!(hash(&s), "a".repeat(40), "the hash does not move");
    assert!(fake.writebacks.lock().unwrap().is_empty());

    // The re-run finds nothing new for the index, and still writes the zoo's copies.
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert!(!report.index_written);
    let written = fake.writebacks.lock().unwrap().clone();
    assert_eq!(written.len(), 1, "{written:#?}");
    assert!(written[0]
        .model_to_singularity
        .iter()
        .any(|(k, e)| k == "Own" && e.is_some()));
    assert_eq!(fake.count("publish"), 1, "nothing published twice");
    assert!(report.hash_moved);
    assert_eq!(load(&s), after_first);
}

#[tokio::test]
async fn restart_keeps_a_failed_write_back_and_the_hash_waits_for_it() {
    let (s, fake, p) = update_whose_write_back_fails().await;
    let after_first = load(&s);
    assert_ne!(after_first, index(), "the local index has the new entries");

    // --restart, and the zoo is still unreachable: the write-back is attempted again (the
    // local index has nothing new for it), and the hash stays.
    let restart = SyncOptions {
        restart: true,
        ..s.opts.clone()
    };
    fake.fail_write_back.store(true, Ordering::SeqCst);
    let err = execute(&restart, &p, &tree(), load(&s), &fake)
        .await
        .unwrap_err();
    assert!(matches!(err, super::SyncError::WriteBack(_)), "{err}");
    assert!(
        !fake.fail_write_back.load(Ordering::SeqCst),
        "the write-back was attempted"
    );
    assert_eq!(hash(&s), "a".repeat(40), "the hash does not move");
    assert!(fake.writebacks.lock().unwrap().is_empty());

    // --restart again, the zoo answers: the entries reach the zoo, then the hash moves.
    let report = execute(&restart, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    let written = fake.writebacks.lock().unwrap().clone();
    assert_eq!(written.len(), 1, "{written:#?}");
    assert!(written[0]
        .model_to_singularity
        .iter()
        .any(|(k, e)| k == "Own" && e.is_some()));
    assert!(report.hash_moved);
    assert_eq!(hash(&s), "b".repeat(40));
    assert_eq!(load(&s), after_first);
    assert!(!s.opts.journal_dir.join("journal.json").exists());
}

#[tokio::test]
async fn a_no_push_run_leaves_a_pending_write_back_for_a_run_that_pushes() {
    let (s, fake, p) = update_whose_write_back_fails().await;

    // --no-push promises that nothing leaves the machine: not even the pending write-back.
    fake.fail_write_back.store(true, Ordering::SeqCst);
    let no_push = SyncOptions {
        push: false,
        ..s.opts.clone()
    };
    let report = execute(&no_push, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert!(
        fake.fail_write_back.load(Ordering::SeqCst),
        "--no-push attempted the zoo write-back"
    );
    assert!(report.write_back.is_none() && !report.hash_moved);
    assert_eq!(hash(&s), "a".repeat(40));

    // The next run that pushes still does it, then moves the hash.
    fake.fail_write_back.store(false, Ordering::SeqCst);
    let report = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap();
    assert_eq!(fake.writebacks.lock().unwrap().len(), 1);
    assert!(report.hash_moved);
}

#[tokio::test]
async fn an_empty_plan_does_a_pending_write_back_before_the_hash_moves() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    // A removed group whose write-back fails: the next plan is empty (its keys are no
    // longer in the local index), yet the zoo still lists them.
    let p = plan(vec![action(
        ActionKind::RemoveGroup,
        "Other",
        Some("kipoi/kipoi-docker:other"),
        &["Other"],
    )]);
    fake.fail_write_back.store(true, Ordering::SeqCst);
    let err = execute(&s.opts, &p, &tree(), load(&s), &fake)
        .await
        .unwrap_err();
    assert!(matches!(err, super::SyncError::WriteBack(_)), "{err}");
    assert!(load(&s).image_for_model("Other").is_none());

    let empty = plan(Vec::new());
    let idx = load(&s);
    let write = |changes: IndexChanges| {
        let (fake, idx) = (&fake, &idx);
        async move { fake.write_back(&changes, idx).await }
    };
    // The zoo still unreachable: attempted again, and the hash stays.
    fake.fail_write_back.store(true, Ordering::SeqCst);
    let err = super::nothing_to_do(&s.opts, &empty, &idx, write)
        .await
        .unwrap_err();
    assert!(matches!(err, super::SyncError::WriteBack(_)), "{err}");
    assert!(!fake.fail_write_back.load(Ordering::SeqCst), "attempted");
    assert_eq!(hash(&s), "a".repeat(40), "the hash does not move");
    // Even after --restart.
    let restart = SyncOptions {
        restart: true,
        ..s.opts.clone()
    };
    fake.fail_write_back.store(true, Ordering::SeqCst);
    assert!(super::nothing_to_do(&restart, &empty, &idx, write)
        .await
        .is_err());
    assert_eq!(hash(&s), "a".repeat(40), "the hash does not move");

    // The zoo answers: the removal reaches it, then the hash moves.
    let report = super::nothing_to_do(&s.opts, &empty, &idx, write)
        .await
        .unwrap();
    let written = fake.writebacks.lock().unwrap().clone();
    assert_eq!(written.len(), 1, "{written:#?}");
    assert_eq!(written[0].model_to_docker, vec![("Other".into(), None)]);
    assert!(report.hash_moved);
    assert_eq!(hash(&s), "b".repeat(40));
    assert!(
        !s.opts.journal_dir.exists(),
        "nothing left to do: journal gone"
    );
}

#[tokio::test]
async fn a_restarted_release_does_the_write_back_its_journal_kept() {
    let s = setup();
    let fake = Fake::new(s.dir.path());
    fake.fail_write_back.store(true, Ordering::SeqCst);
    let opts = release_opts(&s, &[], None);
    let levels = super::release::plan_release(release_items(), &opts.only).unwrap();
    let err = super::release::run(&opts, levels, load(&s), &"a".repeat(40), &fake)
        .await
        .unwrap_err();
    assert!(matches!(err, super::SyncError::WriteBack(_)), "{err}");
    let opts = super::release::ReleaseOptions {
        restart: true,
        ..release_opts(&s, &[], None)
    };
    let levels = super::release::plan_release(release_items(), &opts.only).unwrap();
    let report = super::release::run(&opts, levels, load(&s), &"a".repeat(40), &fake)
        .await
        .unwrap();
    assert!(!report.index_written, "nothing new for the local index");
    let written = fake.writebacks.lock().unwrap().clone();
    assert_eq!(written.len(), 1, "{written:#?}");
    assert!(written[0]
        .model_to_singularity
        .iter()
        .any(|(k, e)| k == "Own" && e.is_some()));
}

// ------------------------------------------------------------------------ work directories

/// Run in a child process of this test binary with `SINGULARITY_PULL_FOLDER` set (the
/// environment is the process's, and other tests run beside this one): a sync and a release
/// build their SIFs in their journal's `sif/`, never in the folder of the user's downloaded
/// SIFs.
#[test]
fn sifs_are_built_in_the_journal_never_in_the_pull_folder() {
    const CHILD: &str = "KIPOI_CONTAINERS_TEST_PULL_FOLDER";
    if let Some(pull) = std::env::var_os(CHILD) {
        assert_eq!(
            std::env::var_os("SINGULARITY_PULL_FOLDER"),
            Some(pull.clone())
        );
        for journal in [".kipoi-sync", super::DEFAULT_RELEASE_JOURNAL, "/j/x"] {
            let args = super::SyncArgs {
                journal: Some(PathBuf::from(journal)),
                ..super::SyncArgs::default()
            };
            let settings = args.engine_settings(&args.options(), None);
            assert_eq!(settings.work_dir, Path::new(journal).join("sif"));
        }
        // The default journal too.
        let args = super::SyncArgs::default();
        let settings = args.engine_settings(&args.options(), None);
        assert_eq!(
            settings.work_dir,
            Path::new(crate::config::DEFAULT_JOURNAL).join("sif")
        );
        // Downloads still go there (upstream's meaning).
        assert_eq!(
            crate::config::sif_folder(None, Path::new(".")),
            PathBuf::from(&pull)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pull = dir.path().join("pull");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sync::tests::sifs_are_built_in_the_journal_never_in_the_pull_folder",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("SINGULARITY_PULL_FOLDER", &pull)
        .env(CHILD, &pull)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
}

/// A local zoo with one commit; returns it and the commit.
async fn git_zoo(dir: &Path) -> (crate::zoo::LocalZoo, String) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.org",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    std::fs::create_dir_all(dir.join("Own/x")).unwrap();
    std::fs::write(dir.join("Own/x/model.yaml"), "type: keras\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "zoo"]);
    let sha = git(&["rev-parse", "HEAD"]);
    (crate::zoo::LocalZoo::open(dir).await.unwrap(), sha)
}

#[tokio::test]
async fn a_zoo_export_that_dies_half_way_is_left_marked_and_goes_with_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (zoo, sha) = git_zoo(&dir.path().join("zoo")).await;
    let journal_dir = dir.path().join(".kipoi-sync");
    let journal = super::journal::Journal::open(&journal_dir, false).unwrap();
    // An export that fails after it started (an unknown commit): no `zoo-<commit>` is made,
    // and what it left is marked as ours.
    let missing = "f".repeat(40);
    super::export_test_zoo(&zoo, &missing, &journal_dir)
        .await
        .unwrap_err();
    assert!(!journal_dir.join(format!("zoo-{}", &missing[..12])).exists());
    let left: Vec<PathBuf> = std::fs::read_dir(&journal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(super::journal::is_workdir(&left[0]), "{left:?}");
    // A completed run removes it with the journal.
    let made = super::export_test_zoo(&zoo, &sha, &journal_dir)
        .await
        .unwrap();
    journal.finish().unwrap();
    assert!(!left[0].exists() && !made.exists());
}

#[tokio::test]
async fn a_zoo_folder_the_run_did_not_make_is_refused_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (zoo, sha) = git_zoo(&dir.path().join("zoo")).await;
    let journal = dir.path().join(".kipoi-sync");
    // The user's folder of the same name: not ours (no marker).
    let users = journal.join(format!("zoo-{}", &sha[..12]));
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("notes.txt"), b"the user's").unwrap();
    let err = super::export_test_zoo(&zoo, &sha, &journal)
        .await
        .unwrap_err();
    let text = crate::errchain::chain(&err);
    assert!(
        matches!(
            err,
            super::SyncError::Journal(super::journal::JournalError::NotOurs { .. })
        ),
        "{text}"
    );
    assert!(text.contains(&users.display().to_string()), "{text}");
    assert!(
        text.contains("move it away") && text.contains("--journal"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(users.join("notes.txt")).unwrap(),
        b"the user's",
        "kept as it was"
    );
    assert!(!users.join("Own").exists(), "nothing exported into it");

    // Moved away: the export is made (a stale partial of ours is replaced), and reused.
    std::fs::rename(&users, dir.path().join("moved")).unwrap();
    let stale = journal.join(format!(
        ".zoo-{}.partial-{}",
        &sha[..12],
        std::process::id()
    ));
    std::fs::create_dir_all(stale.join("half")).unwrap();
    let made = super::export_test_zoo(&zoo, &sha, &journal).await.unwrap();
    assert_eq!(made, users);
    assert!(made.join("Own/x/model.yaml").is_file());
    assert!(super::journal::is_workdir(&made));
    assert!(!stale.exists());
    std::fs::write(made.join("Own/x/extra"), b"kept").unwrap();
    let again = super::export_test_zoo(&zoo, &sha, &journal).await.unwrap();
    assert_eq!(again, made);
    assert!(again.join("Own/x/extra").exists(), "the export is reused");
}
