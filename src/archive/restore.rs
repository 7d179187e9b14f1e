//! Reading the archives back in: a scratch journal holding the archived events (from the files, checked against
//! the manifest first) and every live event, so a rebuild of the read tables after archival counts everything
//! it counted before. The live journal is only read.

use super::files;
use crate::codec::CARRIED_FORWARD;
use anyhow::{Context, anyhow};
use base64::Engine;
use std::path::Path;

/// Builds `scratch` (a new journal file) from the archive in `dir` and the live events of `journal`. Refuses,
/// saying why, when the archive does not cover every archived position or does not verify.
pub fn journal_with_archives(journal: &Path, dir: &Path, scratch: &Path) -> anyhow::Result<()> {
    // No archival moves rows while the two sources are read, so every event is in exactly one of them.
    let _lock = super::lock(dir)?;
    let archived_up_to = super::archived_up_to(crate::journal::JournalReader::open(journal)?.connection())?;
    let verified = files::verify(dir)?;
    if !verified.problems.is_empty() {
        return Err(anyhow!(
            "the events up to position {archived_up_to} are archived in {}, and the archive does not verify ({}); \
             the read tables are left as they are",
            dir.display(),
            verified.problems.join("; ")
        ));
    }
    let entries = files::entries(dir)?;
    let covered = entries.last().map_or(0, |e| e.last_position);
    if covered < archived_up_to {
        return Err(anyhow!(
            "the events up to position {archived_up_to} are archived, but {} holds them only up to {covered}; \
             the read tables are left as they are",
            dir.display()
        ));
    }
    let mut conn = crate::db::open(scratch, crate::config::Synchronous::Normal)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    crate::db::migrate_journal(&mut conn)?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at, recorded_at,
                                 causation, payload, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for entry in &entries {
            files::for_each_line(&dir.join(&entry.file), |line| {
                let text = |key: &str| line[key].as_str().map(str::to_owned);
                let micros = |key: &str| -> anyhow::Result<i64> {
                    let at: jiff::Timestamp = text(key)
                        .ok_or_else(|| anyhow!("{}: an event without {key}", entry.file))?
                        .parse()?;
                    Ok(at.as_microsecond())
                };
                let payload = base64::engine::general_purpose::STANDARD
                    .decode(text("payload").unwrap_or_default())
                    .with_context(|| format!("{}: a payload that is not base64", entry.file))?;
                insert.execute(rusqlite::params![
                    line["position"].as_i64(),
                    text("stream"),
                    line["version"].as_i64(),
                    text("type"),
                    line["schema"].as_i64(),
                    line["format"].as_i64(),
                    micros("occurred_at")?,
                    micros("recorded_at")?,
                    text("causation"),
                    payload,
                    text("actor"),
                ])?;
                Ok(())
            })?;
        }
    }
    tx.execute("ATTACH DATABASE ?1 AS live", [journal.to_string_lossy()])?;
    tx.execute(
        &format!(
            "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at, recorded_at,
                                 causation, payload, actor)
             SELECT position, stream_id, version, event_type, schema, format, occurred_at, recorded_at, causation,
                    payload, actor
             FROM live.events WHERE position > ?1 AND event_type <> '{CARRIED_FORWARD}'"
        ),
        // A stopped run may have written files beyond what it removed: those events come from the files.
        [archived_up_to.max(covered) as i64],
    )?;
    tx.commit()?;
    conn.execute("DETACH DATABASE live", [])?;
    Ok(())
}
