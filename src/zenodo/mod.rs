//! Zenodo deposition client (REST API `/api/deposit/depositions`, both the legacy service
//! and the InvenioRDM one that replaced it in October 2023).
//!
//! - The base URL is configurable (`ZENODO_URL`, default `https://zenodo.org`).
//! - The token (`ZENODO_ACCESS_TOKEN`) travels only in `Authorization: Bearer`, only to the
//!   base URL's origin, and never appears in URLs, logs or errors (a [`Secret`]; URLs are
//!   shown as [`RedactedUrl`]; `access_token=` query parameters handed to us are removed).
//! - Every request, downloads included, is retried with backoff on 429 (honouring
//!   `Retry-After` up to `max_retry_after`; a longer one fails at once), 500, 502, 503, 504
//!   and transport failures, within the limits of [`Replay`](crate::retry::Replay) (see there for why each POST is
//!   safe to repeat).
//! - Uploads stream from disk, hash in the same pass and are checked against the md5 Zenodo
//!   reports; a mismatch removes the upload and fails.
//!
//! Errors are [`ZenodoError`]: the step that failed (naming the deposition or file), and
//! beneath it the HTTP status with Zenodo's own message, or the transport/local cause.
//!
//! One file per concern, each with its tests:
//!
//! | file             | what                                                                  |
//! |------------------|-----------------------------------------------------------------------|
//! | `mod.rs`         | configuration (base URL, token, retry policy, timeouts), re-exports   |
//! | `error.rs`       | [`ZenodoError`] and Zenodo's error bodies (legacy, RDM, gateway HTML) |
//! | `client.rs`      | [`ZenodoClient`]: one request with retries, the generic JSON API      |
//! | `deposition.rs`  | [`Deposition`] views; list, create, read, metadata, new version, publish, delete |
//! | `files.rs`       | list/delete files, streamed upload and download, md5 in the same pass |
//! | `metadata.rs`    | record titles and descriptions, decided from the index                |
//! | `publish.rs`     | the workflow: new record / new version, draft guard, reports, resume  |

mod client;
mod deposition;
mod error;
mod files;
pub mod metadata;
pub mod publish;

use reqwest::Url;

use crate::http::HttpSettings;
use crate::redact::{RedactedUrl, Secret};
use crate::retry::RetryPolicy;

pub use client::ZenodoClient;
pub use deposition::{
    id_from_link, normalize_md5, record_id_from_url, DepositFile, Deposition, ListQuery,
};
pub use error::{ZenodoError, ZenodoErrorKind};
pub use files::Uploaded;

/// Where Zenodo lives unless `ZENODO_URL` or an argument says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://zenodo.org";
/// The environment variable holding the base URL.
pub const ENV_BASE_URL: &str = "ZENODO_URL";
/// The environment variable holding the personal access token.
pub const ENV_TOKEN: &str = "ZENODO_ACCESS_TOKEN";
/// Path of the deposition collection below the base URL.
pub const DEPOSITIONS_PATH: &str = "api/deposit/depositions";

// ------------------------------------------------------------------------------ secrets

/// A Zenodo personal access token (never printed; see [`crate::redact::Secret`]).
pub type AccessToken = Secret;

/// `url` for messages: credentials and any `access_token` value replaced by `***`.
pub fn display_url(url: &Url) -> String {
    RedactedUrl::new(url).to_string()
}

// ------------------------------------------------------------------------------ config

/// Everything a [`ZenodoClient`] needs.
#[derive(Debug, Clone)]
pub struct ZenodoConfig {
    /// The service root, e.g. `https://zenodo.org/` (always ends with `/`).
    pub base_url: Url,
    pub token: Option<Secret>,
    pub retry: RetryPolicy,
    /// User agent and timeouts (from `KIPOI_HTTP_TIMEOUT` by default).
    pub http: HttpSettings,
}

impl ZenodoConfig {
    /// A configuration for `base_url` with defaults for everything else.
    pub fn new(base_url: &str, token: Option<Secret>) -> Result<Self, ZenodoError> {
        let http = HttpSettings::from_env()
            .map_err(|e| ZenodoError::new("configure the Zenodo client", e.into()))?;
        Ok(Self {
            base_url: parse_base_url(base_url)?,
            token,
            retry: RetryPolicy::default(),
            http,
        })
    }

    /// Base URL from `base_url`, else `ZENODO_URL`, else the default; token from `token`,
    /// else `ZENODO_ACCESS_TOKEN`.
    pub fn from_env(base_url: Option<&str>, token: Option<&str>) -> Result<Self, ZenodoError> {
        let env_base = std::env::var(ENV_BASE_URL)
            .ok()
            .filter(|s| !s.trim().is_empty());
        let base = base_url
            .map(str::to_owned)
            .or(env_base)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let token = match token {
            Some(t) => Secret::new(t),
            None => Secret::from_env(&[ENV_TOKEN]),
        };
        Self::new(&base, token)
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ZenodoError> {
    let invalid = |reason: String| {
        ZenodoError::new(
            "configure the Zenodo client",
            ZenodoErrorKind::InvalidUrl {
                url: raw.to_owned(),
                reason,
            },
        )
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https are supported".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL has no query or fragment".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let t = AccessToken::new("s3cr3t-token").unwrap();
        assert_eq!(format!("{t}"), "***");
        assert_eq!(format!("{t:?}"), "Secret(***)");
        let cfg = ZenodoConfig::new("http://127.0.0.1:1", Some(t)).unwrap();
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        let client = ZenodoClient::new(cfg).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert!(AccessToken::new("  ").is_none());
    }

    #[test]
    fn display_url_redacts_access_token() {
        let u = Url::parse("https://zenodo.org/api/x?access_token=abc&q=1").unwrap();
        let shown = display_url(&u);
        assert!(!shown.contains("abc"), "{shown}");
        assert!(shown.contains("q=1"), "{shown}");
    }
}
