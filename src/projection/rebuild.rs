//! Blue/green rebuild: replays the journal from position 0 into fresh tables in a side database, then swaps
//! their contents into `views.db` in one transaction. Pages keep reading the old tables until that commit, and
//! a running server's projector simply continues from the swapped-in checkpoint. After archival, the archived
//! events are read back in from the archive files (checked against their manifest) into a scratch journal, so a
//! rebuild counts what the tables counted before; an archive that is missing or does not verify stops the
//! rebuild, and the tables stay as they are.

use super::{Projection, catch_up};
use crate::config::OnError;
use crate::journal::{JournalReader, Position};
use anyhow::Context;
use std::path::Path;

/// Rebuilds `projections` from the journal; `progress(name, position)` is told how far each has got.
/// Returns the position each projection was swapped in at.
pub fn rebuild(
    projections: Vec<Box<dyn Projection>>,
    journal_path: &Path,
    views_path: &Path,
    archive_dir: &Path,
    on_error: OnError,
    mut progress: impl FnMut(&str, Position),
) -> anyhow::Result<Vec<(&'static str, Position)>> {
    let side_path = views_path.with_file_name(format!("views.rebuild-{}.db", std::process::id()));
    let scratch_journal = views_path.with_file_name(format!("journal.rebuild-{}.db", std::process::id()));
    // Left-over side files from a crashed rebuild are just stale: start clean.
    remove_db_files(&side_path);
    remove_db_files(&scratch_journal);
    let archived = crate::archive::archived_up_to(JournalReader::open(journal_path)?.connection())?;
    let result = (|| {
        let source = if archived > 0 {
            tracing::info!(
                archived_up_to = archived,
                "reading the archived events back in for the rebuild"
            );
            crate::archive::restore::journal_with_archives(journal_path, archive_dir, &scratch_journal)?;
            scratch_journal.as_path()
        } else {
            journal_path
        };
        rebuild_via(projections, source, views_path, &side_path, on_error, &mut progress)
    })();
    remove_db_files(&side_path);
    remove_db_files(&scratch_journal);
    result
}

fn rebuild_via(
    mut projections: Vec<Box<dyn Projection>>,
    journal_path: &Path,
    views_path: &Path,
    side_path: &Path,
    on_error: OnError,
    progress: &mut impl FnMut(&str, Position),
) -> anyhow::Result<Vec<(&'static str, Position)>> {
    let journal = JournalReader::open(journal_path)?;
    let mut side = crate::db::open(side_path, crate::config::Synchronous::Normal)?;
    // The side file is disposable: a crash during the rebuild just means running it again.
    side.pragma_update(None, "synchronous", "OFF")?;
    crate::db::migrate_views(&mut side)?;
    let mut built = Vec::new();
    for projection in projections.iter_mut() {
        let name = projection.name();
        let position = catch_up(projection.as_mut(), &journal, &mut side, on_error, |p| {
            progress(name, p)
        })
        .with_context(|| format!("rebuild of {name}"))?;
        built.push((name, position));
    }
    drop(side);

    let mut views = crate::db::open(views_path, crate::config::Synchronous::Normal)?;
    crate::db::migrate_views(&mut views)?;
    views.execute("ATTACH DATABASE ?1 AS fresh", [side_path.to_string_lossy()])?;
    let swap = (|| -> anyhow::Result<()> {
        let tx = views.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for projection in &projections {
            for table in projection.tables() {
                tx.execute_batch(&format!(
                    "DELETE FROM main.{table}; INSERT INTO main.{table} SELECT * FROM fresh.{table};"
                ))?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO main.projector_checkpoints SELECT * FROM fresh.projector_checkpoints
                 WHERE projection = ?1",
                [projection.name()],
            )?;
            // What the fresh tables parked replaces what the old ones had parked.
            tx.execute(
                "DELETE FROM main.parked_events WHERE follower = ?1",
                [projection.name()],
            )?;
            tx.execute(
                "INSERT INTO main.parked_events SELECT * FROM fresh.parked_events WHERE follower = ?1",
                [projection.name()],
            )?;
            tx.execute(
                "INSERT INTO main.rebuilds (projection, generation) VALUES (?1, 1)
                 ON CONFLICT (projection) DO UPDATE SET generation = generation + 1",
                [projection.name()],
            )?;
        }
        tx.commit()?;
        Ok(())
    })();
    views.execute("DETACH DATABASE fresh", [])?;
    swap.context("swapping rebuilt tables into views.db")?;
    Ok(built)
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}
