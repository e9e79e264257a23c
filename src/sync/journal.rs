//! The sync's journal: every completed step of every unit, recorded atomically before the
//! next step starts, so a run killed at any point (even `kill -9` mid-upload) resumes where
//! it stopped — no second push of a pushed image, no second Zenodo record, no draft left.
//!
//! Records are keyed by the unit and what it was built from (the content hash of its zoo
//! folder and the hashes of its two recipes): a later run reuses a record only for exactly
//! the same inputs, whatever zoo commit it syncs to. The file is JSON
//! (`<dir>/journal.json`), rewritten whole through [`crate::fsutil::write_atomic`] on each
//! step (it stays small: a few lines per unit).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The journal's file name inside its directory.
pub const JOURNAL_FILE: &str = "journal.json";
/// A file in a work directory a run made beside the journal (a zoo export, the SIFs'
/// directory): [`Journal::finish`] removes such directories, and only those.
pub const WORKDIR_MARKER: &str = ".kipoi-containers-workdir";

/// Marks `dir` (which this run made) as a work directory for [`Journal::finish`].
pub fn mark_workdir(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join(WORKDIR_MARKER),
        b"made by kipoi-containers; removed when the run completes\n",
    )
}

/// Whether `dir` is a work directory a run of this tool made (it carries [`WORKDIR_MARKER`]).
#[must_use]
pub fn is_workdir(dir: &Path) -> bool {
    dir.join(WORKDIR_MARKER).is_file()
}

