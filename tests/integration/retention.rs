//! Retention: `gatehouse archive` moves old events into gzip JSON-lines files with a hash-chained manifest,
//! removes them from `journal.db` (which really shrinks), and leaves every stream recoverable from the journal
//! alone through its carried-forward state, snapshots or not; reports keep their figures; `--verify` finds a
//! changed file; nothing else may delete journal rows.

use crate::helpers::*;
use gatehouse::domain::*;
use std::process::Command;

fn tomorrow() -> String {
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let today = jiff::Timestamp::now().to_zoned_datetime(berlin).date();
    today.tomorrow().unwrap().to_string()
}

/// T1 commissioned with 3,000 passages in (March 2026), C1 with a recognition; the projectors and policies
/// have applied all of it.
fn site_with_history() -> Site {
    let site = Site::new(ONE_TURNSTILE_ONE_CAMERA);
    let mut passages = vec![commissioned(
        DeviceKind::Turnstile,
        "Hall A north",
        "Hall A",
        "2026-03-01T06:00:00Z",
    )];
    for n in 0..3_000 {
        passages.push(passage(
            Direction::In,
            &format!("2026-03-{:02}T{:02}:{:02}:00Z", 1 + n / 600, 7 + (n / 60) % 10, n % 60),
        ));
    }
    seed(
        &site.paths(),
        &[
            ("T1", passages),
            (
                "C1",
                vec![commissioned(
                    DeviceKind::Camera,
                    "Hall A entrance",
                    "Hall A",
                    "2026-03-01T06:00:00Z",
                )],
            ),
        ],
    );
    with_server(site.config(), async |state, _addr| settle(state).await);
    site
}

fn traffic_in(site: &Site) -> i64 {
    query_i64(
        &site.paths().views(),
        "SELECT COALESCE(SUM(passages_in), 0) FROM traffic_daily WHERE device_id = 'T1'",
    )
}

