//! Depositions: the read-only view of Zenodo's answers, and the operations on drafts and
//! records — list, create, read, replace metadata, new version (continuing an open draft),
//! publish, delete.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Call, ZenodoClient};
use super::error::{ZenodoError, ZenodoErrorKind};
use crate::retry::Replay;

/// Pages of drafts searched for an open draft before giving up.
const DRAFT_SEARCH_PAGES: u32 = 20;
/// Drafts per page in that search (Zenodo's maximum for authenticated users).
const DRAFT_SEARCH_PAGE_SIZE: u32 = 100;

/// A deposition as Zenodo returned it, with typed accessors for the fields we use.
#[derive(Debug, Clone)]
pub struct Deposition(Value);

/// One file of a deposition (`GET …/files`, or `files[]` of a deposition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositFile {
    pub id: String,
    pub filename: String,
    pub filesize: u64,
    /// md5 as lower-case hex (any `md5:` prefix removed).
    pub checksum: String,
}

/// md5 as lower-case hex: `md5:<hex>` (bucket answers) and `<hex>` (deposit files) agree.
pub fn normalize_md5(checksum: &str) -> String {
    let c = checksum.trim();
    c.strip_prefix("md5:").unwrap_or(c).to_ascii_lowercase()
}

/// The id in the last path segment of a Zenodo link (`…/depositions/123` → 123).
pub fn id_from_link(link: &str) -> Option<u64> {
    let path = link.split(['?', '#']).next()?;
    path.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

/// Path segments that precede a record or deposition id in Zenodo URLs.
const ID_SEGMENTS: [&str; 5] = ["record", "records", "depositions", "deposit", "uploads"];

/// The record id of a Zenodo URL such as an index entry's
/// `https://zenodo.org/record/6576723/files/x.sif?download=1` → 6576723: the numeric
/// segment after the last `record`/`records`/`depositions`/`deposit`/`uploads` segment,
/// wherever the base URL puts it (a path prefix included); a bare number is itself.
#[must_use]
pub fn record_id_from_url(url: &str) -> Option<u64> {
    let text = url.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let path = match text.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => text,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments.windows(2).rev().find_map(|pair| {
        let is_id = !pair[1].is_empty() && pair[1].bytes().all(|b| b.is_ascii_digit());
        (ID_SEGMENTS.contains(&pair[0]) && is_id)
            .then(|| pair[1].parse().ok())
            .flatten()
    })
}

fn as_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Deposition {
    pub fn from_value(v: Value) -> Self {
        Self(v)
    }
    pub fn raw(&self) -> &Value {
        &self.0
    }
    pub fn into_raw(self) -> Value {
        self.0
    }
    pub fn id(&self) -> Option<u64> {
        self.0.get("id").and_then(as_id)
    }
    /// `unsubmitted`, `inprogress` or `done`.
    pub fn state(&self) -> Option<&str> {
        self.0.get("state").and_then(Value::as_str)
    }
    pub fn is_published(&self) -> bool {
        self.state() == Some("done")
    }
    pub fn conceptrecid(&self) -> Option<String> {
        match self.0.get("conceptrecid")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn link(&self, name: &str) -> Option<&str> {
        self.0.get("links")?.get(name)?.as_str()
    }
    pub fn bucket_url(&self) -> Option<&str> {
        self.link("bucket")
    }
    pub fn latest_draft_id(&self) -> Option<u64> {
        self.link("latest_draft").and_then(id_from_link)
    }
    /// The latest published version of this record (`links.latest`, published depositions).
    pub fn latest_id(&self) -> Option<u64> {
        self.link("latest").and_then(id_from_link)
    }
    /// `metadata.prereserve_doi.recid`, the record id the published files live under.
    pub fn record_id(&self) -> Option<u64> {
        self.0
            .get("metadata")?
            .get("prereserve_doi")?
            .get("recid")
            .and_then(as_id)
            .or_else(|| self.0.get("record_id").and_then(as_id))
    }
    pub fn files(&self) -> Vec<DepositFile> {
        match self.0.get("files") {
            Some(Value::Array(files)) => files.iter().filter_map(DepositFile::from_value).collect(),
            _ => Vec::new(),
        }
    }
}

impl DepositFile {
    pub fn from_value(v: &Value) -> Option<Self> {
        Some(Self {
            id: match v.get("id")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            filename: v.get("filename")?.as_str()?.to_owned(),
            filesize: v.get("filesize").and_then(Value::as_u64).unwrap_or(0),
            checksum: normalize_md5(v.get("checksum").and_then(Value::as_str).unwrap_or("")),
        })
    }
}

/// Search parameters of `GET /api/deposit/depositions`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Elasticsearch query string.
    pub q: Option<String>,
    /// `draft` or `published`.
    pub status: Option<String>,
    /// `bestmatch`, `mostrecent`, `-` reverses.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub size: Option<u32>,
    pub all_versions: Option<bool>,
}

impl ListQuery {
    pub(super) fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_owned(), v));
            }
        };
        push("q", self.q.clone());
        push("status", self.status.clone());
        push("sort", self.sort.clone());
        push("page", self.page.map(|p| p.to_string()));
        push("size", self.size.map(|s| s.to_string()));
        push("all_versions", self.all_versions.map(|b| b.to_string()));
        out
    }
}

