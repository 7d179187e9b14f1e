//! The watch list: subjects whose sighting raises an alarm (`banned`, `missing-person`, `vip`), each with a
//! severity, a note and an optional last day. One list per site, in the stream `watch_list:site`; every change is
//! an event with who made it.

use super::Subject;
use super::aggregate::{Aggregate, DomainEvent};
use super::alarm::Severity;
use super::time::timestamp;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The watch list aggregate; the site has one, [`WatchList::ID`].
pub struct WatchList;

impl WatchList {
    /// The one instance's id: its stream is `watch_list:site`.
    pub const ID: &'static str = "site";
}

/// One listed subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEntry {
    pub subject: Subject,
    /// Which list (`banned`, `missing-person`, `vip`): 1 to 64 lowercase letters, digits and `-`.
    pub list: String,
    pub severity: Severity,
    pub note: Option<String>,
    /// The last day (site time) a sighting raises an alarm; none for no end.
    pub until: Option<Date>,
}

impl WatchEntry {
    /// Checks a list name as people type it.
    pub fn parse_list(list: &str) -> Result<String, String> {
        let ok = !list.is_empty()
            && list.len() <= 64
            && list
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(list.to_owned())
        } else {
            Err(format!(
                "list {list:?} must be 1 to 64 lowercase letters, digits and '-' (e.g. banned)"
            ))
        }
    }

    /// An entry from what people typed (the command line, the admin page) for a subject already sealed: a blank
    /// note or last day is none.
    pub fn parse(
        subject: Subject,
        list: &str,
        severity: &str,
        note: Option<&str>,
        until: Option<&str>,
    ) -> Result<Self, String> {
        Ok(WatchEntry {
            subject,
            list: WatchEntry::parse_list(list.trim())?,
            severity: Severity::parse(severity.trim())?,
            note: note.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned),
            until: until
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| {
                    d.parse::<Date>()
                        .map_err(|e| format!("last day {d:?} is not a date (2026-12-31): {e}"))
                })
                .transpose()?,
        })
    }

    /// Whether a sighting on `day` (site time) is still watched.
    pub fn watched_on(&self, day: Date) -> bool {
        self.until.is_none_or(|until| day <= until)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchListCommand {
    Add { entry: WatchEntry, at: Timestamp },
    Remove { subject: Subject, at: Timestamp },
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchListEvent {
    Added(WatchEntryAdded),
    Removed(WatchEntryRemoved),
}

/// A subject was put on the list, or its entry changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEntryAdded {
    pub entry: WatchEntry,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A subject was taken off the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEntryRemoved {
    pub subject: Subject,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

impl DomainEvent for WatchListEvent {
    fn event_type(&self) -> &'static str {
        match self {
            WatchListEvent::Added(_) => "WatchEntryAdded",
            WatchListEvent::Removed(_) => "WatchEntryRemoved",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            WatchListEvent::Added(e) => e.at,
            WatchListEvent::Removed(e) => e.at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchListRejection {
    #[error("{0} is not on the watch list")]
    NotListed(String),
}

/// The entries, by subject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchListState {
    pub entries: BTreeMap<Subject, WatchEntry>,
}

impl Aggregate for WatchList {
    const KIND: &'static str = "watch_list";
    const STATE_SCHEMA: u32 = 2; // 2: subjects sealed (pseudonym + encrypted identifier)
    type Command = WatchListCommand;
    type Event = WatchListEvent;
    type State = WatchListState;
    type Rejection = WatchListRejection;

    fn decide(state: &WatchListState, command: &WatchListCommand) -> Result<Vec<WatchListEvent>, WatchListRejection> {
        match command {
            // The same entry again changes nothing; a different one replaces it.
            WatchListCommand::Add { entry, .. } if state.entries.get(&entry.subject) == Some(entry) => Ok(vec![]),
            WatchListCommand::Add { entry, at } => Ok(vec![WatchListEvent::Added(WatchEntryAdded {
                entry: entry.clone(),
                at: *at,
            })]),
            WatchListCommand::Remove { subject, at } if state.entries.contains_key(subject) => {
                Ok(vec![WatchListEvent::Removed(WatchEntryRemoved {
                    subject: subject.clone(),
                    at: *at,
                })])
            }
            WatchListCommand::Remove { subject, .. } => Err(WatchListRejection::NotListed(subject.to_string())),
        }
    }

    fn evolve(mut state: WatchListState, event: &WatchListEvent) -> WatchListState {
        match event {
            WatchListEvent::Added(e) => {
                state.entries.insert(e.entry.subject.clone(), e.entry.clone());
            }
            WatchListEvent::Removed(e) => {
                state.entries.remove(&e.subject);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: &str, severity: Severity) -> WatchEntry {
        WatchEntry {
            subject: Subject::parse(subject).unwrap(),
            list: WatchEntry::parse_list("banned").unwrap(),
            severity,
            note: Some("shoplifting".into()),
            until: Some("2026-12-31".parse().unwrap()),
        }
    }

    fn at() -> Timestamp {
        "2026-03-01T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn adding_lists_a_subject_the_same_entry_again_is_nothing_and_a_change_replaces_it() {
        let add = |e| WatchListCommand::Add { entry: e, at: at() };
        let events = WatchList::decide(&WatchListState::default(), &add(entry("P-1", Severity::Major))).unwrap();
        let state = WatchList::fold(WatchListState::default(), &events);
        assert_eq!(state.entries.len(), 1);
        assert_eq!(
            WatchList::decide(&state, &add(entry("P-1", Severity::Major))),
            Ok(vec![])
        );
        let changed = WatchList::decide(&state, &add(entry("P-1", Severity::Critical))).unwrap();
        let state = WatchList::fold(state, &changed);
        assert_eq!(state.entries.values().next().unwrap().severity, Severity::Critical);
    }

    #[test]
    fn removing_takes_a_subject_off_and_an_unlisted_one_is_refused_by_name() {
        let added = vec![WatchListEvent::Added(WatchEntryAdded {
            entry: entry("P-1", Severity::Major),
            at: at(),
        })];
        let state = WatchList::fold(WatchListState::default(), &added);
        let remove = |s| WatchListCommand::Remove {
            subject: Subject::parse(s).unwrap(),
            at: at(),
        };
        let removed = WatchList::decide(&state, &remove("P-1")).unwrap();
        assert!(WatchList::fold(state.clone(), &removed).entries.is_empty());
        assert_eq!(
            WatchList::decide(&state, &remove("P-2")).unwrap_err().to_string(),
            format!("{} is not on the watch list", Subject::parse("P-2").unwrap())
        );
    }

    #[test]
    fn an_entry_is_watched_through_its_last_day_and_list_names_are_checked() {
        let e = entry("P-1", Severity::Major);
        assert!(e.watched_on("2026-12-31".parse().unwrap()));
        assert!(!e.watched_on("2027-01-01".parse().unwrap()));
        assert!(WatchEntry::parse_list("missing-person").is_ok());
        assert!(WatchEntry::parse_list("Banned List").is_err());
    }
}
