//! Dead letters (SPEC §3): listing, discarding and re-driving device messages that could not become events.
//!
//! Only the running core may append to the journal, yet `gatehouse dead-letters --redrive` may run while
//! `gatehouse serve` runs in another process. So a re-drive is a request, not an action: the command marks
//! letters `redrive_requested` in `journal.db` with an ordinary short transaction, and whichever core owns the
//! data directory ([`spawn_redrive_loop`] in the server, or a core the command starts itself when no server
//! runs: `cli::dead_letters`) feeds them through the ingest pipeline and marks them `redriven` with the outcome.

use crate::config::Synchronous;
use crate::ingest::{Arrival, Ingested, Ingestor, Received};
use crate::journal::Actor;
use crate::journal::{from_micros, micros};
use anyhow::{Context, bail};
use jiff::Timestamp;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the running server looks for re-drive requests: short enough that `--redrive` feels immediate,
/// long enough that an idle server's query costs nothing noticeable.
pub const REDRIVE_POLL: Duration = Duration::from_millis(500);

/// How long `redrive` waits for a running server that makes no progress before giving up.
pub const SERVER_WAIT: Duration = Duration::from_secs(10);

/// What the listing prints when there is nothing to show.
pub const EMPTY_LISTING: &str = "no dead letters: every message received so far became events";

/// Payloads and topics longer than this many characters are cut in the listing, so one row stays one line.
pub const SHOWN_CHARS: usize = 80;

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Kept, waiting for an admin.
    Open,
    /// An admin asked for a re-drive; the core that owns the journal has not done it yet.
    RedriveRequested,
    /// Fed through the pipeline again; `outcome` says what became of it.
    Redriven,
    /// Dropped by an admin: never re-driven.
    Discarded,
}

impl Status {
    fn as_sql(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::RedriveRequested => "redrive_requested",
            Status::Redriven => "redriven",
            Status::Discarded => "discarded",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Open => "open",
            Status::RedriveRequested => "waiting to be re-driven",
            Status::Redriven => "redriven",
            Status::Discarded => "discarded",
        })
    }
}

impl FromSql for Status {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "open" => Ok(Status::Open),
            "redrive_requested" => Ok(Status::RedriveRequested),
            "redriven" => Ok(Status::Redriven),
            "discarded" => Ok(Status::Discarded),
            other => Err(FromSqlError::Other(
                format!("unknown dead letter status {other:?}").into(),
            )),
        }
    }
}

/// One kept message with its reason and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at: Timestamp,
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason: String,
    pub status: Status,
    /// When it was re-driven or discarded.
    pub resolved_at: Option<Timestamp>,
    /// What the re-drive did ("recorded 2 events", "dead letter 17: <reason>", ...); set once redriven.
    pub outcome: Option<String>,
    /// The dead letter the re-drive produced when the message failed again.
    pub redriven_to: Option<i64>,
    /// Who sent it (`None` for letters kept before senders were recorded).
    pub actor: Option<Actor>,
    /// Who asked for its re-drive.
    pub redrive_by: Option<Actor>,
}

/// Which letters to re-drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    One(i64),
    AllOpen,
}

/// One letter the core has just re-driven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    pub id: i64,
    pub ingested: Ingested,
    /// The sentence stored in the letter's `outcome`.
    pub outcome: String,
}

const COLUMNS: &str =
    "id, received_at, topic, payload, reason, status, resolved_at, outcome, redriven_to, actor, redrive_by";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        received_at: from_micros(row.get(1)?),
        topic: row.get(2)?,
        payload: row.get(3)?,
        reason: row.get(4)?,
        status: row.get(5)?,
        resolved_at: row.get::<_, Option<i64>>(6)?.map(from_micros),
        outcome: row.get(7)?,
        redriven_to: row.get(8)?,
        actor: row.get::<_, Option<String>>(9)?.map(Actor::from_stored),
        redrive_by: row.get::<_, Option<String>>(10)?.map(Actor::from_stored),
    })
}

/// Opens `journal.db` for the short status updates this module makes. A missing file is an error rather than
/// a new empty journal: it almost always means the wrong config or working directory. Migrating here lets the
/// command line work on a journal no newer server has opened yet (it is a no-op when up to date).
pub fn open_journal(path: &Path) -> anyhow::Result<Connection> {
    if !path.exists() {
        bail!(
            "{}: no such database (has `gatehouse serve` run with this config?)",
            path.display()
        );
    }
    let mut conn = crate::db::open(path, Synchronous::Full)?;
    crate::db::migrate_journal(&mut conn)?;
    Ok(conn)
}

