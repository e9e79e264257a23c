//! The one retry mechanism of every HTTP client (GitHub, Zenodo, downloads).
//!
//! A client keeps one [`RetryState`] per logical request and reports each failed attempt to
//! it; the state answers "wait this long, then try again" or "give up", from:
//! - the [`RetryPolicy`]: how many repetitions, exponential backoff with jitter, and the
//!   longest `Retry-After` worth waiting (a longer one fails at once instead of sleeping);
//! - what is safe to repeat ([`Replay`]): idempotent requests after any transient failure,
//!   non-idempotent ones only when the server certainly did not act on them;
//! - what is transient: 429, 500, 502, 503, 504, and transport failures (refused, reset,
//!   timed out).
//!
//! The state also remembers whether an earlier attempt may have been processed without us
//! seeing the answer ([`RetryState::ambiguous`]), so a caller can read "404 on a repeated
//! DELETE" as done.

use std::time::Duration;

/// When and how long to wait before repeating a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Repetitions after the first attempt.
    pub max_retries: u32,
    /// Wait before the first repetition; doubles on each later one.
    pub initial_backoff: Duration,
    /// Upper bound of the computed backoff.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited out: the request fails instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before repetition number `retry` (1-based): the server's `Retry-After` when
    /// given, else exponential backoff with up to 25 % jitter, capped at `max_backoff`.
    #[must_use]
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let exp = retry.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter_permille = jitter_seed() % 250;
        let jitter = (base / 1000).saturating_mul(jitter_permille);
        base.saturating_add(jitter).min(self.max_backoff.max(base))
    }

    /// The wait before repetition number `retry`, as [`Self::delay`], or `None` when the
    /// server's `Retry-After` exceeds `max_retry_after`.
    #[must_use]
    pub fn wait_before(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry_after.is_some_and(|wait| wait > self.max_retry_after) {
            return None;
        }
        Some(self.delay(retry, retry_after))
    }
}

fn jitter_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// Whether a request may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Idempotent (GET, PUT, DELETE, or a POST whose repeat the caller resolves): repeat
    /// after any transient failure.
    Always,
    /// Not idempotent (creating something): repeat only when the server certainly did not
    /// act — 429 and 503 (answered by a rate limiter or maintenance front before the
    /// application), or a failure to connect (nothing was sent).
    UnprocessedOnly,
}

/// What one attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The server answered with an error status.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No (complete) answer: the transport failed (reqwest's error tells how).
    Transport(&'a reqwest::Error),
    /// No (complete) answer from a client that is not reqwest: `sent` is false when nothing
    /// reached the server (the connection was refused), true when the server may have acted
    /// (a timeout, a connection dropped mid-request). Both are transient.
    NoAnswer { sent: bool },
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sleep this long, then send the request again.
    RetryAfter(Duration),
    /// Stop; `note` says why a transient failure was not retried when that is not obvious.
    GiveUp { note: Option<String> },
}

/// The retry bookkeeping of one logical request.
#[derive(Debug, Clone)]
pub struct RetryState {
    policy: RetryPolicy,
    replay: Replay,
    attempt: u32,
    ambiguous: bool,
}

impl RetryState {
    #[must_use]
    pub fn new(policy: RetryPolicy, replay: Replay) -> Self {
        Self {
            policy,
            replay,
            attempt: 0,
            ambiguous: false,
        }
    }

    /// Counts the attempt about to be sent; returns its number (1-based).
    pub fn start_attempt(&mut self) -> u32 {
        self.attempt += 1;
        self.attempt
    }

    /// Attempts started so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// An earlier attempt may have been processed by the server without us seeing its answer.
    #[must_use]
    pub fn ambiguous(&self) -> bool {
        self.ambiguous
    }

    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Decides after the current attempt failed with `outcome`.
    pub fn decide(&mut self, outcome: Outcome<'_>) -> Decision {
        let (allowed, retry_after, processed_maybe) = match outcome {
            Outcome::Status {
                status,
                retry_after,
            } => {
                let allowed = match self.replay {
                    Replay::Always => is_transient_status(status),
                    Replay::UnprocessedOnly => is_unprocessed_status(status),
                };
                (allowed, retry_after, !is_unprocessed_status(status))
            }
            Outcome::Transport(err) => {
                let allowed = match self.replay {
                    Replay::Always => is_transient_transport(err),
                    Replay::UnprocessedOnly => err.is_connect(),
                };
                (allowed, None, !err.is_connect())
            }
            Outcome::NoAnswer { sent } => {
                let allowed = match self.replay {
                    Replay::Always => true,
                    Replay::UnprocessedOnly => !sent,
                };
                (allowed, None, sent)
            }
        };
        if !allowed {
            return Decision::GiveUp { note: None };
        }
        if self.attempt > self.policy.max_retries {
            return Decision::GiveUp { note: None };
        }
        match self.policy.wait_before(self.attempt, retry_after) {
            Some(wait) => {
                self.ambiguous |= processed_maybe;
                Decision::RetryAfter(wait)
            }
            None => Decision::GiveUp {
                note: retry_after.map(|wait| self.retry_after_note(wait)),
            },
        }
    }

    fn retry_after_note(&self, wait: Duration) -> String {
        let shown = if wait == Duration::MAX {
            "an unbounded time".to_owned()
        } else {
            format!("{:.0}s", wait.as_secs_f64())
        };
        format!(
            "not retried: the server asked to wait {shown} (Retry-After), more than max_retry_after ({:.1}s)",
            self.policy.max_retry_after.as_secs_f64()
        )
    }
}

