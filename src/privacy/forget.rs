//! Forgetting a person (GDPR erasure), on the core that owns the journal: their watch-list entry is taken off,
//! the erasure is recorded on their presence stream (`SubjectForgotten`, which names nobody), then their row in the
//! subject vault is deleted (its key overwritten in place, `secure_delete`) and the journal's write-ahead log is
//! checkpointed and emptied, so the key is in neither file. Every stored event keeps its shape; wherever the
//! person was shown (pages, CSV, `gatehouse events`, notifications) they read as "forgotten" from then on.
//!
//! Nothing needs rebuilding: read tables, policy memories, the notification outbox and archives hold the
//! pseudonym only and are revealed through the vault when shown. The erasure event is recorded before the key is
//! destroyed, so a crash in between leaves a person who can still be forgotten again (the second time records
//! nothing new and destroys the key).

use super::SubjectVault;
use crate::actors::{CommandError, CommandOutcome, Meta, Registry};
use crate::domain::presence::PresenceCommand;
use crate::domain::watch_list::{WatchListCommand, WatchListRejection};
use crate::domain::{Presence, Pseudonym, Subject, WatchList};
use crate::journal::Position;
use crate::requests::Done;

/// How often emptying the write-ahead log is tried while readers hold it.
const CHECKPOINT_TRIES: u32 = 20;

pub async fn carry_out(
    registry: &Registry,
    vault: &SubjectVault,
    person: &Pseudonym,
    meta: Meta,
    at: jiff::Timestamp,
) -> Result<Done, String> {
    let remove = WatchListCommand::Remove {
        subject: Subject::unsealed(person.clone()),
        at,
    };
    let mut last: Option<Position> = None;
    match registry
        .execute_or_start::<WatchList>(WatchList::ID, remove, meta.clone())
        .await
    {
        Ok(CommandOutcome::Recorded { position, .. }) => last = position.or(last),
        Ok(CommandOutcome::Duplicate) | Err(CommandError::Rejected(WatchListRejection::NotListed(_))) => {}
        Err(error) => return Err(format!("the watch list: {error}")),
    }
    match registry
        .execute_or_start::<Presence>(person.as_str(), PresenceCommand::Forget { at }, meta)
        .await
    {
        Ok(CommandOutcome::Recorded { position, .. }) => last = position.or(last),
        Ok(CommandOutcome::Duplicate) => {}
        Err(CommandError::Rejected(never)) => match never {},
        Err(error) => return Err(format!("the erasure: {error}")),
    }
    let (vault, pseudonym) = (vault.clone(), person.clone());
    let had_key = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let had_key = vault.forget_pseudonym(&pseudonym)?;
        if let Err(error) = vault.with_connection(empty_write_ahead_log) {
            tracing::warn!(error = %format!("{error:#}"), "forgetting a person");
        }
        Ok(had_key)
    })
    .await
    .map_err(|e| format!("forgetting: {e}"))?
    .map_err(|e| format!("forgetting: {e:#}"))?;
    let text = if had_key {
        "the person is forgotten: their key is destroyed, and they read as \"forgotten\" everywhere"
    } else {
        "the person was forgotten already (their key was destroyed before)"
    };
    Ok(Done {
        text: text.to_owned(),
        position: last,
    })
}

/// Checkpoints the journal and truncates its write-ahead log, so the deleted key's old page images go too. Readers
/// (pages, followers) can hold the log for a moment: tried again, each try waiting briefly, until they let go.
fn empty_write_ahead_log(conn: &rusqlite::Connection) -> anyhow::Result<()> {
    // Free pages go back to the file system (journals made with incremental auto-vacuum; a no-op otherwise).
    conn.execute_batch("PRAGMA incremental_vacuum")?;
    conn.busy_timeout(std::time::Duration::from_millis(100))?;
    let mut emptied = false;
    for _ in 0..CHECKPOINT_TRIES {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap_or(1);
        if busy == 0 {
            emptied = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    conn.busy_timeout(crate::db::BUSY_TIMEOUT)?;
    anyhow::ensure!(
        emptied,
        "the journal's write-ahead log stayed in use; the key is deleted from the journal (overwritten in place), and \
         its old page images leave the log at a later checkpoint"
    );
    Ok(())
}