/// Refuses `path` when something is there that is not a work directory of ours: this tool
/// neither writes in nor removes what it did not make.
fn refuse_unless_ours(path: &Path) -> Result<(), JournalError> {
    if path.symlink_metadata().is_ok() && !is_workdir(path) {
        return Err(JournalError::NotOurs {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Makes `dir` a work directory of this run beside the journal, empty (see
/// [`begin_workdir`]); kept as it is when it is one already (an earlier run's, resumed).
pub fn prepare_workdir(dir: &Path) -> Result<(), JournalError> {
    if let Some(partial) = begin_workdir(dir)? {
        complete_workdir(&partial, dir)?;
    }
    Ok(())
}

/// Starts making the work directory `dir`: `None` when it is one of ours already (nothing
/// to make); else a new directory beside it, already marked (one a run left half-made when
/// it died goes with [`Journal::finish`]), to fill and then hand to [`complete_workdir`],
/// whose rename is what makes `dir`, so `dir` is never half made. Anything at `dir` that
/// this tool did not make (a directory of the user's, a file) is refused, never used.
pub fn begin_workdir(dir: &Path) -> Result<Option<PathBuf>, JournalError> {
    if is_workdir(dir) {
        return Ok(None);
    }
    refuse_unless_ours(dir)?;
    let err = |source| JournalError::WorkDir {
        path: dir.to_path_buf(),
        source,
    };
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map_or_else(|| "workdir".into(), |n| n.to_string_lossy().into_owned());
    std::fs::create_dir_all(parent).map_err(err)?;
    // Named after this process: one left there is of a run of ours that died (its id reused).
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if partial.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&partial).map_err(err)?;
    }
    std::fs::create_dir(&partial).map_err(err)?;
    mark_workdir(&partial).map_err(err)?;
    Ok(Some(partial))
}

/// Makes `dir` from the `partial` [`begin_workdir`] gave, once filled.
pub fn complete_workdir(partial: &Path, dir: &Path) -> Result<(), JournalError> {
    if let Err(e) = std::fs::rename(partial, dir) {
        let _ = std::fs::remove_dir_all(partial);
        // Made by a run beside this one in the meantime: as good as ours.
        if is_workdir(dir) {
            return Ok(());
        }
        refuse_unless_ours(dir)?;
        return Err(JournalError::WorkDir {
            path: dir.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

/// Format version written into the file; another version is not read (and reported).
const VERSION: u32 = 1;

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("could not read the sync journal `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the sync journal `{}` is not valid ({detail}); fix it or start over with --restart", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("could not create the journal directory `{}`", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::fsutil::AtomicWriteError),
    #[error(
        "`{}` is there and this tool did not make it (it has no `{WORKDIR_MARKER}` file): it is \
         neither used nor removed; move it away, or pass another --journal",
        path.display()
    )]
    NotOurs { path: PathBuf },
    #[error("could not make the work directory `{}`", path.display())]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a unit's image was built from. Equal keys mean equal images.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitKey {
    pub unit: String,
    pub action: String,
    /// The content hash of the unit's zoo folder at the target commit.
    pub content: String,
    /// The recipe hashes (full, slim); empty for actions that build nothing.
    pub recipes: Vec<String>,
}

/// One pushed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// `registry/repository:tag` as pushed.
    pub reference: String,
    pub digest: String,
}

/// The completed steps of one unit, in the order they happen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// The image the unit ended up in (its own, or a shared one that runs every model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its full and slim images were pushed (or found in the registry, already built from
    /// the same inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<Pushed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slim: Option<Pushed>,
    /// The SIF converted from the slim image: its md5 (the file itself is in the work dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sif_md5: Option<String>,
    /// The SIF passed its model tests.
    #[serde(default)]
    pub sif_tested: bool,
    /// A Zenodo draft exists for this unit's SIF (created, or a new version opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<u64>,
    /// The SIF's file is in that draft, with this md5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_md5: Option<String>,
    /// The published index entry (`url`, `name`, `md5`), or the unchanged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sif_entry: Option<crate::index::SingularityEntry>,
    /// Every step is done: the unit's result can go into the index.
    #[serde(default)]
    pub done: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    units: Vec<Entry>,
    /// Index changes verified and applied locally whose write-back to the zoo has not
    /// succeeded yet (the next run does it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_write_back: Option<super::IndexChanges>,
}

/// What the journal holds.
#[derive(Debug, Default)]
struct State {
    units: BTreeMap<UnitKey, UnitRecord>,
    pending_write_back: Option<super::IndexChanges>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: UnitKey,
    record: UnitRecord,
}

/// The journal of a sync, shared by the units running concurrently.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    state: Mutex<State>,
}

impl Journal {
    /// Opens the journal in `dir` (created when missing). With `restart`, the steps an
    /// existing journal recorded are discarded; a write-back to the zoo it holds is kept (the
    /// local index already has those entries: no later run would find them to write, and the
    /// zoo commit must not move before they are in the zoo).
    pub fn open(dir: &Path, restart: bool) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(JOURNAL_FILE);
        let mut units = BTreeMap::new();
        let mut pending_write_back = None;
        if restart {
            pending_write_back = Self::pending_of_discarded(&path)?;
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let file: File =
                        serde_json::from_slice(&bytes).map_err(|e| JournalError::Invalid {
                            path: path.clone(),
                            detail: e.to_string(),
                        })?;
                    if file.version != VERSION {
                        return Err(JournalError::Invalid {
                            path,
                            detail: format!(
                                "version {} (this tool writes version {VERSION})",
                                file.version
                            ),
                        });
                    }
                    for entry in file.units {
                        units.insert(entry.key, entry.record);
                    }
                    pending_write_back = file.pending_write_back;
                    if pending_write_back.is_some() {
                        log::info!(
                            "the journal `{}` holds a write-back to the zoo that did not succeed: it is retried",
                            path.display()
                        );
                    }
                    if !units.is_empty() {
                        log::info!(
                            "resuming from the journal `{}` ({} unit(s) recorded)",
                            path.display(),
                            units.len()
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(JournalError::Read { path, source }),
            }
        }
        let journal = Self {
            path,
            state: Mutex::new(State {
                units,
                pending_write_back,
            }),
        };
        journal.save()?;
        Ok(journal)
    }

    /// The write-back to the zoo held by the journal at `path`, which `--restart` discards
    /// otherwise. Read whatever the file's version (only that field); a file that cannot be
    /// parsed is discarded whole, with a warning.
    fn pending_of_discarded(path: &Path) -> Result<Option<super::IndexChanges>, JournalError> {
        #[derive(Deserialize)]
        struct Pending {
            #[serde(default)]
            pending_write_back: Option<super::IndexChanges>,
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(JournalError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        match serde_json::from_slice::<Pending>(&bytes) {
            Ok(Pending {
                pending_write_back: Some(pending),
            }) => {
                log::info!(
                    "--restart: discarding the steps recorded in `{}`; the write-back to the zoo \
                     it holds (which did not succeed) is kept and done by this run",
                    path.display()
                );
                Ok(Some(pending))
            }
            Ok(Pending {
                pending_write_back: None,
            }) => {
                log::info!("--restart: discarding the journal `{}`", path.display());
                Ok(None)
            }
            Err(e) => {
                log::warn!(
                    "--restart: discarding the journal `{}`, which is not valid ({e}); a \
                     write-back to the zoo it may have held is lost",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// Where the journal lives.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record of `key` (empty when nothing was recorded for exactly these inputs).
    #[must_use]
    pub fn get(&self, key: &UnitKey) -> UnitRecord {
        self.lock().units.get(key).cloned().unwrap_or_default()
    }

    /// The write-back an earlier run could not complete, if any.
    #[must_use]
    pub fn pending_write_back(&self) -> Option<super::IndexChanges> {
        self.lock().pending_write_back.clone()
    }

    /// Records (or, with `None`, clears) the write-back to do; durable when this returns.
    pub fn set_pending_write_back(
        &self,
        changes: Option<super::IndexChanges>,
    ) -> Result<(), JournalError> {
        let mut state = self.lock();
        state.pending_write_back = changes;
        crate::fsutil::write_atomic(&self.path, &Self::serialize(&state))?;
        Ok(())
    }

    /// Applies `change` to `key`'s record and writes the journal (atomically) before
    /// returning: once this returns, the step is durable.
    pub fn record(
        &self,
        key: &UnitKey,
        change: impl FnOnce(&mut UnitRecord),
    ) -> Result<UnitRecord, JournalError> {
        // Written under the lock: concurrent units' writes land in the order of their
        // changes, so the file never goes back to an older state.
        let mut state = self.lock();
        let record = state.units.entry(key.clone()).or_default();
        change(record);
        let updated = record.clone();
        crate::fsutil::write_atomic(&self.path, &Self::serialize(&state))?;
        Ok(updated)
    }

    /// Writes the current state.
    pub fn save(&self) -> Result<(), JournalError> {
        let state = self.lock();
        crate::fsutil::write_atomic(&self.path, &Self::serialize(&state))?;
        Ok(())
    }

    /// [`Self::finish`] when the journal records nothing (no unit, no pending write-back).
    pub fn finish_if_empty(self) -> Result<(), JournalError> {
        let empty = {
            let state = self.lock();
            state.units.is_empty() && state.pending_write_back.is_none()
        };
        if empty {
            self.finish()
        } else {
            Ok(())
        }
    }

    /// Removes the journal: the sync completed and its results are in the index. The work
    /// directories runs made beside it (marked with [`WORKDIR_MARKER`]: the zoo exports model
    /// tests read, the SIFs' directory) go too, and the directory when nothing else is in it.
    /// Nothing unmarked is touched.
    pub fn finish(self) -> Result<(), JournalError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(JournalError::Read {
                    path: self.path,
                    source,
                })
            }
        }
        let Some(dir) = self.path.parent() else {
            return Ok(());
        };
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let ours = entry.file_type().is_ok_and(|t| t.is_dir())
                    && entry.path().join(WORKDIR_MARKER).is_file();
                if ours {
                    if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                        log::warn!("could not remove `{}`: {e}", entry.path().display());
                    }
                }
            }
        }
        // Only when empty: a directory the user also keeps other things in stays.
        let _ = std::fs::remove_dir(dir);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn serialize(state: &State) -> Vec<u8> {
        let file = File {
            version: VERSION,
            units: state
                .units
                .iter()
                .map(|(key, record)| Entry {
                    key: key.clone(),
                    record: record.clone(),
                })
                .collect(),
            pending_write_back: state.pending_write_back.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(unit: &str, content: &str) -> UnitKey {
        UnitKey {
            unit: unit.into(),
            action: "update-image".into(),
            content: content.into(),
            recipes: vec!["r1".into(), "r2".into()],
        }
    }

    #[test]
    fn steps_survive_a_restart_of_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), false).unwrap();
        j.record(&key("A", "c1"), |r| {
            r.full = Some(Pushed {
                reference: "r/a:a".into(),
                digest: "sha256:1".into(),
            });
        })
        .unwrap();
        j.record(&key("A", "c1"), |r| r.draft = Some(42)).unwrap();
        drop(j); // "killed"
        let j = Journal::open(dir.path(), false).unwrap();
        let r = j.get(&key("A", "c1"));
        assert_eq!(r.full.unwrap().digest, "sha256:1");
        assert_eq!(r.draft, Some(42));
        // Other inputs: nothing recorded.
        assert_eq!(j.get(&key("A", "c2")), UnitRecord::default());
        // --restart forgets.
        let j = Journal::open(dir.path(), true).unwrap();
        assert_eq!(j.get(&key("A", "c1")), UnitRecord::default());
    }

    #[test]
    fn restart_discards_the_steps_but_keeps_a_pending_write_back() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), false).unwrap();
        j.record(&key("A", "c1"), |r| r.draft = Some(42)).unwrap();
        let mut changes = crate::sync::IndexChanges::default();
        changes
            .model_to_docker
            .push(("A".into(), Some("kipoi/kipoi-docker:a".into())));
        j.set_pending_write_back(Some(changes.clone())).unwrap();
        drop(j);
        let j = Journal::open(dir.path(), true).unwrap();
        assert_eq!(j.get(&key("A", "c1")), UnitRecord::default());
        assert_eq!(j.pending_write_back(), Some(changes.clone()));
        drop(j);
        // Durable: a run killed after the restart still has it.
        let j = Journal::open(dir.path(), false).unwrap();
        assert_eq!(j.pending_write_back(), Some(changes));
        // Not emptied by a finish-if-empty: it still has work to do.
        j.finish_if_empty().unwrap();
        assert!(dir.path().join(JOURNAL_FILE).exists());
    }

    #[test]
    fn a_corrupt_journal_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), b"{not json").unwrap();
        let e = Journal::open(dir.path(), false).unwrap_err();
        assert!(e.to_string().contains("--restart"), "{e}");
        assert!(Journal::open(dir.path(), true).is_ok());
    }

    #[test]
    fn a_work_dir_is_made_marked_or_reused_and_never_one_of_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let sif = dir.path().join(".kipoi-sync/sif");
        prepare_workdir(&sif).unwrap();
        assert!(is_workdir(&sif));
        std::fs::write(sif.join("x.sif"), b"ours").unwrap();
        // An earlier run's, resumed: kept as it is.
        prepare_workdir(&sif).unwrap();
        assert_eq!(std::fs::read(sif.join("x.sif")).unwrap(), b"ours");
        // Only the directory itself is left: no temporary one beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path().join(".kipoi-sync"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["sif".to_owned()]);
        // The user's directory (or file) of that name: refused, untouched.
        for users in ["users-dir", "users-file"] {
            let path = dir.path().join(users).join("sif");
            if users == "users-dir" {
                std::fs::create_dir_all(&path).unwrap();
                std::fs::write(path.join("x.sif"), b"the user's").unwrap();
            } else {
                std::fs::create_dir_all(dir.path().join(users)).unwrap();
                std::fs::write(&path, b"the user's").unwrap();
            }
            let e = prepare_workdir(&path).unwrap_err();
            assert!(matches!(e, JournalError::NotOurs { .. }), "{e}");
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("--journal"), "{text}");
            assert!(!path.join(WORKDIR_MARKER).exists());
        }
        assert_eq!(
            std::fs::read(dir.path().join("users-dir/sif/x.sif")).unwrap(),
            b"the user's"
        );
        assert_eq!(
            std::fs::read(dir.path().join("users-file/sif")).unwrap(),
            b"the user's"
        );
    }

    #[test]
    fn finish_removes_the_file_and_what_the_run_kept_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), false).unwrap();
        j.record(&key("A", "c"), |r| r.done = true).unwrap();
        assert!(dir.path().join(JOURNAL_FILE).exists());
        std::fs::create_dir_all(dir.path().join("zoo-0123456789ab/Group")).unwrap();
        mark_workdir(&dir.path().join("zoo-0123456789ab")).unwrap();
        std::fs::create_dir_all(dir.path().join("sif")).unwrap();
        mark_workdir(&dir.path().join("sif")).unwrap();
        std::fs::write(dir.path().join("sif/x.sif"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"the user's").unwrap();
        // A directory of the user's, even with our names, is not ours.
        std::fs::create_dir_all(dir.path().join("zoo-users")).unwrap();
        j.finish().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec!["notes.txt".to_owned(), "zoo-users".to_owned()],
            "only what is not ours stays"
        );
        // Nothing else in it: the directory goes too.
        let only = dir.path().join("only");
        let j = Journal::open(&only, false).unwrap();
        j.record(&key("A", "c"), |r| r.done = true).unwrap();
        j.finish().unwrap();
        assert!(!only.exists());
    }
}
