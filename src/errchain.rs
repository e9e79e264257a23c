//! One-line rendering of an error and its `#[source]` causes, shared by log lines and
//! the messages raised to Python.
//!
//! Every error type of the engine names its subject and what failed in its own message and
//! attaches the cause with `#[source]` only (never formatted into the message as well), so
//! each cause is rendered exactly once, here.

/// `outer: cause: cause`.
#[must_use]
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = cause.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn renders_each_cause_once_in_order() {
        let e = Outer(Middle(std::io::Error::other("disk full")));
        assert_eq!(super::chain(&e), "outer: middle: disk full");
    }

    /// No engine error repeats its cause's text in its own message.
    #[test]
    fn engine_errors_do_not_repeat_their_causes() {
        let io = || std::io::Error::other("CAUSE-TEXT");
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(crate::fsutil::AtomicWriteError {
                path: "x".into(),
                step: "s",
                source: io(),
            }),
            Box::new(crate::index::IndexError::Read {
                path: "x".into(),
                source: io(),
            }),
            Box::new(crate::docker::DockerError::Io {
                path: "x".into(),
                step: "s",
                source: io(),
            }),
            Box::new(crate::dockerfile::DockerfileError::ReadTemplate {
                path: "x".into(),
                source: io(),
            }),
            Box::new(crate::zoo::ZooError::GitMissing(io())),
            Box::new(crate::transfer::TransferError::Read {
                path: "x".into(),
                source: io(),
            }),
        ];
        for e in errors {
            assert!(!e.to_string().contains("CAUSE-TEXT"), "{e}");
            assert_eq!(
                super::chain(e.as_ref()).matches("CAUSE-TEXT").count(),
                1,
                "{e}"
            );
        }
    }
}