impl ZenodoClient {
    /// `GET /api/deposit/depositions` with search parameters (Z1).
    pub async fn list_depositions(&self, query: &ListQuery) -> Result<Vec<Value>, ZenodoError> {
        let url = Self::with_query(&self.depositions_url("")?, &query.pairs());
        let step = "list depositions".to_owned();
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        self.send_for_array(&call).await
    }

    /// `POST /api/deposit/depositions` (Z2): a new, empty draft (or with `metadata`).
    pub async fn create_deposition(
        &self,
        metadata: Option<&Value>,
    ) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url("")?;
        let step = "create a deposition".to_owned();
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::UnprocessedOnly,
        };
        let body = match metadata {
            Some(m) => json!({ "metadata": m }),
            None => json!({}),
        };
        let answer = self.send_json(&call, Some(&body)).await?;
        let dep = Deposition(Self::expect_json(&call, &answer)?);
        let id = dep
            .id()
            .ok_or_else(|| Self::shape_error(&call, "the new deposition has no `id`"))?;
        log::info!("created deposition `{id}`");
        Ok(dep)
    }

    /// `GET /api/deposit/depositions/{id}` (Z3).
    pub async fn get_deposition(&self, id: u64) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url(&id.to_string())?;
        let step = format!("read deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        Ok(Deposition(Self::expect_json(&call, &answer)?))
    }

    /// `PUT /api/deposit/depositions/{id}` with `{"metadata": …}` (Z4); replaces all metadata.
    pub async fn update_metadata(
        &self,
        id: u64,
        metadata: &Value,
    ) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url(&id.to_string())?;
        let step = format!("update the metadata of deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::PUT,
            url: &url,
            replay: Replay::Always,
        };
        let body = json!({ "metadata": metadata });
        let answer = self.send_json(&call, Some(&body)).await?;
        Ok(Deposition(Self::expect_json(&call, &answer)?))
    }

    /// `DELETE /api/deposit/depositions/{id}` (Z5): deletes a draft.
    pub async fn delete_deposition(&self, id: u64) -> Result<(), ZenodoError> {
        let url = self.depositions_url(&id.to_string())?;
        self.delete_at(&format!("delete draft deposition `{id}`"), &url)
            .await
    }

    /// `POST …/{id}/actions/newversion` (Z6) → the id of the new draft, read from
    /// `links.latest_draft` (legacy answers the original deposition, RDM the draft itself).
    ///
    /// When a draft of this record is already open — legacy answers it again, RDM answers
    /// 400 "Please remove all files first." — the open draft is found and returned, so a run
    /// that died after opening a draft does not block every later update.
    pub async fn new_version(&self, id: u64) -> Result<u64, ZenodoError> {
        let url = self.depositions_url(&format!("{id}/actions/newversion"))?;
        let step = format!("create a new version of deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        if answer.ok() {
            let dep = Deposition(Self::decode(&call, &answer)?);
            let draft = dep.latest_draft_id().ok_or_else(|| {
                Self::shape_error(&call, "the answer has no usable `links.latest_draft`")
            })?;
            if draft == id && dep.is_published() {
                return Err(ZenodoError::new(
                    step,
                    ZenodoErrorKind::Unexpected(format!(
                        "Zenodo answered {} but `links.latest_draft` still points at the published deposition `{id}`",
                        answer.status
                    )),
                ));
            }
            log::info!("opened draft `{draft}` as a new version of deposition `{id}`");
            return Ok(draft);
        }
        let text = String::from_utf8_lossy(&answer.body).to_ascii_lowercase();
        let draft_exists = answer.status == 400 && text.contains("remove all files");
        if draft_exists || (answer.ambiguous && matches!(answer.status, 400 | 403 | 404)) {
            if let Some(draft) = self.find_open_draft(id).await? {
                log::info!(
                    "deposition `{id}` already has an open draft `{draft}`; continuing from it"
                );
                return Ok(draft);
            }
        }
        Err(Self::status_error(&call, &answer))
    }

    /// The open (unpublished) draft of the record `id` belongs to, if any: first through the
    /// record's `links.latest_draft`, then by searching the account's drafts for the same
    /// `conceptrecid`.
    pub async fn find_open_draft(&self, id: u64) -> Result<Option<u64>, ZenodoError> {
        let record = self.get_deposition(id).await?;
        if let Some(latest) = record.latest_draft_id() {
            if latest != id {
                let draft = self.get_deposition(latest).await?;
                if !draft.is_published() {
                    return Ok(Some(latest));
                }
            }
        }
        let Some(concept) = record.conceptrecid() else {
            return Ok(None);
        };
        for page in 1..=DRAFT_SEARCH_PAGES {
            let items = self
                .list_depositions(&ListQuery {
                    status: Some("draft".into()),
                    sort: Some("mostrecent".into()),
                    page: Some(page),
                    size: Some(DRAFT_SEARCH_PAGE_SIZE),
                    all_versions: Some(true),
                    ..ListQuery::default()
                })
                .await?;
            for item in &items {
                let dep = Deposition(item.clone());
                if dep.conceptrecid().as_deref() == Some(concept.as_str())
                    && !dep.is_published()
                    && dep.id().is_some_and(|d| d != id)
                {
                    return Ok(dep.id());
                }
            }
            if items.len() < DRAFT_SEARCH_PAGE_SIZE as usize {
                break;
            }
        }
        Ok(None)
    }

    /// (answered 4xx) is accepted when the deposition reads back as published.
    pub async fn publish(&self, id: u64) -> Result<Deposition, ZenodoError> {
        let url = self.depositions_url(&format!("{id}/actions/publish"))?;
        let step = format!("publish deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::POST,
            url: &url,
            replay: Replay::Always,
        };
        let answer = self.send_json(&call, None).await?;
        if answer.ok() {
            let dep = Deposition(Self::decode(&call, &answer)?);
            log::info!("published deposition `{id}`");
            return Ok(dep);
        }
        if answer.ambiguous && matches!(answer.status, 400 | 403 | 404 | 409) {
            let dep = self.get_deposition(id).await?;
            if dep.is_published() {
                log::info!("deposition `{id}` was published by an earlier attempt");
                return Ok(dep);
            }
        }
        Err(Self::status_error(&call, &answer))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_checksums() {
        assert_eq!(
            id_from_link("https://zenodo.org/api/deposit/depositions/123"),
            Some(123)
        );
        assert_eq!(
            id_from_link("https://zenodo.org/api/records/9/?x=1"),
            Some(9)
        );
        assert_eq!(id_from_link("https://zenodo.org/api/x"), None);
        assert_eq!(normalize_md5("md5:ABCdef"), "abcdef");
        assert_eq!(normalize_md5("abcdef"), "abcdef");
    }

    #[test]
    fn record_ids_of_urls() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "https://zenodo.org/record/6576723/files/x.sif?download=1",
                Some(6_576_723),
            ),
            (
                "https://zenodo.org/records/6576723/files/x.sif?download=1",
                Some(6_576_723),
            ),
            ("http://h:1/deep/prefix/record/42/files/x.sif", Some(42)),
            ("http://h:1/record/api/record/7/files/record.sif", Some(7)),
            ("https://zenodo.org/api/deposit/depositions/99", Some(99)),
            ("123", Some(123)),
            (" 5 ", Some(5)),
            ("https://zenodo.org/files/x.sif", None),
            ("https://zenodo.org/record/abc/files/x.sif", None),
            ("https://zenodo.org/?record=5", None),
            ("", None),
        ];
        for (url, expected) in cases {
            assert_eq!(record_id_from_url(url), *expected, "{url}");
        }
    }

    #[test]
    fn deposition_view() {
        let d = Deposition::from_value(json!({
            "id": 7, "state": "done", "conceptrecid": "6",
            "links": {"bucket": "https://z/api/files/abc", "latest_draft": "https://z/api/deposit/depositions/8"},
            "metadata": {"prereserve_doi": {"doi": "10.5281/zenodo.7", "recid": 7}},
            "files": [{"id": "f1", "filename": "a.sif", "filesize": 3, "checksum": "md5:AA"}]
        }));
        assert_eq!(d.id(), Some(7));
        assert!(d.is_published());
        assert_eq!(d.conceptrecid().as_deref(), Some("6"));
        assert_eq!(d.bucket_url(), Some("https://z/api/files/abc"));
        assert_eq!(d.latest_draft_id(), Some(8));
        assert_eq!(d.record_id(), Some(7));
        assert_eq!(
            d.files(),
            vec![DepositFile {
                id: "f1".into(),
                filename: "a.sif".into(),
                filesize: 3,
                checksum: "aa".into()
            }]
        );
    }
}