#[test]
fn archiving_moves_old_events_to_verified_files_shrinks_the_journal_and_every_stream_still_recovers() {
    let site = site_with_history();
    let journal = site.paths().journal();
    let size_before = std::fs::metadata(&journal).unwrap().len();
    assert_eq!(traffic_in(&site), 3_000);
    let before_version = query_i64(&journal, "SELECT MAX(version) FROM events WHERE stream_id = 'T1'");

    let archived = site.gatehouse(&["archive", "--before", &tomorrow()]);
    let stdout = String::from_utf8_lossy(&archived.stdout);
    assert!(
        archived.status.success(),
        "{}",
        String::from_utf8_lossy(&archived.stderr)
    );
    assert!(stdout.contains("archived "), "{stdout}");

    // Only the carried-forward states are left, one per stream, at each stream's last version.
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type <> 'StateCarriedForward'"
        ),
        0
    );
    let carried = rusqlite::Connection::open(&journal)
        .unwrap()
        .prepare("SELECT stream_id, version FROM events ORDER BY stream_id")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert!(carried.contains(&("T1".to_owned(), before_version)), "{carried:?}");
    let size_after = std::fs::metadata(&journal).unwrap().len();
    assert!(
        size_after < size_before,
        "journal.db shrank: {size_before} -> {size_after} bytes"
    );

    // The files hold every event, and the manifest vouches for them.
    let archive_dir = site.dir.path().join("archive");
    let manifest = std::fs::read_to_string(archive_dir.join("manifest.jsonl")).unwrap();
    let events: u64 = manifest
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["events"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(events >= 3_002, "{manifest}");
    let verified = site.gatehouse(&["archive", "--verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // Reports keep their figures; a second run has nothing to do.
    assert_eq!(traffic_in(&site), 3_000);
    let again = site.gatehouse(&["archive", "--before", &tomorrow()]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to archive"));

    // Without snapshots (a cache), T1 recovers from its carried-forward state and takes the next passage.
    rusqlite::Connection::open(&journal)
        .unwrap()
        .execute("DELETE FROM snapshots", [])
        .unwrap();
    let state = site.gatehouse(&["state", "T1"]);
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["state"]["passages_in"], 3_000, "{state}");
    with_app(site.config(), async |app| {
        let outcome = app
            .state()
            .registry
            .execute_device(
                "T1",
                DeviceCommand::RecordPassage {
                    direction: Direction::In,
                    at: at("2026-04-01T08:00:00Z"),
                    seq: None,
                },
                test_meta(Some("after-archival")),
            )
            .await
            .unwrap();
        // It comes online and passes: two events, after the carried-forward version, no conflict.
        assert!(
            matches!(outcome, gatehouse::actors::CommandOutcome::Recorded { events: 2, .. }),
            "{outcome:?}"
        );
        settle(app.state()).await;
    });
    assert_eq!(
        query_i64(&journal, "SELECT MAX(version) FROM events WHERE stream_id = 'T1'"),
        before_version + 2
    );
    assert_eq!(traffic_in(&site), 3_001);

    // A rebuild reads the archived events back in: the figures stay whole.
    let rebuilt = site.gatehouse(&["rebuild"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert_eq!(traffic_in(&site), 3_001);

    // A lost views.db is rebuilt at start with the archived events read back in, not from the journal alone.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", site.paths().views().display()));
    }
    with_app(site.config(), async |app| settle(app.state()).await);
    assert_eq!(traffic_in(&site), 3_001);

    // Nothing but archival deletes journal rows.
    let refused = rusqlite::Connection::open(&journal)
        .unwrap()
        .execute("DELETE FROM events", [])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("append-only"), "{refused}");

    // A changed archive file is found.
    let file = manifest
        .lines()
        .next()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .unwrap();
    let path = archive_dir.join(file["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let tampered = site.gatehouse(&["archive", "--verify"]);
    assert_eq!(tampered.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("changed since it was written"));
    // A rebuild cannot count what the archive no longer vouches for: it refuses and keeps the tables.
    let refused = site.gatehouse(&["rebuild"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not verify"));
    assert_eq!(traffic_in(&site), 3_001);
}

#[test]
fn archive_without_limits_says_what_to_configure() {
    let site = Site::new(ONE_TURNSTILE_ONE_CAMERA);
    let output = site.gatehouse(&["archive"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("keep_events_for"));
}

#[test]
fn the_serving_core_archives_what_keep_events_for_says_and_the_storage_page_shows_the_files_verified() {
    let site = site_with_history();
    site.write_config(&format!(
        "{ONE_TURNSTILE_ONE_CAMERA}\n[retention]\nkeep_events_for = \"1s\"\n"
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        // The serving core archives by itself as [retention] says (the first round right after it starts).
        eventually("the serving core archived every passage", || {
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
            ) == 0
        })
        .await;
        let admin = tokio::task::spawn_blocking({
            let journal = journal.clone();
            move || {
                let admin = Session::sign_in(&journal, addr, "root", gatehouse::auth::Role::Admin);
                let done = admin.post(addr, "/admin/storage/archive", "");
                (admin, done)
            }
        })
        .await
        .unwrap();
        let (admin, done) = admin;
        assert_eq!(done.status, 303);
        let location = done.header("location").unwrap_or_default().to_owned();
        assert!(location.contains("nothing%20to%20archive"), "{location}");
        let page = tokio::task::spawn_blocking(move || admin.get(addr, "/admin/storage?verify=1").body)
            .await
            .unwrap();
        assert!(page.contains("events-2026-"), "the archive file is listed: {page}");
        assert!(page.contains("every file matches the manifest"), "{page}");
        // The reports still count the archived month.
        let (_, traffic) = get(addr, "/reports/traffic?from=2026-03-01&to=2026-03-31&format=csv").await;
        let header: Vec<&str> = traffic.lines().next().unwrap_or_default().split(',').collect();
        let column = header.iter().position(|h| *h == "in").expect("an `in` column");
        let counted: u64 = traffic
            .lines()
            .skip(1)
            .filter_map(|line| line.split(',').nth(column)?.parse::<u64>().ok())
            .sum();
        assert_eq!(counted, 3_000, "{traffic}");
    });
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        0,
        "every passage recorded more than a second ago is archived"
    );
}

#[test]
fn past_max_journal_size_the_oldest_events_are_archived_until_the_journal_is_below_it() {
    let site = Site::new(ONE_TURNSTILE_ONE_CAMERA);
    // About 25 MB of journal: 120,000 passages with long message ids.
    let mut passages = vec![commissioned(
        DeviceKind::Turnstile,
        "Hall A north",
        "Hall A",
        "2026-03-01T06:00:00Z",
    )];
    for n in 0..120_000u64 {
        passages.push(passage(
            if n % 2 == 0 { Direction::In } else { Direction::Out },
            &format!(
                "2026-03-{:02}T{:02}:{:02}:{:02}Z",
                1 + n / 20_000,
                6 + (n / 3_600) % 5,
                (n / 60) % 60,
                n % 60
            ),
        ));
    }
    seed(&site.paths(), &[("T1", passages)]);
    with_server(site.config(), async |state, _addr| settle(state).await);
    let journal = site.paths().journal();
    let used = || {
        let conn = rusqlite::Connection::open(&journal).unwrap();
        let pragma = |name: &str| {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")
    };
    let before = used();
    assert!(
        before > 10_000_000,
        "the seeded journal is over the cap: {before} bytes"
    );
    site.write_config(&format!(
        "{ONE_TURNSTILE_ONE_CAMERA}\n[retention]\nmax_journal_size = \"10MB\"\n"
    ));
    let archived = site.gatehouse(&["archive"]);
    assert!(
        archived.status.success(),
        "{}",
        String::from_utf8_lossy(&archived.stderr)
    );
    let after = used();
    assert!(
        after <= 10_000_000,
        "journal.db holds {after} bytes after archiving, over the 10MB cap"
    );
    let file = std::fs::metadata(&journal).unwrap().len();
    assert!(file <= 10_500_000, "the file itself shrank: {file} bytes");
    // The oldest went, the newest stayed.
    let oldest_live = query_i64(
        &journal,
        "SELECT MIN(position) FROM events WHERE event_type = 'PassageRecorded'",
    );
    assert!(oldest_live > 2, "the oldest passages are archived");
    assert_eq!(
        query_i64(
            &journal,
            "SELECT MAX(position) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        120_001,
        "the newest passage (the last seeded event) is still in the journal"
    );
}

#[test]
fn archival_killed_at_any_moment_loses_nothing_and_the_next_run_finishes_it() {
    let site = site_with_history();
    let journal = site.paths().journal();
    let rows = |sql: &str| -> Vec<(i64, Vec<u8>)> {
        let conn = rusqlite::Connection::open(&journal).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let original = rows("SELECT position, payload FROM events ORDER BY position");
    let before = tomorrow();
    for delay_ms in [2, 10, 30, 60, 120, 250] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(site.dir.path())
            .args(["archive", "--before", &before])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let finished = site.gatehouse(&["archive", "--before", &before]);
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let verified = site.gatehouse(&["archive", "--verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // Every event is in exactly one place, byte for byte: an archive file or the journal.
    let mut found: std::collections::BTreeMap<i64, Vec<u8>> = std::collections::BTreeMap::new();
    let archive_dir = site.dir.path().join("archive");
    for entry in gatehouse::archive::files::entries(&archive_dir).unwrap() {
        for line in gatehouse::archive::files::read_lines(&archive_dir.join(&entry.file)).unwrap() {
            let position = line["position"].as_i64().unwrap();
            let payload = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                line["payload"].as_str().unwrap(),
            )
            .unwrap();
            assert!(
                found.insert(position, payload).is_none(),
                "position {position} archived twice"
            );
        }
    }
    for (position, payload) in rows("SELECT position, payload FROM events WHERE event_type <> 'StateCarriedForward'") {
        assert!(
            found.insert(position, payload).is_none(),
            "position {position} both archived and live"
        );
    }
    let original: std::collections::BTreeMap<i64, Vec<u8>> = original.into_iter().collect();
    assert_eq!(found.len(), original.len(), "every event accounted for");
    assert!(found == original, "every event unchanged");
    let state = site.gatehouse(&["state", "T1"]);
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["state"]["passages_in"], 3_000, "{state}");
}
