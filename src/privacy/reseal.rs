//! The one-time re-encryption of a journal written before identifiers were sealed: every event body that carried
//! a person's identifier in clear is rewritten in place (same position, stream, version and times; a newer schema)
//! with the identifier sealed under the person's key, in one transaction under a `reseal_grant` the append-only
//! triggers allow. Snapshots of the kinds that name people are dropped (a cache; they are taken again) and dead
//! letters get their subject fields sealed. Runs at every open; `reseal_pending` (set by the migration for a
//! journal that held anything) says whether there is anything to look at.

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

/// Rewrites every body still in clear; nothing when there is none. Two passes: the new bodies are worked out
/// first (sealing may add people to the vault, on its own connection), then written in one transaction, which
/// rewrites only rows still in clear (a concurrent run's rows are left alone).
pub fn reseal_journal(conn: &mut Connection, vault: &SubjectVault) -> anyhow::Result<Resealed> {
    // A journal made since sealing, or one rewritten already, has nothing waiting: one look, no scan.
    let pending: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM reseal_pending)", [], |r| r.get(0))?;
    if !pending {
        return Ok(Resealed::default());
    }
    let in_clear = SEALED_SINCE
        .iter()
        .map(|(event_type, schema)| format!("(event_type = '{event_type}' AND schema < {schema})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let rows: Vec<(i64, String, String, u32, Vec<u8>)> = {
        let mut statement = conn.prepare(&format!(
            "SELECT position, stream_id, event_type, schema, payload FROM events WHERE {in_clear} ORDER BY position"
        ))?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()
            .context("journal.db: cannot read the events to re-encrypt")?
    };
    let mut rewritten: Vec<(i64, u32, u32, Vec<u8>)> = Vec::new();
    let mut deliveries: Vec<TextRewrite> = Vec::new();
    {
        let mut seal = |subject: &crate::domain::SubjectId| vault.seal_legacy(subject);
        let mut resealer = Resealer::new(&mut seal);
        for (position, stream, event_type, schema, payload) in &rows {
            let body = resealer
                .reseal(stream, event_type, *schema, payload)
                .with_context(|| format!("journal.db: cannot re-encrypt the event at position {position}"))?;
            if let Some((new_schema, body)) = body {
                rewritten.push((*position, *schema, new_schema, body));
            }
        }
        // Notifications already made about an alarm that names someone: their documents lose the identifier too.
        if !rewritten.is_empty() {
            let stored: Vec<(String, String, String)> = conn
                .prepare("SELECT id, alarm, body FROM notification_deliveries")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()
                .context("journal.db: cannot read the notification outbox")?;
            for (id, alarm, body) in stored {
                let scrubbed = resealer.scrub(&format!("alarm:{alarm}"), body.clone());
                if scrubbed != body {
                    deliveries.push((id, body, scrubbed));
                }
            }
        }
    }
    let requests = sealed_requests(conn, vault)?;
    let letters = sealed_dead_letters(conn, vault)?;

    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut done = Resealed::default();
    if let Some(last) = rewritten.last().map(|row| row.0) {
        tx.execute("INSERT INTO reseal_grant (up_to) VALUES (?1)", [last])?;
        {
            let mut update =
                tx.prepare("UPDATE events SET schema = ?1, payload = ?2 WHERE position = ?3 AND schema = ?4")?;
            for (position, old_schema, schema, body) in &rewritten {
                done.events += update.execute(params![schema, body, position, old_schema])? as u64;
            }
        }
        tx.execute("DELETE FROM reseal_grant", [])?;
        tx.execute(
            "DELETE FROM snapshots WHERE stream_id LIKE 'presence:%' OR stream_id LIKE 'alarm:%'
                OR stream_id LIKE 'watch_list:%'",
            [],
        )?;
    }
    for (id, before, after) in &deliveries {
        tx.execute(
            "UPDATE notification_deliveries SET body = ?1 WHERE id = ?2 AND body = ?3",
            params![after, id, before],
        )?;
    }
    for (id, (command, outcome)) in &requests {
        tx.execute(
            "UPDATE operator_requests SET command = ?1, outcome = ?2 WHERE id = ?3",
            params![command, outcome, id],
        )?;
    }
    for (id, before, after) in &letters {
        done.dead_letters += tx.execute(
            "UPDATE dead_letters SET payload = ?1 WHERE id = ?2 AND payload = ?3",
            params![after, id, before],
        )? as u64;
    }
    tx.execute("DELETE FROM reseal_pending", [])?;
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

/// A notification to rewrite: its id, its document now and without the identifier.
type TextRewrite = (String, String, String);

/// Watch-list requests from the command line stored before sealing: the identifier in their command (JSON) and
/// outcome (text) becomes the pseudonym, so a pending one is carried out and a finished one names nobody.
/// A request to rewrite: its id, and its command and outcome with the pseudonym.
type RequestRewrite = (i64, (String, Option<String>));

fn sealed_requests(conn: &Connection, vault: &SubjectVault) -> anyhow::Result<Vec<RequestRewrite>> {
    let rows: Vec<(i64, String, Option<String>)> = conn
        .prepare("SELECT id, command, outcome FROM operator_requests WHERE instr(command, '\"change\"') > 0")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()
        .context("journal.db: cannot read operator requests")?;
    let mut sealed = Vec::new();
    for (id, command, outcome) in rows {
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&command) else {
            continue;
        };
        let Some(change) = value.get_mut("change") else {
            continue;
        };
        let plain = change
            .get("entry")
            .and_then(|e| e.get("subject"))
            .or_else(|| change.get("subject"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let Some(plain) = plain.filter(|p| crate::domain::Pseudonym::parse(p).is_err()) else {
            continue;
        };
        let Ok(identifier) = crate::domain::SubjectId::parse(&plain) else {
            continue;
        };
        let subject = vault.seal_legacy(&identifier)?;
        let pseudonym = serde_json::Value::String(subject.pseudonym.to_string());
        match change.get_mut("entry") {
            Some(entry) => entry["subject"] = pseudonym,
            None => change["subject"] = pseudonym,
        }
        change["sealed"] = serde_json::json!(subject.sealed);
        let outcome = outcome.map(|text| crate::codec::reseal::replace_word(&text, &plain, subject.pseudonym.as_str()));
        sealed.push((id, (value.to_string(), outcome)));
    }
    Ok(sealed)
}

/// A dead letter to rewrite: its id, its payload now and sealed.
type LetterRewrite = (i64, Vec<u8>, Vec<u8>);

/// Dead letters stored before sealing whose subject fields need sealing.
fn sealed_dead_letters(conn: &Connection, vault: &SubjectVault) -> anyhow::Result<Vec<LetterRewrite>> {
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut statement =
            conn.prepare("SELECT id, payload FROM dead_letters WHERE instr(payload, CAST('\"subject\"' AS BLOB)) > 0")?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()
            .context("journal.db: cannot read dead letters")?
    };
    let mut sealed = Vec::new();
    for (id, payload) in rows {
        let rewritten = seal_payload_subjects(&payload, |s| vault.seal_legacy(s))?;
        if rewritten != payload {
            sealed.push((id, payload, rewritten));
        }
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AnyEvent, decode_any};
    use crate::domain::alarm::{AlarmEvent, AlarmSource, AlarmType, Severity};
    use crate::domain::time::timestamp;
    use crate::domain::*;
    use jiff::Timestamp;
    use serde::Serialize;

    /// Bodies as a journal from before sealing stored them.
    #[derive(Serialize)]
    struct ClearRecognition {
        subject: Option<SubjectId>,
        confidence: Confidence,
        #[serde(with = "timestamp")]
        at: Timestamp,
        seq: Option<u64>,
    }

    #[derive(Serialize)]
    enum ClearSource {
        #[allow(dead_code)]
        Device(DeviceId),
        Subject(SubjectId),
    }

    #[derive(Serialize)]
    struct ClearAlarmRaised {
        alarm_type: AlarmType,
        source: ClearSource,
        severity: Severity,
        zone: Option<String>,
        detail: String,
        #[serde(with = "timestamp")]
        at: Timestamp,
    }

    #[derive(Serialize)]
    struct ClearRepeated {
        detail: String,
        #[serde(with = "timestamp")]
        at: Timestamp,
    }

    #[derive(Serialize)]
    struct ClearPassage {
        subject: SubjectId,
        turnstile: DeviceId,
        camera: DeviceId,
        zone: String,
        direction: Direction,
        confidence: Confidence,
        #[serde(with = "timestamp")]
        at: Timestamp,
    }

    fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    fn insert(conn: &Connection, stream: &str, version: i64, event_type: &str, schema: u32, payload: Vec<u8>) {
        conn.execute(
            "INSERT INTO events (stream_id, version, event_type, schema, format, occurred_at, recorded_at, payload)
             VALUES (?1, ?2, ?3, ?4, 1, 0, 0, ?5)",
            params![stream, version, event_type, schema, payload],
        )
        .unwrap();
    }

    #[test]
    fn a_journal_written_in_clear_is_sealed_once_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut conn = crate::db::open(&path, crate::config::Synchronous::Full).unwrap();
        crate::db::migrate_journal(&mut conn).unwrap();
        let vault = SubjectVault::open(&path).unwrap();
        let at: Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
        let id = |s: &str| SubjectId::parse(s).unwrap();
        let confidence = Confidence::new(0.9).unwrap();
        insert(
            &conn,
            "C1",
            1,
            "RecognitionRecorded",
            2,
            bytes(&ClearRecognition {
                subject: Some(id("emp-4711")),
                confidence,
                at,
                seq: Some(7),
            }),
        );
        insert(
            &conn,
            "alarm:A-000001",
            1,
            "AlarmRaised",
            1,
            bytes(&ClearAlarmRaised {
                alarm_type: AlarmType::WatchedSubjectSeen,
                source: ClearSource::Subject(id("emp-4711")),
                severity: Severity::Critical,
                zone: Some("Hall A".into()),
                detail: "emp-4711 (banned) recognized by C1".into(),
                at,
            }),
        );
        insert(
            &conn,
            "alarm:A-000001",
            2,
            "AlarmRepeated",
            1,
            bytes(&ClearRepeated {
                detail: "emp-4711 seen again".into(),
                at,
            }),
        );
        let legacy = vault.inner_site_key_pseudonym(&id("emp-4711"));
        insert(
            &conn,
            &format!("presence:{legacy}"),
            1,
            "PassageIdentified",
            1,
            bytes(&ClearPassage {
                subject: id("emp-4711"),
                turnstile: DeviceId::parse("T1").unwrap(),
                camera: DeviceId::parse("C1").unwrap(),
                zone: "Hall A".into(),
                direction: Direction::In,
                confidence,
                at,
            }),
        );
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason) VALUES (0, 't', ?1, 'r')",
            [br#"{"subject":"emp-4711","confidence":7}"#.to_vec()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO operator_requests (target, command, actor, requested_at, status, outcome)
             VALUES ('watch_list', ?1, 'cli:ana', 0, 'done', 'emp-4711 is on the banned list (critical)')",
            [r#"{"command":"watch","change":{"change":"add","entry":{"subject":"emp-4711","list":"banned","severity":"Critical","note":null,"until":null}}}"#],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO notification_deliveries (id, channel, alarm, position, reason, severity, body, created_at,
                 alarm_state, status)
             VALUES ('d1', 'ops', 'A-000001', 2, 'raised', 'critical', ?1, 0, 'active_unacknowledged', 'delivered')",
            [r#"{"source":"subject emp-4711","detail":"emp-4711 (banned) recognized by C1 in Hall A"}"#],
        )
        .unwrap();
        // What the migration marks on a journal that already held events.
        conn.execute("INSERT INTO reseal_pending (since) VALUES (0)", [])
            .unwrap();
        // Before: nothing reads them.
        let stream = StreamName::parse("C1").unwrap();
        let payload: Vec<u8> = conn
            .query_row("SELECT payload FROM events WHERE position = 1", [], |r| r.get(0))
            .unwrap();
        assert!(matches!(
            decode_any(&stream, "RecognitionRecorded", 2, 1, &payload),
            Err(crate::codec::DecodeError::WrittenInClear { .. })
        ));

        let done = reseal_journal(&mut conn, &vault).unwrap();
        assert_eq!(
            done,
            Resealed {
                events: 4,
                dead_letters: 1
            }
        );
        assert_eq!(reseal_journal(&mut conn, &vault).unwrap(), Resealed::default(), "once");
        assert_eq!(
            crate::codec::reseal::replace_word("Hall A: A", "A", "ps-1"),
            "Hall ps-1: ps-1"
        );
        assert_eq!(crate::codec::reseal::replace_word("AB A1 A", "A", "x"), "AB A1 x");

        let rows: Vec<(String, String, u32, Vec<u8>)> = conn
            .prepare("SELECT stream_id, event_type, schema, payload FROM events ORDER BY position")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut texts = Vec::new();
        for (stream, event_type, schema, payload) in &rows {
            assert!(
                !String::from_utf8_lossy(payload).contains("4711"),
                "{event_type} still in clear"
            );
            let event = decode_any(&StreamName::parse(stream).unwrap(), event_type, *schema, 1, payload).unwrap();
            texts.push(event.to_json().to_string());
            match event {
                AnyEvent::Device(DeviceEvent::RecognitionRecorded(e)) => {
                    let subject = e.subject.unwrap();
                    assert_eq!(subject.pseudonym, legacy, "people seen before keep their pseudonym");
                    assert_eq!(vault.open_sealed(&subject), Some(id("emp-4711")));
                    assert_eq!(e.seq, Some(7));
                }
                AnyEvent::Alarm(AlarmEvent::Raised(e)) => {
                    assert!(matches!(e.source, AlarmSource::Subject(ref s) if s.pseudonym == legacy));
                    assert_eq!(e.detail, format!("{legacy} (banned) recognized by C1"));
                }
                AnyEvent::Alarm(AlarmEvent::Repeated(e)) => assert_eq!(e.detail, format!("{legacy} seen again")),
                AnyEvent::Presence(crate::domain::PresenceEvent::PassageIdentified(e)) => {
                    assert_eq!(vault.open_sealed(&e.subject), Some(id("emp-4711")));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let letter: Vec<u8> = conn
            .query_row("SELECT payload FROM dead_letters", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&letter).unwrap(),
            serde_json::json!({"subject": {"sealed": legacy.as_str()}, "confidence": 7})
        );
        let (command, outcome): (String, String) = conn
            .query_row("SELECT command, outcome FROM operator_requests", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(
            !command.contains("4711") && command.contains(legacy.as_str()),
            "{command}"
        );
        let request: crate::requests::OperatorCommand = serde_json::from_str(&command).unwrap();
        assert!(
            matches!(request, crate::requests::OperatorCommand::Watch { .. }),
            "still a request"
        );
        assert_eq!(outcome, format!("{legacy} is on the banned list (critical)"));
        let body: String = conn
            .query_row("SELECT body FROM notification_deliveries", [], |r| r.get(0))
            .unwrap();
        assert!(
            !body.contains("4711") && body.contains(&format!("subject {legacy}")),
            "{body}"
        );
        // Forgotten, every one of them reads as nobody.
        vault.forget(&id("emp-4711")).unwrap();
        let mut revealed: serde_json::Value = serde_json::from_str(&format!("[{}]", texts.join(","))).unwrap();
        vault.reveal_json(&mut revealed);
        let revealed = revealed.to_string();
        assert!(
            !revealed.contains("4711") && !revealed.contains(legacy.as_str()),
            "{revealed}"
        );
        assert!(revealed.contains("forgotten (banned) recognized by C1"), "{revealed}");
    }
}
