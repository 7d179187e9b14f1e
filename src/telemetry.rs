//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info` for gatehouse, `warn` for libraries).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests starting several apps) are harmless no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,gatehouse=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
