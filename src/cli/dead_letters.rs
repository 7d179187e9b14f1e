//! `gatehouse dead-letters`: the listing as a table in the site's time zone, and the re-drive: requested in
//! `journal.db`, then done by the running server, or by a core of our own when no server runs.

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::dead_letters::{self as letters, DeadLetter, Which};
use crate::journal::Actor;
use anyhow::Context;
use jiff::tz::TimeZone;
use std::io::Write;
use std::path::Path;

pub fn run(
    config: Config,
    redrive: Option<i64>,
    redrive_all: bool,
    discard: Option<i64>,
    all: bool,
    by: &crate::journal::Actor,
) -> Result<(), Failure> {
    let journal = StoragePaths::new(&config.storage.dir).journal();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let which = match (redrive, redrive_all) {
        (Some(id), _) => Some(Which::One(id)),
        (None, true) => Some(Which::AllOpen),
        (None, false) => None,
    };
    if let Some(which) = which {
        let done = self::redrive(config, which, by)?;
        print_redriven(&done, &mut out).context("cannot write to stdout")?;
    } else if let Some(id) = discard {
        letters::discard(&journal, id)?;
        writeln!(out, "dead letter {id} discarded").context("cannot write to stdout")?;
    } else {
        let mut list = letters::list(&journal, all)?;
        let vault = super::open_vault(&config)?;
        // Subject fields are stored sealed; people read them as identifiers (or "forgotten").
        for letter in &mut list {
            letter.payload = vault
                .reveal_text(&String::from_utf8_lossy(&letter.payload))
                .into_bytes();
        }
        print_table(&list, &config.site.timezone, &mut out).context("cannot write to stdout")?;
    }
    Ok(())
}

/// What `gatehouse dead-letters --redrive` does: requests the re-drive, then lets the running server do it, or,
/// when no server runs, starts a core of its own (which takes the data directory's lock, and, like a server's
/// start, commissions devices newly added to `config.toml`), re-drives, and stops it. Returns the letters as
/// they ended up.
pub fn redrive(config: Config, which: Which, by: &Actor) -> anyhow::Result<Vec<DeadLetter>> {
    let paths = StoragePaths::new(&config.storage.dir);
    let journal = paths.journal();
    let ids = letters::request_redrive(&journal, which, by)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if super::own_core::server_holds(&paths)? {
        return letters::wait_for_redrive(&journal, &ids, letters::SERVER_WAIT);
    }
    match redrive_with_own_core(config, &journal, &ids) {
        Ok(letters) => Ok(letters),
        // A server started between the check and our core taking the lock: the request is in the journal, the
        // server's loop will handle it.
        Err(_) if super::own_core::server_holds(&paths).unwrap_or(false) => {
            letters::wait_for_redrive(&journal, &ids, letters::SERVER_WAIT)
        }
        Err(error) => Err(error),
    }
}

/// Runs a core of our own just long enough to re-drive the requested letters.
fn redrive_with_own_core(config: Config, journal: &Path, ids: &[i64]) -> anyhow::Result<Vec<DeadLetter>> {
    let journal_path = journal.to_owned();
    super::own_core::run(config, async move |core| {
        letters::process_redrive_requests(&core.state().ingestor, &journal_path).await
    })?;
    letters::select_ids(&letters::open_journal(journal)?, ids)
}

/// Prints the letters as a table in the site's time zone, or a line saying there are none.
pub fn print_table(letters: &[DeadLetter], tz: &TimeZone, out: &mut impl Write) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "{}", letters::EMPTY_LISTING);
    }
    // The status column only when it says something: the default listing is nearly always all open.
    let show_status = letters.iter().any(|l| l.status != letters::Status::Open);
    let mut header = vec![
        "id".to_owned(),
        format!("received ({})", tz.iana_name().unwrap_or("site time")),
        "topic".to_owned(),
        "reason".to_owned(),
    ];
    if show_status {
        header.push("status".to_owned());
    }
    header.push("payload".to_owned());
    let mut rows = vec![header];
    for letter in letters {
        let mut row = vec![
            letter.id.to_string(),
            letter
                .received_at
                .to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string(),
            letters::printable(&letter.topic, letters::SHOWN_CHARS),
            letters::printable(&letter.reason, usize::MAX),
        ];
        if show_status {
            row.push(match (&letter.status, &letter.outcome) {
                (letters::Status::Redriven, Some(outcome)) => {
                    format!("redriven: {}", letters::printable(outcome, usize::MAX))
                }
                (letters::Status::RedriveRequested, _) => "re-drive requested".to_owned(),
                (status, _) => status.to_string(),
            });
        }
        row.push(if letter.payload.is_empty() {
            "(empty)".to_owned()
        } else {
            letters::printable(&String::from_utf8_lossy(&letter.payload), letters::SHOWN_CHARS)
        });
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Prints what a re-drive did, one line per letter.
pub fn print_redriven(letters: &[DeadLetter], out: &mut impl Write) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "no open dead letters to re-drive");
    }
    for letter in letters {
        match (&letter.status, &letter.outcome) {
            (letters::Status::Redriven, Some(outcome)) => {
                writeln!(out, "dead letter {} re-driven: {outcome}", letter.id)?
            }
            (status, _) => writeln!(out, "dead letter {} is {status}", letter.id)?,
        }
    }
    Ok(())
}
