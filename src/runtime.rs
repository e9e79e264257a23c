//! The engine's private tokio runtime and TLS provider set-up.
//!
//! Blocking Python calls run `runtime().block_on(...)` with the GIL released; awaitable
//! ones hand futures to `pyo3_async_runtimes`, which shares this runtime.

use std::sync::OnceLock;

/// Installs the `ring` rustls crypto provider once (reqwest with `rustls-no-provider`
/// panics when building a client without it).
pub fn init_tls() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The process-wide multi-threaded runtime.
///
/// # Panics
/// Only if the OS refuses to start the runtime's threads, which leaves nothing to run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        init_tls();
        #[allow(clippy::expect_used)]
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("kipoi-containers")
            .build()
            .expect("could not start the tokio runtime")
    })
}
