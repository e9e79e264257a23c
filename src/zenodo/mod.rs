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
#[derive(Clone)]
pub struct ZenodoConfig {
    /// The service root, e.g. `https://zenodo.org/` (always ends with `/`).
    pub base_url: Url,
    pub token: Option<Secret>,
    pub retry: RetryPolicy,
    /// User agent and timeouts (from `KIPOI_HTTP_TIMEOUT` by default).
    pub http: HttpSettings,
}

impl std::fmt::Debug for ZenodoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenodoConfig")
            .field("base_url", &RedactedUrl::new(&self.base_url))
            .field("token", &self.token)
            .field("retry", &self.retry)
            .field("http", &self.http)
            .finish()
    }
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

/// The base URL, checked: http(s), and nothing in it that could be a credential (no user
/// name or password, no query, no fragment) — the base is shown in messages and written into
/// the index (record URLs), and the token belongs in `ZENODO_ACCESS_TOKEN`. A refused URL is
/// named redacted.
fn parse_base_url(raw: &str) -> Result<Url, ZenodoError> {
    let invalid = |reason: String| {
        ZenodoError::new(
            "configure the Zenodo client",
            ZenodoErrorKind::InvalidUrl {
                url: RedactedUrl::redact_str(raw.trim()),
                reason,
            },
        )
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https are supported".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "a base URL has no user name or password (the token goes in {ENV_TOKEN})"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "a base URL has no query or fragment (the token goes in {ENV_TOKEN})"
        )));
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

    /// A credential in `ZENODO_URL` (query, user info) is refused, and the error names the
    /// URL without it, parsable or not.
    #[test]
    fn a_base_url_carrying_a_credential_is_refused_without_showing_it() {
        let secret = "not-a-real-token-base";
        for raw in [
            format!("https://zenodo.example/?access_token={secret}"),
            format!("https://zenodo.example/api?token={secret}&x=1"),
            format!("https://user:{secret}@zenodo.example/"),
            format!("https://{secret}@zenodo.example/"),
            format!("https://zenodo.example/#access_token={secret}"),
            // Does not parse (port out of range): shown without user info or query.
            format!("https://user:{secret}@zenodo.example:99999/?access_token={secret}"),
        ] {
            let err = ZenodoConfig::new(&raw, None).unwrap_err();
            let text = format!("{}; {err:?}", crate::errchain::chain(&err));
            assert!(!text.contains(secret), "{raw}: {text}");
            assert!(text.contains("zenodo.example"), "{raw}: {text}");
            assert!(
                matches!(err.kind, ZenodoErrorKind::InvalidUrl { .. }),
                "{raw}: {text}"
            );
        }
        let err =
            ZenodoConfig::new(&format!("https://u:{secret}@zenodo.example/"), None).unwrap_err();
        assert!(
            crate::errchain::chain(&err).contains(ENV_TOKEN),
            "{}",
            crate::errchain::chain(&err)
        );
    }

    #[test]
    fn config_debug_redacts_the_base_url() {
        let mut cfg = ZenodoConfig::new("https://zenodo.example", None).unwrap();
        // The fields are public: a base set by hand is still shown redacted.
        cfg.base_url = Url::parse("https://u:not-a-real-pw@zenodo.example/").unwrap();
        assert!(!format!("{cfg:?}").contains("not-a-real-pw"), "{cfg:?}");
        let client = ZenodoClient::new(cfg).unwrap();
        assert!(
            !format!("{client:?}").contains("not-a-real-pw"),
            "{client:?}"
        );
    }

    #[test]
    fn display_url_redacts_access_token() {
        let u = Url::parse("https://zenodo.org/api/x?access_token=abc&q=1").unwrap();
        let shown = display_url(&u);
        assert!(!shown.contains("abc"), "{shown}");
        assert!(shown.contains("q=1"), "{shown}");
    }
}
