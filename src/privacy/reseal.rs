//! The one-time re-encryption of a journal written before identifiers were sealed: every event body that carried
//! a person's identifier in clear is rewritten in place (same position, stream, version and times; a newer schema)
//! with the identifier sealed under the person's key, in one transaction under a `reseal_grant` the append-only
//! triggers allow. Snapshots of the kinds that name people are dropped (a cache; they are taken again) and dead
//! letters get their subject fields sealed. Runs at every open and finds nothing to do after the first.

use super::SubjectVault;
use super::dead_letters::seal_payload_subjects;
use crate::codec::Resealer;
use crate::codec::reseal::SEALED_SINCE;
use anyhow::Context;
use rusqlite::{Connection, params};

/// What one run rewrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    pub events: u64,
    pub dead_letters: u64,
}

/// Rewrites every body still in clear; nothing when there is none.
pub fn reseal_journal(conn: &mut Connection, vault: &SubjectVault) -> anyhow::Result<Resealed> {
    let in_clear = SEALED_SINCE
        .iter()
        .map(|(event_type, schema)| format!("(event_type = '{event_type}' AND schema < {schema})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let tx = conn.transaction()?;
    let rows: Vec<(i64, String, String, u32, Vec<u8>)> = {
        let mut statement = tx.prepare(&format!(
            "SELECT position, stream_id, event_type, schema, payload FROM events WHERE {in_clear} ORDER BY position"
        ))?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()
            .context("journal.db: cannot read the events to re-encrypt")?
    };
    let mut done = Resealed::default();
    if let Some(last) = rows.last().map(|row| row.0) {
        tx.execute("INSERT INTO reseal_grant (up_to) VALUES (?1)", [last])?;
        let mut seal = |subject: &crate::domain::SubjectId| vault.seal_legacy(subject);
        let mut resealer = Resealer::new(&mut seal);
        {
            let mut update = tx.prepare("UPDATE events SET schema = ?1, payload = ?2 WHERE position = ?3")?;
            for (position, stream, event_type, schema, payload) in &rows {
                let rewritten = resealer
                    .reseal(stream, event_type, *schema, payload)
                    .with_context(|| format!("journal.db: cannot re-encrypt the event at position {position}"))?;
                if let Some((schema, payload)) = rewritten {
                    update.execute(params![schema, payload, position])?;
                    done.events += 1;
                }
            }
        }
        tx.execute("DELETE FROM reseal_grant", [])?;
        tx.execute(
            "DELETE FROM snapshots WHERE stream_id LIKE 'presence:%' OR stream_id LIKE 'alarm:%'
                OR stream_id LIKE 'watch_list:%'",
            [],
        )?;
    }
    done.dead_letters = seal_dead_letters(&tx, vault)?;
    tx.commit()?;
    if done != Resealed::default() {
        tracing::info!(
            events = done.events,
            dead_letters = done.dead_letters,
            "re-encrypted the identifiers of events and dead letters written in clear"
        );
    }
    Ok(done)
}

/// Seals the subject fields of dead letters stored before sealing (their payloads are kept as received).
fn seal_dead_letters(tx: &rusqlite::Transaction<'_>, vault: &SubjectVault) -> anyhow::Result<u64> {
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut statement =
            tx.prepare("SELECT id, payload FROM dead_letters WHERE instr(payload, CAST('\"subject\"' AS BLOB)) > 0")?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()
            .context("journal.db: cannot read dead letters")?
    };
    let mut sealed = 0;
    for (id, payload) in rows {
        let rewritten = seal_payload_subjects(&payload, |s| vault.seal_legacy(s))?;
        if rewritten != payload {
            tx.execute(
                "UPDATE dead_letters SET payload = ?1 WHERE id = ?2",
                params![rewritten, id],
            )?;
            sealed += 1;
        }
    }
    Ok(sealed)
}
