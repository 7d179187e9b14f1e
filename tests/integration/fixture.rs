//! A journal written by release 0.1.0 (tests/fixtures/journal-v0.1.0, made by its `make.sh` with that binary)
//! opens and reads unchanged: every event reads back with the same data (old device messages upcast to "no
//! seq"; recognitions re-encrypted once, their subjects sealed yet read back the same, and in clear nowhere), every device folds to the state 0.1.0 printed, the read tables rebuilt from it hold the figures
//! 0.1.0's projectors wrote, and its dead letters are still there.

use crate::helpers::*;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/journal-v0.1.0")
        .join(name)
}

fn read_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// A site holding a copy of the fixture (opening it migrates it, so the committed file stays untouched).
fn site_with_fixture() -> Site {
    let site = Site::new("");
    // 0.1.0 had no gateway identities: its gateways keep connecting as before only with require_auth off.
    let config = std::fs::read_to_string(fixture("config.toml")).unwrap();
    std::fs::write(
        site.config_path(),
        config.replace("[mqtt]\n", "[mqtt]\nrequire_auth = false\n"),
    )
    .unwrap();
    site.paths().prepare().unwrap();
    std::fs::copy(fixture("journal.db"), site.paths().journal())
        .expect("tests/fixtures/journal-v0.1.0/journal.db must be committed (see its README)");
    site
}

fn without_new_fields(mut event: serde_json::Value) -> serde_json::Value {
    let object = event.as_object_mut().unwrap();
    // Recognitions were re-encrypted at the first open (the subject sealed): the same event at a newer schema.
    if object.get("type") == Some(&serde_json::json!("RecognitionRecorded")) {
        assert_eq!(object.insert("schema".into(), 1.into()), Some(3.into()), "{object:?}");
    }
    // Added since 0.1.0: who caused it (unrecorded for old events) and the message counter (none in old ones).
    assert_eq!(object.remove("actor"), Some(serde_json::Value::Null), "{event:?}");
    if let Some(data) = object.get_mut("data").and_then(|d| d.as_object_mut())
        && let Some(seq) = data.remove("seq")
    {
        assert_eq!(seq, serde_json::Value::Null);
    }
    event
}

#[test]
fn every_event_of_a_0_1_0_journal_reads_back_unchanged() {
    let site = site_with_fixture();
    let output = site.gatehouse(&["events"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let now: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| without_new_fields(serde_json::from_str(l).unwrap()))
        .collect();
    let then: Vec<serde_json::Value> = std::fs::read_to_string(fixture("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(now.len(), 69);
    assert_eq!(now, then);
    // The identifiers 0.1.0 stored in clear are sealed now: the file holds none of them.
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let bytes = std::fs::read(site.paths().journal()).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"P-1042"),
        "P-1042 is still in clear in journal.db"
    );
}

#[test]
fn every_device_of_a_0_1_0_journal_folds_to_the_state_0_1_0_printed() {
    let site = site_with_fixture();
    let expected = read_json("states.json");
    for device in ["T1", "T2", "T3", "C1"] {
        let output = site.gatehouse(&["state", device]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mut state: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let common = state["state"]["common"].as_object_mut().unwrap();
        // New counters start at nothing for a journal without `seq`.
        assert_eq!(common.remove("last_seq"), Some(serde_json::Value::Null));
        assert_eq!(common.remove("lost_messages"), Some(serde_json::json!(0)));
        // Nothing was voided in a journal from before voids existed.
        assert_eq!(common.remove("voided"), Some(serde_json::json!([])));
        assert_eq!(state, expected[device], "{device}");
    }
}

#[test]
fn a_0_1_0_journal_serves_the_same_figures_and_keeps_its_dead_letters() {
    let site = site_with_fixture();
    let expected = read_json("views.json");
    with_app(site.config(), async |app| {
        settle(app.state()).await;
        let views = rusqlite::Connection::open(site.paths().views()).unwrap();
        let rows = |sql: &str| -> serde_json::Value {
            let mut stmt = views.prepare(sql).unwrap();
            let columns = stmt.column_count();
            let rows: Vec<serde_json::Value> = stmt
                .query_map([], |r| {
                    Ok(serde_json::Value::Array(
                        (0..columns)
                            .map(|i| match r.get_ref(i).unwrap() {
                                rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                                rusqlite::types::ValueRef::Integer(n) => n.into(),
                                rusqlite::types::ValueRef::Real(x) => x.into(),
                                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                                rusqlite::types::ValueRef::Blob(_) => "blob".into(),
                            })
                            .collect(),
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            serde_json::Value::Array(rows)
        };
        assert_eq!(
            rows(
                "SELECT device_id, SUM(passages_in), SUM(passages_out) FROM traffic GROUP BY device_id ORDER BY device_id"
            ),
            expected["traffic_by_device"]
        );
        assert_eq!(
            rows("SELECT * FROM traffic_daily ORDER BY local_date, device_id, zone"),
            expected["traffic_daily"]
        );
        assert_eq!(
            rows("SELECT * FROM recognitions_daily ORDER BY local_date, camera_id"),
            expected["recognitions_daily"]
        );
        assert_eq!(
            query_i64(&site.paths().views(), "SELECT COUNT(*) FROM equipment_faults"),
            expected["fault_episodes"]["count"].as_i64().unwrap()
        );
        assert_eq!(
            query_i64(&site.paths().views(), "SELECT COUNT(*) FROM parked_events"),
            0
        );
    });
    let letters = gatehouse::dead_letters::list(&site.paths().journal(), true).unwrap();
    let now: Vec<serde_json::Value> = letters
        .iter()
        .map(|l| serde_json::json!([l.id, l.topic, l.reason, l.status.to_string()]))
        .collect();
    assert_eq!(serde_json::Value::Array(now), read_json("dead_letters.json"));
}
