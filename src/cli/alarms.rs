//! `gatehouse watch add|remove|list` (the watch list whose sightings raise alarms), `gatehouse alarms` (one alarm
//! per line, id first) and `gatehouse alarm ID ack|clear`. Changes are carried out like a lock-out (by the running
//! server, or by a core of our own); the lists are folded from the journal.

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::domain::alarm::{AlarmNumber, RaisedAlarm};
use crate::domain::watch_list::WatchEntry;
use crate::domain::{Aggregate, Alarm, StreamName, SubjectId, WatchList};
use crate::journal::{Actor, JournalReader};
use crate::requests::{OperatorCommand, WatchChange};
use anyhow::{Context, anyhow};
use std::io::Write;

/// `watch add`: puts a subject on a list (or changes its entry).
pub fn watch_add(
    config: Config,
    subject: &str,
    (list, severity): (&str, &str),
    note: Option<&str>,
    until: Option<&str>,
    by: &Actor,
) -> Result<(), Failure> {
    let identifier = SubjectId::parse(subject.trim()).map_err(|e| Failure::Usage(anyhow!("watch add: {e}")))?;
    let vault = super::open_vault(&config)?;
    let sealed = vault.seal(&identifier).map_err(Failure::Runtime)?;
    let entry = WatchEntry::parse(sealed, list, severity, note, until)
        .map_err(|e| Failure::Usage(anyhow!("watch add {subject}: {e}")))?;
    super::operator::run(
        config,
        &OperatorCommand::Watch {
            change: WatchChange::add(entry),
        },
        by,
    )
}

/// `watch remove`: takes a subject off the list.
pub fn watch_remove(config: Config, subject: &str, by: &Actor) -> Result<(), Failure> {
    let identifier = SubjectId::parse(subject.trim()).map_err(|e| Failure::Usage(anyhow!("watch remove: {e}")))?;
    let vault = super::open_vault(&config)?;
    let Some(pseudonym) = vault.find(&identifier).map_err(Failure::Runtime)? else {
        return Err(Failure::Runtime(anyhow!("{subject} is not on the watch list")));
    };
    super::operator::run(
        config,
        &OperatorCommand::Watch {
            change: WatchChange::remove(crate::domain::Subject::unsealed(pseudonym)),
        },
        by,
    )
}

/// `watch list`: subject, list, severity, until, note (tab-separated).
pub fn watch_list(config: &Config) -> Result<(), Failure> {
    let journal = open_journal(config)?;
    let stream = StreamName::of(WatchList::KIND, WatchList::ID).context("the watch list's stream")?;
    let state = crate::history::fold_stream::<WatchList>(&journal, &stream, None, |event| match event {
        crate::codec::AnyEvent::WatchList(e) => Some(e),
        _ => None,
    })?
    .map(|(state, _)| state)
    .unwrap_or_default();
    if state.entries.is_empty() {
        eprintln!(
            "gatehouse: the watch list is empty (add with `gatehouse watch add SUBJECT --list banned --severity major`)"
        );
    }
    let vault = super::open_vault(config)?;
    let mut out = std::io::stdout().lock();
    for entry in state.entries.values() {
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\n",
            vault.reveal(&entry.subject.pseudonym),
            entry.list,
            entry.severity,
            entry.until.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            entry.note.as_deref().unwrap_or("-").replace(['\t', '\n'], " "),
        );
        if out.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    Ok(())
}

/// `alarms`: id, severity, state, type, source, last seen, count; active first, then by severity and newest.
pub fn list(config: &Config, active_only: bool) -> Result<(), Failure> {
    let journal = open_journal(config)?;
    let mut alarms = all(config, &journal)?;
    alarms.retain(|(_, alarm)| alarm.active || !active_only);
    alarms.sort_by(|(a_number, a), (b_number, b)| {
        (b.active, b.severity, b.last_seen, b_number).cmp(&(a.active, a.severity, a.last_seen, a_number))
    });
    if alarms.is_empty() {
        eprintln!(
            "gatehouse: no {}alarms (a watched subject seen or a forced passage raises one)",
            if active_only { "active " } else { "" }
        );
    }
    let tz = &config.site.timezone;
    let vault = super::open_vault(config)?;
    let mut out = std::io::stdout().lock();
    for (number, alarm) in alarms {
        let line = format!(
            "{number}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            alarm.severity,
            alarm.state_name(),
            alarm.alarm_type,
            vault.reveal_text(&alarm.source.to_string()),
            crate::web::local_time(tz, alarm.last_seen.as_microsecond()),
            alarm.count,
        );
        if out.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    Ok(())
}

/// `alarm ID ack|clear`.
pub fn step(config: Config, alarm: &str, step: &str, note: Option<&str>, by: &Actor) -> Result<(), Failure> {
    let command =
        OperatorCommand::alarm(alarm, step, note).map_err(|e| Failure::Usage(anyhow!("alarm {alarm}: {e}")))?;
    super::operator::run(config, &command, by)
}

fn open_journal(config: &Config) -> anyhow::Result<JournalReader> {
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    crate::db::upgrade_journal(&paths.journal())?;
    JournalReader::open(&paths.journal())
}

/// Every alarm, folded from its stream.
fn all(config: &Config, journal: &JournalReader) -> anyhow::Result<Vec<(AlarmNumber, RaisedAlarm)>> {
    let conn = crate::db::open_readonly(&StoragePaths::new(&config.storage.dir).journal())?;
    let mut statement = conn.prepare("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'alarm:%'")?;
    let streams = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut alarms = Vec::with_capacity(streams.len());
    for stream in streams {
        let stream = StreamName::parse(&stream)?;
        let Ok(number) = AlarmNumber::parse(stream.id()) else {
            continue;
        };
        let folded = crate::history::fold_stream::<Alarm>(journal, &stream, None, |event| match event {
            crate::codec::AnyEvent::Alarm(e) => Some(e),
            _ => None,
        })?;
        if let Some(alarm) = folded.and_then(|(state, _)| state.alarm) {
            alarms.push((number, alarm));
        }
    }
    Ok(alarms)
}
