//! One-line rendering of an error and its `#[source]` causes, shared by log lines and
//! the messages raised to Python.

/// `outer: cause: cause`, skipping causes whose text the message already contains
/// (reqwest and io errors often repeat their source).
#[must_use]
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !msg.contains(&text) {
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
    struct Outer(#[source] std::io::Error);

    #[test]
    fn renders_causes_once() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(super::chain(&e), "outer: disk full");
    }
}
