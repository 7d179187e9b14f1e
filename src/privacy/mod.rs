//! People's identifiers and forgetting them: the subject vault (each person's pseudonym and own key), the one-time
//! re-encryption of events written in clear, and `forget`, which destroys a person's key.

pub mod dead_letters;
pub mod forget;
pub mod reseal;
pub mod vault;

pub use vault::{Revealed, SubjectVault};

use crate::config::Config;
use crate::db::StoragePaths;

/// The site's subject vault, after re-encrypting whatever a journal from before sealing still holds in clear. When
/// that rewrote events, every read table is rebuilt from the sealed journal (they held identifiers) and both files
/// are vacuumed, so no page of them keeps one. The first thing a serving core or a command line does with a journal.
pub fn open_and_reseal_blocking(config: &Config, paths: &StoragePaths) -> anyhow::Result<SubjectVault> {
    let vault = SubjectVault::open(&paths.journal())?;
    let mut journal = crate::db::open(&paths.journal(), config.storage.synchronous)?;
    let resealed = reseal::reseal_journal(&mut journal, &vault)?;
    if resealed.events > 0 || resealed.dead_letters > 0 {
        scrub_files(&journal)?;
        drop(journal);
        if paths.views().exists() {
            tracing::warn!("rebuilding every read table from the re-encrypted journal (they held identifiers)");
            crate::projection::rebuild::rebuild(
                crate::projection::all(&config.site.timezone),
                &paths.journal(),
                &paths.views(),
                &config.retention.archive_dir,
                config.followers.on_error,
                |_, _| {},
            )
            .map_err(|e| e.context("the read tables cannot be rebuilt after re-encryption"))?;
            let views = crate::db::open(&paths.views(), config.storage.synchronous)?;
            // The alarm and identification policies' memories held identifiers too (their memory schemas changed,
            // so they would start over anyway): gone before the vacuum, not after it.
            views.execute(
                "DELETE FROM policy_memory WHERE follower IN ('policy:alarms', 'policy:identification')",
                [],
            )?;
            scrub_files(&views)?;
        }
    }
    Ok(vault)
}

/// [`open_and_reseal_blocking`] off the async executor.
pub async fn open_and_reseal(config: &Config, paths: &StoragePaths) -> anyhow::Result<SubjectVault> {
    let (config, paths) = (config.clone(), paths.clone());
    tokio::task::spawn_blocking(move || open_and_reseal_blocking(&config, &paths)).await?
}

/// Rewrites a database file without free pages and empties its write-ahead log, so deleted bytes (a forgotten
/// person's key, identifiers in clear) are nowhere in either file.
pub fn scrub_files(conn: &rusqlite::Connection) -> anyhow::Result<()> {
    use anyhow::Context;
    conn.execute_batch("VACUUM").context("cannot vacuum")?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .context("cannot checkpoint the write-ahead log")?;
    Ok(())
}
