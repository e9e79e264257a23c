//! What a failed Zenodo call reports: the step (naming the deposition or file) and beneath
//! it the HTTP status with Zenodo's own message, or the transport/local cause.

use reqwest::Method;
use serde_json::Value;

use crate::transfer::TransferError;

/// A Zenodo operation that failed: which step, and why (see [`ZenodoErrorKind`]).
#[derive(Debug, thiserror::Error)]
#[error("could not {step}")]
pub struct ZenodoError {
    /// What we were doing, naming the deposition/file, e.g. "publish deposition `123`".
    pub step: String,
    #[source]
    pub kind: ZenodoErrorKind,
}

/// Why a Zenodo operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ZenodoErrorKind {
    /// Zenodo answered with an error status (after any retries).
    #[error("Zenodo answered {status} to {method} `{url}`: {message}{hint}")]
    Status {
        method: Method,
        url: String,
        status: u16,
        /// Zenodo's own message, with field errors appended.
        message: String,
        hint: &'static str,
    },
    /// The request never got an answer.
    #[error("{method} `{url}` got no answer after {attempts} attempt(s){note}")]
    Transport {
        method: Method,
        url: String,
        attempts: u32,
        /// ": timed out: …" when the last attempt timed out.
        note: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer is not the JSON the API documents.
    #[error("the answer to {method} `{url}` is not what Zenodo documents: {detail}")]
    Decode {
        method: Method,
        url: String,
        detail: String,
    },
    /// The local file could not be read (or written, for downloads).
    #[error(transparent)]
    Local(#[from] TransferError),
    /// Zenodo stored other bytes than we sent.
    #[error("`{file}` was sent with md5 {local} but Zenodo recorded {remote}; {cleanup}")]
    ChecksumMismatch {
        file: String,
        local: String,
        remote: String,
        cleanup: &'static str,
    },
    /// A URL we were given or built is unusable.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] crate::http::HttpSetupError),
    /// Zenodo's answers contradict each other or the API contract.
    #[error("{0}")]
    Unexpected(String),
}

impl ZenodoError {
    pub(crate) fn new(step: impl Into<String>, kind: ZenodoErrorKind) -> Self {
        Self {
            step: step.into(),
            kind,
        }
    }

    /// The HTTP status Zenodo answered, when the failure was an error answer.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ZenodoErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Authentication or authorization failed (401/403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

pub(super) const AUTH_HINT: &str =
    " (check ZENODO_ACCESS_TOKEN: it is missing, invalid, lacks the \
                         `deposit:write`/`deposit:actions` scope, or the deposition belongs to \
                         another account)";

/// Zenodo's message from an error body: legacy `{message, errors:[{field, message}]}`,
/// RDM `{message, errors:[{field, messages:[..]}]}`, or a gateway HTML page.
pub(super) fn server_message(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "(empty body)".to_owned();
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let mut msg = match v.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => v.to_string(),
        };
        if let Some(Value::Array(errors)) = v.get("errors") {
            let details: Vec<String> = errors
                .iter()
                .map(|e| {
                    let field = e.get("field").and_then(Value::as_str).unwrap_or("?");
                    let text = match (e.get("message"), e.get("messages")) {
                        (Some(Value::String(m)), _) => m.clone(),
                        (_, Some(Value::Array(ms))) => ms
                            .iter()
                            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(" "),
                        _ => e.to_string(),
                    };
                    format!("{field}: {text}")
                })
                .collect();
            if !details.is_empty() {
                msg = format!("{msg} ({})", details.join("; "));
            }
        }
        return msg;
    }
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
        if a + 7 <= b {
            return format!("non-JSON answer: {}", text[a + 7..b].trim());
        }
    }
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = collapsed.chars().take(160).collect();
    format!("non-JSON answer: {short}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_of_both_generations() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "legacy",
                br#"{"status":400,"message":"Validation error.","errors":[{"field":"metadata.title","message":"Field may not be null."}]}"#,
                "Validation error. (metadata.title: Field may not be null.)",
            ),
            (
                "rdm",
                br#"{"status":400,"message":"A validation error occurred.","errors":[{"field":"files.enabled","messages":["Please remove all files first."]}]}"#,
                "A validation error occurred. (files.enabled: Please remove all files first.)",
            ),
            (
                "gateway",
                b"<html><head><title>502 Bad Gateway</title></head><body>x</body></html>",
                "non-JSON answer: 502 Bad Gateway",
            ),
            ("empty", b"", "(empty body)"),
        ];
        for (name, body, expected) in cases {
            assert_eq!(server_message(body), *expected, "{name}");
        }
    }
}