/// Statuses that mean "try again later": rate limited, or a server/gateway failure.
#[must_use]
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Statuses after which the server certainly did not act on the request.
#[must_use]
pub fn is_unprocessed_status(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// Transport failures worth repeating: connection refused/reset, timeouts, a connection
/// dropped while the request or the answer was on the wire.
#[must_use]
pub fn is_transient_transport(err: &reqwest::Error) -> bool {
    !(err.is_builder() || err.is_redirect() || err.is_status() || err.is_decode())
        && (err.is_connect() || err.is_timeout() || err.is_request() || err.is_body())
}

/// `Retry-After` in seconds (the HTTP-date form is read as "no hint").
#[must_use]
pub fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after_value(value)
}

/// The seconds of a `Retry-After` value. Negative or NaN: meaningless, ignored. Beyond
/// `Duration` (huge, infinite): "longer than any cap", so the caller fails fast instead of
/// panicking or sleeping forever. An HTTP-date: no calendar parsing here; the normal backoff
/// is safe.
#[must_use]
pub fn parse_retry_after_value(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped_and_retry_after_wins() {
        let p = RetryPolicy {
            max_retries: 5,
            ..policy()
        };
        let d1 = p.delay(1, None);
        let d2 = p.delay(2, None);
        assert!(
            d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(126),
            "{d1:?}"
        );
        assert!(
            d2 >= Duration::from_millis(200) && d2 < Duration::from_millis(251),
            "{d2:?}"
        );
        assert!(p.delay(5, None) <= Duration::from_millis(350));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let mut s = RetryState::new(policy(), Replay::Always);
        let outcome = Outcome::Status {
            status: 503,
            retry_after: None,
        };
        let mut tries = 0;
        loop {
            s.start_attempt();
            tries += 1;
            match s.decide(outcome) {
                Decision::RetryAfter(_) => {}
                Decision::GiveUp { note } => {
                    assert_eq!(note, None);
                    break;
                }
            }
        }
        assert_eq!(tries, 3, "one attempt and max_retries repetitions");
    }

    #[test]
    fn what_is_safe_to_repeat() {
        let cases: &[(&str, Replay, u16, bool, bool)] = &[
            // name, replay, status, retried, ambiguous afterwards
            ("get 500", Replay::Always, 500, true, true),
            ("get 503", Replay::Always, 503, true, false),
            ("get 404", Replay::Always, 404, false, false),
            ("create 429", Replay::UnprocessedOnly, 429, true, false),
            ("create 503", Replay::UnprocessedOnly, 503, true, false),
            ("create 500", Replay::UnprocessedOnly, 500, false, false),
            ("create 502", Replay::UnprocessedOnly, 502, false, false),
        ];
        for (name, replay, status, retried, ambiguous) in cases {
            let mut s = RetryState::new(policy(), *replay);
            s.start_attempt();
            let d = s.decide(Outcome::Status {
                status: *status,
                retry_after: None,
            });
            assert_eq!(matches!(d, Decision::RetryAfter(_)), *retried, "{name}");
            assert_eq!(s.ambiguous(), *ambiguous, "{name}");
        }
    }

    #[test]
    fn no_answer_outcomes() {
        let mut s = RetryState::new(policy(), Replay::UnprocessedOnly);
        s.start_attempt();
        assert!(matches!(
            s.decide(Outcome::NoAnswer { sent: false }),
            Decision::RetryAfter(_)
        ));
        assert!(!s.ambiguous());
        s.start_attempt();
        assert_eq!(
            s.decide(Outcome::NoAnswer { sent: true }),
            Decision::GiveUp { note: None },
            "a create that may have been processed is not repeated"
        );
        let mut s = RetryState::new(policy(), Replay::Always);
        s.start_attempt();
        assert!(matches!(
            s.decide(Outcome::NoAnswer { sent: true }),
            Decision::RetryAfter(_)
        ));
        assert!(s.ambiguous());
    }

    #[test]
    fn retry_after_beyond_the_cap_gives_up_with_a_note() {
        let mut s = RetryState::new(policy(), Replay::Always);
        s.start_attempt();
        let d = s.decide(Outcome::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(11)),
        });
        let Decision::GiveUp { note: Some(note) } = d else {
            panic!("{d:?}")
        };
        assert!(
            note.contains("11s") && note.contains("Retry-After"),
            "{note}"
        );
        let mut s = RetryState::new(policy(), Replay::Always);
        s.start_attempt();
        assert_eq!(
            s.decide(Outcome::Status {
                status: 429,
                retry_after: Some(Duration::from_secs(10)),
            }),
            Decision::RetryAfter(Duration::from_secs(10))
        );
    }

    #[test]
    fn retry_after_values() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("7", Some(Duration::from_secs(7))),
            ("1.5", Some(Duration::from_millis(1500))),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
            ("soon", None),
            ("1e30", Some(Duration::MAX)),
            ("99999999999999999999", Some(Duration::MAX)),
            ("inf", Some(Duration::MAX)),
            ("-5", None),
            ("NaN", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after_value(value), *expected, "{value}");
        }
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn extreme_policies_never_panic() {
        let p = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            max_retry_after: Duration::MAX,
        };
        for retry in [0, 1, 2, 30, u32::MAX] {
            assert_eq!(p.delay(retry, None), Duration::MAX);
        }
    }

    #[test]
    fn transient_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 409, 413, 501] {
            assert!(!is_transient_status(s), "{s}");
        }
    }
}
