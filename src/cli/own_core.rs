//! For commands that change state: whether a running server owns the data directory (then it does the work
//! they request in `journal.db`), and a core of their own to do it when none does.

use crate::app::Core;
use crate::config::Config;
use crate::db::StoragePaths;

/// Whether a running server (or another command) holds the data directory's lock. Probing takes the lock for a
/// moment and releases it at once.
pub fn server_holds(paths: &StoragePaths) -> anyhow::Result<bool> {
    Ok(crate::db::try_lock_data_dir(paths)?.is_none())
}

/// Starts a core in a fresh actix system (taking the data directory's lock; like a server's start, it
/// commissions devices newly added to `config.toml`), runs `work` on it, and stops it, waiting until the
/// writer has committed everything.
pub fn run<T: 'static>(
    config: Config,
    work: impl AsyncFnOnce(&Core) -> anyhow::Result<T> + 'static,
) -> anyhow::Result<T> {
    let system = actix_web::rt::System::new();
    let (result, stopped) = system.block_on(async move {
        let core = Core::start(config).await?;
        let result = work(&core).await;
        anyhow::Ok((result, core.stop()))
    })?;
    // Dropping the system drops the actors and their writer handles, so the writer finishes and can be joined.
    drop(system);
    stopped.join();
    result
}
