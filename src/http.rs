//! HTTP client set-up shared by every client (GitHub, Zenodo, downloads): one user agent,
//! TLS, and the connect and read-stall timeouts from `KIPOI_HTTP_TIMEOUT`.
//!
//! [`HttpClient`] hands out a `reqwest::Client` for the current process: a client (and its
//! pooled connections) made before a `fork` belongs to the parent's runtime, so a child
//! gets a fresh one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds to connect, and of silence while waiting for an answer, for every HTTP request.
pub const ENV_TIMEOUT: &str = "KIPOI_HTTP_TIMEOUT";
/// Used when `KIPOI_HTTP_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The engine's user agent.
#[must_use]
pub fn user_agent() -> String {
    format!(
        "kipoi_containers/{} (+https://github.com/kipoi/kipoi-containers)",
        env!("CARGO_PKG_VERSION")
    )
}

/// Why an HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("`{ENV_TIMEOUT}` must be a number of seconds more than 0, got `{0}`")]
    BadTimeout(String),
    #[error("the HTTP client could not be set up")]
    Client(#[source] reqwest::Error),
}

/// `KIPOI_HTTP_TIMEOUT` (seconds, fractions allowed), else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Result<Duration, HttpSetupError> {
    match std::env::var(ENV_TIMEOUT) {
        Ok(raw) if !raw.trim().is_empty() => parse_timeout(&raw),
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

fn parse_timeout(raw: &str) -> Result<Duration, HttpSetupError> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| HttpSetupError::BadTimeout(raw.to_owned()))
}

/// What a client is built with.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Longest silence while waiting for (a part of) an answer.
    pub read_timeout: Duration,
    /// Follow redirects (downloads: Zenodo's `/record/` → `/records/`).
    pub follow_redirects: bool,
}

impl HttpSettings {
    /// The user agent, and both timeouts from `KIPOI_HTTP_TIMEOUT`.
    pub fn from_env() -> Result<Self, HttpSetupError> {
        let timeout = timeout_from_env()?;
        Ok(Self {
            user_agent: user_agent(),
            connect_timeout: timeout,
            read_timeout: timeout,
            follow_redirects: true,
        })
    }

    fn build(&self) -> Result<reqwest::Client, HttpSetupError> {
        crate::runtime::init_tls();
        let redirect = if self.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .redirect(redirect)
            .build()
            .map_err(HttpSetupError::Client)
    }
}

/// A `reqwest::Client` per process. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    settings: Arc<HttpSettings>,
    current: Arc<Mutex<(u32, reqwest::Client)>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(settings: HttpSettings) -> Result<Self, HttpSetupError> {
        let client = settings.build()?;
        Ok(Self {
            settings: Arc::new(settings),
            current: Arc::new(Mutex::new((std::process::id(), client))),
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The client of this process (rebuilt after a `fork`).
    pub fn client(&self) -> Result<reqwest::Client, HttpSetupError> {
        let pid = std::process::id();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0 != pid {
            *current = (pid, self.settings.build()?);
        }
        Ok(current.1.clone())
    }
}

/// Whether a transport error is a timeout, in words for messages.
#[must_use]
pub fn timeout_note(err: &reqwest::Error, settings: &HttpSettings) -> Option<String> {
    err.is_timeout().then(|| {
        format!(
            "timed out: no answer within {:.0}s (set {ENV_TIMEOUT} to wait longer)",
            settings.read_timeout.as_secs_f64()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout(" 0.25 ").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "soon", "nan", "inf", "1e400"] {
            let e = parse_timeout(bad).unwrap_err();
            assert!(e.to_string().contains(ENV_TIMEOUT), "{bad}: {e}");
        }
    }

    #[test]
    fn client_is_per_process() {
        let c = HttpClient::new(HttpSettings {
            user_agent: "t".into(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            follow_redirects: false,
        })
        .unwrap();
        assert!(c.client().is_ok());
        // Pretend the client was made by another process: it is rebuilt.
        c.current.lock().unwrap().0 = 0;
        assert!(c.client().is_ok());
        assert_eq!(c.current.lock().unwrap().0, std::process::id());
    }
}
