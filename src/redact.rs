//! The one redaction module: a secret that never prints, and URLs as they may be shown.
//!
//! - [`Secret`] holds a token or password (GitHub token, Docker password, Zenodo token). Its
//!   `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value, at the one
//!   place it is put on the wire.
//! - [`RedactedUrl`] is a URL for log lines and errors: user info and the values of
//!   credential-like query parameters (`access_token`, `token`, `key`, signatures…) are
//!   replaced by `***`. Every log line and error that names a URL goes through it.

use std::fmt;

/// A credential. Never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an empty or blank value (the same as no secret); surrounding whitespace
    /// (a trailing newline from a file or a paste) is removed.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    /// The first of `names` set to a non-blank value in the environment.
    #[must_use]
    pub fn from_env(names: &[&str]) -> Option<Self> {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().and_then(Self::new))
    }

    /// The value, for the one place it goes on the wire. Never log or format it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An HTTP header value that carries a credential (`Bearer <token>`, `Basic <base64>`),
/// marked sensitive: never shown by `Debug`, never logged by hyper, never indexed by HTTP/2
/// header compression. `None` when `value` cannot be a header value (the caller names the
/// credential, never the value).
#[must_use]
pub fn credential_header(value: &str) -> Option<http::HeaderValue> {
    let mut header = http::HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Query parameters whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "token",
    "private_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "client_secret",
];

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// A URL as it may appear in logs and errors.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(reqwest::Url);

impl RedactedUrl {
    #[must_use]
    pub fn new(url: &reqwest::Url) -> Self {
        Self(url.clone())
    }

    /// The real URL (with whatever it carries): for sending, never for showing.
    #[must_use]
    pub fn as_url(&self) -> &reqwest::Url {
        &self.0
    }

    /// Redacts a URL given as text; text that does not parse as a URL is shown without
    /// anything after a `?` or an `@` (where credentials would be).
    #[must_use]
    pub fn redact_str(raw: &str) -> String {
        match reqwest::Url::parse(raw) {
            Ok(url) if url.has_host() => Self(url).to_string(),
            _ => {
                let head = raw.split(['?', '#']).next().unwrap_or_default();
                let (scheme, rest) = head.split_once("://").map_or(("", head), |(s, r)| (s, r));
                let rest = match rest.rsplit_once('@') {
                    Some((_, host)) => format!("***@{host}"),
                    None => rest.to_owned(),
                };
                if scheme.is_empty() {
                    rest
                } else {
                    format!("{scheme}://{rest}")
                }
            }
        }
    }

    /// A spec that may be a URL or a path (a zoo, a repository): redacted as a URL when it
    /// has a `://`, else shown as it is (a path's `?` or `@` is not a credential).
    #[must_use]
    pub fn redact_if_url(spec: &str) -> String {
        if spec.contains("://") {
            Self::redact_str(spec)
        } else {
            spec.to_owned()
        }
    }
}

impl From<&reqwest::Url> for RedactedUrl {
    fn from(url: &reqwest::Url) -> Self {
        Self::new(url)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if !shown.username().is_empty() {
            let _ = shown.set_username("***");
        }
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        if shown.query().is_some() {
            let pairs: Vec<(String, String)> = shown
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_param(&k) {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        shown.set_fragment(None);
        f.write_str(shown.as_str())
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedactedUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new(" not-a-real-token\n").unwrap();
        assert_eq!(s.expose(), "not-a-real-token");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(***))");
        assert!(Secret::new("  ").is_none());
    }

    #[test]
    fn urls_are_redacted() {
        let cases: &[(&str, &str)] = &[
            (
                "https://zenodo.org/api/x?access_token=abc&q=1",
                "https://zenodo.org/api/x?access_token=***&q=1",
            ),
            (
                "https://user:pw@example.org/a?Token=t#frag",
                "https://***:***@example.org/a?Token=***",
            ),
            (
                "http://127.0.0.1:5/p?X-Amz-Signature=zz&page=2",
                "http://127.0.0.1:5/p?X-Amz-Signature=***&page=2",
            ),
            (
                "https://api.github.com/repos/o/r",
                "https://api.github.com/repos/o/r",
            ),
        ];
        for (raw, shown) in cases {
            let url = reqwest::Url::parse(raw).unwrap();
            assert_eq!(RedactedUrl::new(&url).to_string(), *shown, "{raw}");
            assert_eq!(RedactedUrl::redact_str(raw), *shown, "{raw}");
        }
        assert_eq!(RedactedUrl::redact_str("not a url?token=x"), "not a url");
        assert_eq!(RedactedUrl::redact_str("u:p@host/x"), "***@host/x");
    }

    #[test]
    fn credential_headers_are_sensitive() {
        assert!(credential_header("Bearer t0k").unwrap().is_sensitive());
        assert!(credential_header("Bearer t0k\n").is_none());
    }

    #[test]
    fn specs_are_redacted_only_when_they_are_urls() {
        assert_eq!(
            RedactedUrl::redact_if_url("https://x-access-token:tok@github.com/kipoi/models"),
            "https://***:***@github.com/kipoi/models"
        );
        assert_eq!(
            RedactedUrl::redact_if_url("github:https://tok@github.com/kipoi/models"),
            "github:https://***@github.com/kipoi/models"
        );
        assert_eq!(
            RedactedUrl::redact_if_url("/home/a@b/zoo?"),
            "/home/a@b/zoo?"
        );
    }
}