fn select(conn: &Connection, condition: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE {condition} ORDER BY id");
    let mut statement = conn.prepare(&sql)?;
    let letters = statement
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()
        .context("journal.db: cannot read dead letters")?;
    Ok(letters)
}

/// The letters with `ids`, in that order; an id that does not exist is an error.
pub fn select_ids(conn: &Connection, ids: &[i64]) -> anyhow::Result<Vec<DeadLetter>> {
    let mut statement = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = ?1"))?;
    ids.iter()
        .map(|&id| {
            statement
                .query_row([id], from_row)
                .optional()
                .context("journal.db: cannot read dead letters")?
                .with_context(|| format!("dead letter {id} does not exist"))
        })
        .collect()
}

fn status_of(conn: &Connection, id: i64) -> anyhow::Result<Status> {
    conn.query_row("SELECT status FROM dead_letters WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .context("journal.db: cannot read dead letters")?
        .with_context(|| format!("dead letter {id} does not exist"))
}

/// One page of the letters still waiting for an admin, newest first: at most `limit` with ids below `before`
/// (all when `None`), and how many are waiting in all.
pub fn page(journal_path: &Path, before: Option<i64>, limit: usize) -> anyhow::Result<(Vec<DeadLetter>, i64)> {
    let conn = open_journal(journal_path)?;
    let waiting = "status IN ('open', 'redrive_requested')";
    let total: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM dead_letters WHERE {waiting}"), [], |r| {
        r.get(0)
    })?;
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE {waiting} AND id < ?1 ORDER BY id DESC LIMIT ?2");
    let mut statement = conn.prepare(&sql)?;
    let letters = statement
        .query_map(params![before.unwrap_or(i64::MAX), limit as i64], from_row)?
        .collect::<Result<Vec<_>, _>>()
        .context("journal.db: cannot read dead letters")?;
    Ok((letters, total))
}

/// The dead letters still waiting for an admin (open or waiting to be re-driven), oldest first; with
/// `include_resolved` also the redriven and discarded ones.
pub fn list(journal_path: &Path, include_resolved: bool) -> anyhow::Result<Vec<DeadLetter>> {
    let conn = open_journal(journal_path)?;
    if include_resolved {
        select(&conn, "1")
    } else {
        select(&conn, "status IN ('open', 'redrive_requested')")
    }
}

