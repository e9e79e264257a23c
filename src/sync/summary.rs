//! The `Sync summary`: one row per unit (group, action, result, image digest, SIF md5,
//! duration), then what happened to the index, the zoo and the hash.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::unit::{Change, UnitOutcome};

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub unit: String,
    pub action: String,
    /// `ok`, or `failed`.
    pub result: String,
    /// What happened, in a few words (`rebuilt`, `image unchanged`, `SIF published`, ...).
    pub detail: String,
    pub image: Option<String>,
    pub digest: Option<String>,
    pub sif_md5: Option<String>,
    pub seconds: f64,
    /// The failure and the tail of kipoi's log, for a failed unit.
    pub error: Option<String>,
    pub log_tail: Option<String>,
}

impl SummaryRow {
    #[must_use]
    pub fn from_outcome(out: &UnitOutcome) -> Self {
        let (result, error, log_tail, image) = match &out.result {
            Ok(change) => {
                let image = match change {
                    Change::OwnImage { image, .. }
                    | Change::Shared { image, .. }
                    | Change::Retested { image, .. } => Some(image.clone()),
                    Change::ImageOnly { image } => Some(image.clone()),
                    Change::Removed { .. } | Change::NotPublished => out.action.image.clone(),
                };
                ("ok".to_owned(), None, None, image)
            }
            Err(e) => (
                "failed".to_owned(),
                Some(e.message.clone()),
                e.log_tail.clone(),
                out.action.image.clone(),
            ),
        };
        Self {
            unit: out.action.unit.clone(),
            action: out.action.kind.as_str().to_owned(),
            result,
            detail: out.notes.join(", "),
            image,
            digest: out.digest.clone(),
            sif_md5: out.sif_md5.clone(),
            seconds: out.seconds,
            error,
            log_tail,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub zoo: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<SummaryRow>,
    /// The index files were rewritten.
    pub index_written: bool,
    /// What the zoo received (a branch, commits, a pull request), in words.
    pub write_back: Option<String>,
    /// `kipoi-model-repo-hash` now holds `to`.
    pub hash_moved: bool,
    /// Why the hash did not move, when it did not.
    pub hash_note: Option<String>,
    /// Journal kept for a re-run (some unit failed).
    pub journal: Option<String>,
}

impl SyncReport {
    /// Units that failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.result != "ok").count()
    }

    /// The summary table, headed `Sync summary`.
    #[must_use]
    pub fn to_table(&self) -> String {
        let short = |s: &str| s.get(..12).unwrap_or(s).to_owned();
        let mut out = format!(
            "Sync summary: {} {} -> {}\n",
            self.zoo,
            short(&self.from),
            short(&self.to)
        );
        if self.rows.is_empty() {
            out.push_str("  nothing to do: no model group changed\n");
        } else {
            let header = [
                "GROUP",
                "ACTION",
                "RESULT",
                "IMAGE DIGEST",
                "SIF MD5",
                "TIME",
            ];
            let rows: Vec<[String; 6]> = self
                .rows
                .iter()
                .map(|r| {
                    [
                        r.unit.clone(),
                        r.action.clone(),
                        r.result.clone(),
                        r.digest
                            .as_deref()
                            .map(|d| short(d.strip_prefix("sha256:").unwrap_or(d)))
                            .unwrap_or_else(|| "-".into()),
                        r.sif_md5
                            .as_deref()
                            .map(short)
                            .unwrap_or_else(|| "-".into()),
                        duration(r.seconds),
                    ]
                })
                .collect();
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: [&str; 6]| {
                let mut l = String::from(" ");
                for (i, cell) in cells.iter().enumerate() {
                    let _ = write!(l, " {cell:w$}", w = widths[i]);
                }
                l.trim_end().to_owned()
            };
            let _ = writeln!(out, "{}", line(header));
            for (row, r) in rows.iter().zip(&self.rows) {
                let _ = writeln!(
                    out,
                    "{}",
                    line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])
                );
                if !r.detail.is_empty() {
                    let _ = writeln!(out, "      {}", r.detail);
                }
                if let Some(err) = &r.error {
                    let _ = writeln!(out, "      error: {}", err.lines().next().unwrap_or(""));
                    if let Some(tail) = &r.log_tail {
                        for l in tail.lines() {
                            let _ = writeln!(out, "        | {l}");
                        }
                    }
                }
            }
        }
        let failed = self.failed();
        let _ = writeln!(
            out,
            "{} unit(s): {} ok, {failed} failed",
            self.rows.len(),
            self.rows.len() - failed
        );
        let _ = writeln!(
            out,
            "index: {}",
            if self.index_written {
                "updated"
            } else {
                "unchanged"
            }
        );
        if let Some(wb) = &self.write_back {
            let _ = writeln!(out, "zoo: {wb}");
        }
        if self.hash_moved {
            let _ = writeln!(out, "kipoi-model-repo-hash: moved to {}", self.to);
        } else if let Some(note) = &self.hash_note {
            let _ = writeln!(out, "kipoi-model-repo-hash: not moved ({note})");
        }
        if let Some(j) = &self.journal {
            let _ = writeln!(out, "journal kept for a re-run: {j}");
        }
        out
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_heading_columns_and_failures() {
        let report = SyncReport {
            zoo: "zoo".into(),
            from: "a".repeat(40),
            to: "b".repeat(40),
            rows: vec![
                SummaryRow {
                    unit: "DeepMEL".into(),
                    action: "update-image".into(),
                    result: "ok".into(),
                    detail: "rebuilt".into(),
                    image: Some("kipoi/kipoi-docker:deepmel".into()),
                    digest: Some(format!("sha256:{}", "1".repeat(64))),
                    sif_md5: Some("2".repeat(32)),
                    seconds: 125.0,
                    error: None,
                    log_tail: None,
                },
                SummaryRow {
                    unit: "Broken".into(),
                    action: "add-group".into(),
                    result: "failed".into(),
                    detail: String::new(),
                    image: None,
                    digest: None,
                    sif_md5: None,
                    seconds: 3.0,
                    error: Some("model `Broken` failed its test".into()),
                    log_tail: Some("RuntimeError: boom".into()),
                },
            ],
            index_written: true,
            write_back: Some("branch `update-json`".into()),
            hash_moved: false,
            hash_note: Some("1 unit failed".into()),
            journal: Some(".kipoi-sync/journal.json".into()),
        };
        let t = report.to_table();
        assert!(t.starts_with("Sync summary"), "{t}");
        assert!(t.contains("GROUP") && t.contains("SIF MD5") && t.contains("IMAGE DIGEST"));
        assert!(t.contains("111111111111") && t.contains("2m05s"), "{t}");
        assert!(t.contains("| RuntimeError: boom"), "{t}");
        assert!(t.contains("2 unit(s): 1 ok, 1 failed"), "{t}");
        assert!(t.contains("not moved (1 unit failed)"), "{t}");
        assert_eq!(report.failed(), 1);
    }
}