/// Dead letters received at `since` or later, counted per sender, for the alarms policy's dead-letter rate.
/// Letters a re-drive produced (their actor is the person or command that asked for it) are not a gateway's.
pub fn recent_by_sender(conn: &Connection, since: Timestamp) -> anyhow::Result<Vec<crate::policy::SenderDeadLetters>> {
    let mut statement = conn.prepare_cached(
        "SELECT actor, COUNT(*), MAX(id) FROM dead_letters
         WHERE received_at >= ?1 AND actor IS NOT NULL AND actor NOT LIKE 'cli:%' AND actor NOT LIKE 'user:%'
         GROUP BY actor",
    )?;
    let rows = statement
        .query_map([micros(since)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()
        .context("journal.db: cannot count recent dead letters")?;
    let mut senders: Vec<crate::policy::SenderDeadLetters> = Vec::new();
    for (actor, count, last_id) in rows {
        let sender = crate::journal::sender_of(&actor);
        let count = count.max(0) as u64;
        match senders.iter_mut().find(|s| s.sender == sender) {
            Some(known) => {
                known.count += count;
                known.last_id = known.last_id.max(last_id);
            }
            None => senders.push(crate::policy::SenderDeadLetters {
                sender: sender.to_owned(),
                count,
                last_id,
            }),
        }
    }
    Ok(senders)
}

/// Asks for letters to be re-driven by the core that owns the journal, and returns the ids to wait for.
///
/// Asking again for a letter whose request is still pending is not an error: it returns the id, so a command
/// that gave up waiting (the server was down) can simply be run again. `AllOpen` likewise includes requests
/// still pending from earlier.
pub fn request_redrive(journal_path: &Path, which: Which, by: &Actor) -> anyhow::Result<Vec<i64>> {
    let mut conn = open_journal(journal_path)?;
    // IMMEDIATE: check and update under one write lock, so a concurrent discard cannot slip in between.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = match which {
        Which::One(id) => {
            match status_of(&tx, id)? {
                Status::Open => {
                    tx.execute(
                        "UPDATE dead_letters SET status = ?2, redrive_by = ?3 WHERE id = ?1",
                        params![id, Status::RedriveRequested.as_sql(), by.as_str()],
                    )?;
                }
                Status::RedriveRequested => {}
                status => bail!("dead letter {id} is already {status}"),
            }
            vec![id]
        }
        Which::AllOpen => {
            tx.execute(
                "UPDATE dead_letters SET status = ?1, redrive_by = ?3 WHERE status = ?2",
                params![Status::RedriveRequested.as_sql(), Status::Open.as_sql(), by.as_str()],
            )?;
            let mut statement = tx.prepare("SELECT id FROM dead_letters WHERE status = ?1 ORDER BY id")?;
            statement
                .query_map([Status::RedriveRequested.as_sql()], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?
        }
    };
    tx.commit().context("journal.db: cannot request the re-drive")?;
    Ok(ids)
}

/// Discards an open letter: it stays in the journal (hidden from the default listing) and is never re-driven.
pub fn discard(journal_path: &Path, id: i64) -> anyhow::Result<()> {
    let mut conn = open_journal(journal_path)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match status_of(&tx, id)? {
        Status::Open => {
            tx.execute(
                "UPDATE dead_letters SET status = ?2, resolved_at = ?3 WHERE id = ?1",
                params![id, Status::Discarded.as_sql(), micros(Timestamp::now())],
            )?;
        }
        // The core may be feeding it through the pipeline right now; discarding it then would hide events
        // that were recorded.
        Status::RedriveRequested => bail!("dead letter {id} is waiting to be re-driven and cannot be discarded"),
        status => bail!("dead letter {id} is already {status}"),
    }
    tx.commit().context("journal.db: cannot discard the dead letter")?;
    Ok(())
}

/// Polls until none of `ids` is waiting to be re-driven any more (the running server handled them) and returns
/// them. Gives up when `timeout` passes without the server re-driving any of them: a long list takes as long
/// as it takes, but a server that stopped working is reported.
pub fn wait_for_redrive(journal_path: &Path, ids: &[i64], timeout: Duration) -> anyhow::Result<Vec<DeadLetter>> {
    let conn = open_journal(journal_path)?;
    let mut deadline = Instant::now() + timeout;
    let mut waiting_before = usize::MAX;
    loop {
        let letters = select_ids(&conn, ids)?;
        let waiting: Vec<i64> = letters
            .iter()
            .filter(|l| l.status == Status::RedriveRequested)
            .map(|l| l.id)
            .collect();
        if waiting.is_empty() {
            return Ok(letters);
        }
        let now = Instant::now();
        if waiting.len() < waiting_before {
            waiting_before = waiting.len();
            deadline = now + timeout;
        } else if now >= deadline {
            bail!(
                "the running server did not re-drive {} within {}: is it healthy? (see /healthz)",
                name_letters(&waiting),
                show_duration(timeout)
            );
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline.saturating_duration_since(now)));
    }
}

/// "dead letter 3", "dead letters 3, 4", at most ten ids then "and 5 more".
fn name_letters(ids: &[i64]) -> String {
    const SHOWN: usize = 10;
    let mut text = if ids.len() == 1 {
        "dead letter "
    } else {
        "dead letters "
    }
    .to_owned();
    let shown: Vec<String> = ids.iter().take(SHOWN).map(i64::to_string).collect();
    text.push_str(&shown.join(", "));
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

/// "10s", "1.5s", "300ms": how an operator writes durations in config.toml.
fn show_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// Runs blocking SQLite work off the async executor thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("dead letters: a blocking task failed")?
}

/// The sentence stored as a re-drive's outcome.
fn describe(ingested: &Ingested) -> (String, Option<i64>) {
    match ingested {
        Ingested::Recorded { events: 1, .. } => ("recorded 1 event".into(), None),
        Ingested::Recorded { events, .. } => (format!("recorded {events} events"), None),
        Ingested::Duplicate => ("duplicate: the message was already recorded".into(), None),
        Ingested::DeadLettered { id, reason } => (format!("dead letter {id}: {reason}"), Some(*id)),
        // Re-drives are never over quota; should one be, it says so.
        Ingested::OverQuota { reason } => (format!("not kept (over quota): {reason}"), None),
    }
}

/// Re-drives every requested letter, oldest first, through `ingestor` with its original receive time, and marks
/// each `redriven` with the outcome. A journal error stops the run and leaves the letter requested, so the next
/// run retries it. Call only from the core that owns the journal (the only one that may append).
///
/// At least once: a crash between the ingest and the mark re-drives the letter again on the next run; a message
/// with a `msg_id` is then recognised as a duplicate.
pub async fn process_redrive_requests(ingestor: &Ingestor, journal_path: &Path) -> anyhow::Result<Vec<Redriven>> {
    // Two runs at once (the loop and, say, a page) would both ingest the same letter. One core per process, so
    // a process-wide lock is enough.
    static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _running = ONE_RUN_AT_A_TIME.lock().await;
    let path = journal_path.to_owned();
    let requested = blocking(move || select(&open_journal(&path)?, "status = 'redrive_requested'")).await?;
    let mut done = Vec::with_capacity(requested.len());
    for letter in requested {
        let ingested = ingestor
            .ingest(Received {
                topic: &letter.topic,
                payload: &letter.payload,
                received_at: letter.received_at,
                actor: letter.redrive_by.clone().unwrap_or_else(Actor::cli),
                arrival: Arrival::Redrive { dead_letter: letter.id },
                gateway: None,
            })
            .await
            .with_context(|| format!("dead letter {}: cannot re-drive it (will retry)", letter.id))?;
        let (outcome, redriven_to) = describe(&ingested);
        let path = journal_path.to_owned();
        let stored = outcome.clone();
        let id = letter.id;
        blocking(move || {
            let conn = open_journal(&path)?;
            conn.execute(
                "UPDATE dead_letters SET status = ?2, resolved_at = ?3, outcome = ?4, redriven_to = ?5
                 WHERE id = ?1 AND status = ?6",
                params![
                    id,
                    Status::Redriven.as_sql(),
                    micros(Timestamp::now()),
                    stored,
                    redriven_to,
                    Status::RedriveRequested.as_sql()
                ],
            )
            .with_context(|| format!("dead letter {id}: re-driven, but cannot record that"))?;
            Ok(())
        })
        .await?;
        tracing::info!(id, %outcome, "dead letter re-driven");
        done.push(Redriven { id, ingested, outcome });
    }
    Ok(done)
}

/// Starts the running server's re-drive loop on the current actix system: every [`REDRIVE_POLL`] it re-drives
/// whatever was requested, until the system stops.
pub fn spawn_redrive_loop(ingestor: Ingestor, journal_path: PathBuf) {
    crate::inbox::spawn_polling("re-drive dead letters", REDRIVE_POLL, move || {
        let (ingestor, journal_path) = (ingestor.clone(), journal_path.clone());
        async move { process_redrive_requests(&ingestor, &journal_path).await.map(|_| ()) }
    });
}

/// Message text as one printable line: control characters escaped (`\n`, `\u{1b}`) so a hostile or binary
/// payload cannot garble the terminal, cut to `max_chars` with an ellipsis.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut shown = String::new();
    let mut count = 0;
    for c in text.chars() {
        let escaped: String = if crate::visible::is_hidden(c) {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        count += escaped.chars().count();
        if count > max_chars {
            // Leave room for the ellipsis.
            let keep = max_chars.saturating_sub(1);
            let mut cut: String = shown.chars().take(keep).collect();
            cut.push('…');
            return cut;
        }
        shown.push_str(&escaped);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_and_cuts_long_text() {
        assert_eq!(printable("a\nb\u{1b}[31m", 80), "a\\nb\\u{1b}[31m");
        assert_eq!(printable("abcdef", 4), "abc…");
        assert_eq!(printable("abcd", 4), "abcd");
    }

    #[test]
    fn durations_and_id_lists_read_naturally() {
        assert_eq!(show_duration(Duration::from_secs(10)), "10s");
        assert_eq!(show_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(name_letters(&[3]), "dead letter 3");
        assert_eq!(name_letters(&[3, 4]), "dead letters 3, 4");
        assert_eq!(
            name_letters(&(1..=12).collect::<Vec<_>>()),
            "dead letters 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more"
        );
    }
}
