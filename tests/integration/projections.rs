//! Projectors: exactly-once effect across crashes, catch-up after restart, blue/green rebuild, and the traffic
//! buckets in the site's time zone.

use crate::helpers::*;
use gatehouse::domain::*;
use gatehouse::journal::{JournalReader, StoredEvent};
use gatehouse::projection::{self, Projection};
use rusqlite::Connection;
use std::time::Duration;

fn views_conn(site: &Site) -> Connection {
    let mut conn = gatehouse::db::open(&site.paths().views(), gatehouse::config::Synchronous::Normal).unwrap();
    gatehouse::db::migrate_views(&mut conn).unwrap();
    conn
}

/// The site of most tests here: turnstile T1, "North", in Hall A.
const NORTH: &str = "[[turnstile]]\nid = \"T1\"\nname = \"North\"\nzone = \"Hall A\"\n";

/// T1 of [`NORTH`] commissioned, the day before [`passages`] start.
fn north_commissioned() -> DeviceEvent {
    commissioned(DeviceKind::Turnstile, "North", "Hall A", "2026-02-28T00:00:00Z")
}

/// `n` passages for T1, alternating in/out, one per second from 2026-03-01T00:00:00Z.
fn passages(n: usize) -> Vec<DeviceEvent> {
    let start = at("2026-03-01T00:00:00Z");
    (0..n)
        .map(|i| {
            let direction = if i % 2 == 0 { Direction::In } else { Direction::Out };
            let when = start + jiff::SignedDuration::from_secs(i as i64);
            DeviceEvent::PassageRecorded(PassageRecorded {
                direction,
                at: when,
                during_fault: false,
                during_lockout: false,
                seq: None,
            })
        })
        .collect()
}

fn seed_passages(site: &Site, n: usize) {
    let mut streams = vec![("T1", vec![north_commissioned()])];
    // Several appends, as real traffic would arrive.
    for chunk in passages(n).chunks(5000) {
        streams.push(("T1", chunk.to_vec()));
    }
    seed(&site.paths(), &streams);
}

/// Rows and checkpoint read in one transaction: the two must always agree.
fn traffic_total_and_checkpoint(site: &Site) -> (i64, i64) {
    try_traffic_total_and_checkpoint(site).expect("views.db has its tables")
}

/// The same, or `None` while the server has not yet created views.db's tables.
fn try_traffic_total_and_checkpoint(site: &Site) -> Option<(i64, i64)> {
    let mut conn =
        Connection::open_with_flags(site.paths().views(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.busy_timeout(Duration::from_secs(10)).ok()?;
    let tx = conn.transaction().ok()?;
    let total: i64 = tx
        .query_row(
            "SELECT COALESCE(SUM(passages_in + passages_out), 0) FROM traffic",
            [],
            |r| r.get(0),
        )
        .ok()?;
    let checkpoint = projection::checkpoint(&tx, "traffic").ok()? as i64;
    Some((total, checkpoint))
}

#[test]
fn a_server_killed_mid_catch_up_resumes_without_losing_or_doubling_an_event() {
    let site = Site::new(NORTH);
    let n = 60_000;
    seed_passages(&site, n);
    let head = JournalReader::open(&site.paths().journal()).unwrap().head().unwrap() as i64;
    let mut kills = 0;
    let mut mid_way = 0;
    for _attempt in 0..5 {
        let mut server = site.spawn_serve();
        // Wait for the first batch of this run, then SIGKILL: no chance to finish a transaction cleanly.
        let before = try_traffic_total_and_checkpoint(&site).map_or(0, |(_, c)| c);
        for _ in 0..2000 {
            if try_traffic_total_and_checkpoint(&site).is_some_and(|(_, c)| c > before) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        kills += 1;
        let (total, checkpoint) = traffic_total_and_checkpoint(&site);
        if 0 < checkpoint && checkpoint < head {
            mid_way += 1;
        }
        // Every passage up to the checkpoint is counted once; the commission event (position 1) is not a passage.
        assert_eq!(total, (checkpoint - 1).max(0), "after kill {kills}");
        if checkpoint == head {
            break;
        }
    }
    assert!(mid_way > 0, "no kill landed mid-way through the catch-up (of {kills})");
    // A last run catches up from wherever the kills left it.
    with_app(site.config(), async |app| {
        let traffic = app.state().projectors.iter().find(|p| p.name == "traffic").unwrap();
        assert!(
            traffic.wait_for(head as u64, Duration::from_secs(300)).await,
            "traffic caught up"
        );
    });
    assert_eq!(traffic_total_and_checkpoint(&site), (n as i64, head));
}

/// A projection that fails on one position, to prove a failed batch leaves nothing behind.
struct FailsAt {
    inner: Box<dyn Projection>,
    position: u64,
}

impl Projection for FailsAt {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }
    fn apply(&mut self, tx: &rusqlite::Connection, event: &StoredEvent) -> Result<(), projection::ApplyError> {
        if event.position == self.position {
            return Err(projection::ApplyError::Storage(rusqlite::Error::InvalidQuery));
        }
        self.inner.apply(tx, event)
    }
}

#[test]
fn a_batch_that_fails_midway_leaves_no_partial_rows_and_is_retried_whole() {
    let site = Site::new("");
    seed_passages(&site, 10);
    let journal = JournalReader::open(&site.paths().journal()).unwrap();
    let mut views = views_conn(&site);
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let mut failing = FailsAt {
        inner: Box::new(projection::TrafficProjection::new(tz.clone())),
        position: 6,
    };
    let error = projection::run_batch(
        &mut failing,
        &journal,
        &mut views,
        100,
        gatehouse::config::OnError::Park,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("traffic: views.db failed at position 6"),
        "{error}"
    );
    assert_eq!(traffic_total_and_checkpoint(&site), (0, 0));

    let mut working = projection::TrafficProjection::new(tz);
    assert_eq!(
        projection::run_batch(
            &mut working,
            &journal,
            &mut views,
            100,
            gatehouse::config::OnError::Park
        )
        .unwrap(),
        (11, 11)
    );
    assert_eq!(traffic_total_and_checkpoint(&site), (10, 11));
}

#[test]
fn rebuild_recreates_the_same_rows_beside_the_live_ones() {
    let site = Site::new("");
    seed_passages(&site, 3000);
    seed(
        &site.paths(),
        &[
            (
                "C1",
                vec![commissioned(
                    DeviceKind::Camera,
                    "Entrance",
                    "Hall A",
                    "2026-02-28T00:00:00Z",
                )],
            ),
            (
                "T1",
                vec![DeviceEvent::FaultReported(FaultReported {
                    code: FaultCode::parse("JAM").unwrap(),
                    detail: String::new(),
                    at: at("2026-03-01T02:00:00Z"),
                    seq: None,
                })],
            ),
        ],
    );
    let journal = JournalReader::open(&site.paths().journal()).unwrap();
    let mut views = views_conn(&site);
    for mut p in projection::all(&jiff::tz::TimeZone::get("Europe/Berlin").unwrap()) {
        projection::catch_up(
            p.as_mut(),
            &journal,
            &mut views,
            gatehouse::config::OnError::Park,
            |_| {},
        )
        .unwrap();
    }
    let queries = [
        "SELECT * FROM device_status ORDER BY device_id",
        "SELECT * FROM traffic ORDER BY bucket_start, device_id",
        "SELECT * FROM traffic_daily ORDER BY local_date, device_id",
        "SELECT * FROM traffic_zone_hourly ORDER BY bucket_start, zone",
        "SELECT * FROM traffic_zone_daily ORDER BY local_date, zone",
        "SELECT * FROM traffic_device_zone ORDER BY device_id",
        "SELECT projection, position FROM projector_checkpoints ORDER BY projection",
    ];
    let live: Vec<_> = queries.iter().map(|q| dump(&views, q)).collect();
    // Vandalize the live tables: the rebuild must not depend on them.
    views.execute("UPDATE traffic SET passages_in = 999", []).unwrap();

    let output = site.gatehouse(&["rebuild"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("rebuilt device_status up to position 3003"), "{stdout}");
    assert!(stdout.contains("rebuilt traffic up to position 3003"), "{stdout}");
    let rebuilt: Vec<_> = queries.iter().map(|q| dump(&views, q)).collect();
    assert_eq!(rebuilt, live);
    assert!(
        !std::fs::read_dir(site.paths().dir)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().starts_with("views.rebuild-") }),
        "the side database is removed"
    );

    let unknown = site.gatehouse(&["rebuild", "trafic"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr),
        "gatehouse: rebuild: unknown projection \"trafic\", expected one of: device_status, traffic, equipment, recognitions, device_commands, work_orders, alarms, watch_list, presence, occupancy\n"
    );
}

#[test]
fn traffic_buckets_follow_the_site_clock_across_daylight_saving_changes() {
    let site = Site::new("");
    // Europe/Berlin springs forward on 2026-03-29: 02:00 local does not exist; 01:30Z is 03:30 CEST.
    let when = [
        "2026-03-29T00:30:00Z",
        "2026-03-29T01:30:00Z",
        "2026-03-28T23:10:00Z",
        "2026-03-28T22:59:00Z",
    ];
    let mut events = vec![commissioned(
        DeviceKind::Turnstile,
        "North",
        "Hall A",
        "2026-03-01T00:00:00Z",
    )];
    events.extend(when.iter().map(|w| passage(Direction::In, w)));
    seed(&site.paths(), &[("T1", events)]);
    let journal = JournalReader::open(&site.paths().journal()).unwrap();
    let mut views = views_conn(&site);
    let mut traffic = projection::TrafficProjection::new(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    projection::catch_up(
        &mut traffic,
        &journal,
        &mut views,
        gatehouse::config::OnError::Park,
        |_| {},
    )
    .unwrap();
    let rows = dump(
        &views,
        "SELECT local_date, local_hour, zone, passages_in FROM traffic ORDER BY bucket_start",
    );
    assert_eq!(
        rows,
        [
            "2026-03-28|23|Hall A|1",
            "2026-03-29|0|Hall A|1",
            "2026-03-29|1|Hall A|1",
            "2026-03-29|3|Hall A|1",
        ]
    );
}

#[test]
fn an_upgrade_fills_the_report_rollups_from_the_rows_already_projected() {
    let site = Site::new("");
    let paths = site.paths();
    std::fs::create_dir_all(&paths.dir).unwrap();
    // views.db as the release before the rollups left it: migrations 1 to 3 and some projected rows.
    let conn = Connection::open(paths.views()).unwrap();
    for sql in [
        include_str!("../../migrations/views/0001_read_models.sql"),
        include_str!("../../migrations/views/0002_reports.sql"),
        include_str!("../../migrations/views/0003_traffic_daily.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute_batch(
        "PRAGMA user_version = 3;
         INSERT INTO projector_checkpoints VALUES ('recognitions', 41, 0, NULL);
         INSERT INTO traffic_daily VALUES ('2026-03-01', 'T1', 'Hall A', 3, 1), ('2026-03-01', 'T2', 'Hall A', 2, 2),
                                          ('2026-03-01', 'T3', 'Hall B', 1, 0), ('2026-03-02', 'T1', 'Hall A', 5, 5);
         INSERT INTO traffic VALUES (10, '2026-03-01', 9, 'T1', 'Hall A', 3, 1), (10, '2026-03-01', 9, 'T2', 'Hall A', 2, 2),
                                    (20, '2026-03-01', 10, 'T1', 'Hall A', 1, 0);
         INSERT INTO recognitions VALUES (1, '2026-03-01', 9, 'C1', 2, 1), (2, '2026-03-01', 10, 'C1', 1, 0),
                                         (3, '2026-03-02', 9, 'C1', 0, 4);
         INSERT INTO recognition_subjects VALUES ('2026-03-01', 'C1', 'P-1', 3);
         INSERT INTO equipment_availability VALUES ('T1', 'online', 0, 10), ('T1', 'offline', 10, 15),
                                                   ('T1', 'online', 20, NULL), ('T2', 'offline', 5, NULL);",
    )
    .unwrap();
    drop(conn);

    let views = views_conn(&site);

    assert_eq!(
        dump(&views, "SELECT * FROM traffic_zone_daily ORDER BY local_date, zone"),
        [
            "2026-03-01|Hall A|5|3",
            "2026-03-01|Hall B|1|0",
            "2026-03-02|Hall A|5|5"
        ]
    );
    assert_eq!(
        dump(&views, "SELECT * FROM traffic_zone_hourly ORDER BY bucket_start, zone"),
        ["2026-03-01|10|Hall A|5|3", "2026-03-01|20|Hall A|1|0"]
    );
    assert_eq!(
        dump(
            &views,
            "SELECT * FROM recognitions_daily ORDER BY local_date, camera_id"
        ),
        ["2026-03-01|C1|3|1", "2026-03-02|C1|0|4"]
    );
    // Each interval gets the time online and known in its device's earlier ones (the gap 15..20 is unknown).
    assert_eq!(
        dump(
            &views,
            "SELECT * FROM equipment_availability ORDER BY device_id, started_at"
        ),
        [
            "T1|online|0|10|0|0",
            "T1|offline|10|15|10|10",
            "T1|online|20|NULL|10|15",
            "T2|offline|5|NULL|0|0"
        ]
    );
    // Days with subjects count as changed up to the checkpoint: no kept subject list can predate the upgrade.
    assert_eq!(
        dump(&views, "SELECT * FROM recognition_subject_days"),
        ["2026-03-01|41"]
    );
}

#[test]
fn a_rebuild_of_100k_events_while_ingesting_keeps_pages_answering_and_swaps_in_what_a_fresh_projection_gives() {
    let site = Site::new(NORTH);
    seed_passages(&site, 100_000);
    let dir = site.dir.path().to_owned();
    let views_path = site.paths().views();
    let tables = [
        "SELECT * FROM traffic ORDER BY 1, 2, 3",
        "SELECT * FROM traffic_daily ORDER BY 1, 2",
        "SELECT device_id, passages_today_in, passages_today_out, last_event_at FROM device_status",
    ];
    let (during, ingested) = with_server(site.config(), async |state, addr| {
        settle(state).await;
        // Ingestion before, during and after the rebuild.
        let ingestor = state.ingestor.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let feeding = actix_web::rt::spawn(async move {
            let mut n = 0u32;
            while !*stopped.borrow_and_update() || n < 100 {
                let payload = format!(r#"{{"msg_id":"live-{n}","direction":"out"}}"#);
                ingestor
                    .ingest(gatehouse::ingest::Received::once(
                        "gatehouse/turnstile/T1/passage",
                        payload.as_bytes(),
                        jiff::Timestamp::now(),
                        gatehouse::journal::Actor::gateway("test"),
                    ))
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        });
        let rebuild = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                .current_dir(dir)
                .args(["rebuild", "traffic", "device_status"])
                .output()
                .unwrap()
        });
        // Pages answer while it runs.
        let mut during = Vec::new();
        while !rebuild.is_finished() {
            during.push(
                get(addr, "/reports/traffic?from=2026-02-28&to=2026-03-31&bucket=day")
                    .await
                    .0,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let output = rebuild.await.unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        stop.send_replace(true);
        let ingested = feeding.await.unwrap();
        settle(state).await;
        (during, ingested)
    });
    assert!(!during.is_empty() && during.iter().all(|s| *s == 200), "{during:?}");
    let views = Connection::open(&views_path).unwrap();
    let swapped: Vec<_> = tables.iter().map(|sql| dump(&views, sql)).collect();
    let total: i64 = views
        .query_row("SELECT SUM(passages_in + passages_out) FROM traffic", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        total,
        100_000 + i64::from(ingested),
        "every passage, including those during the rebuild"
    );
    drop(views);
    // A fresh projection of the final journal gives the same rows.
    let fresh = site.gatehouse(&["rebuild", "traffic", "device_status"]);
    assert!(fresh.status.success());
    let views = Connection::open(&views_path).unwrap();
    let again: Vec<_> = tables.iter().map(|sql| dump(&views, sql)).collect();
    assert_eq!(swapped, again);
}

#[test]
fn a_projection_of_a_few_event_types_reads_only_those_and_still_follows_the_journal_to_its_head() {
    let site = Site::new(NORTH);
    let lock = |reason: &str, when: &str| {
        DeviceEvent::LockedOut(LockedOut {
            reason: reason.into(),
            at: at(when),
        })
    };
    let unlock = |when: &str| DeviceEvent::Unlocked(Unlocked { at: at(when) });
    // Passages around a lock-out and its end: a burst the turnstile's desired state has no part in.
    let passages = passages(3000);
    seed(
        &site.paths(),
        &[
            ("T1", vec![north_commissioned()]),
            ("T1", passages[..1000].to_vec()),
            ("T1", vec![lock("fire drill", "2026-03-01T01:00:00Z")]),
            ("T1", passages[1000..2000].to_vec()),
            (
                "T1",
                vec![
                    unlock("2026-03-01T02:00:00Z"),
                    lock("vandalism", "2026-03-01T03:00:00Z"),
                ],
            ),
            ("T1", passages[2000..].to_vec()),
        ],
    );
    let journal = JournalReader::open(&site.paths().journal()).unwrap();
    let head = journal.head().unwrap();
    assert_eq!(head, 3004);
    let mut views = views_conn(&site);
    let mut commands = projection::DeviceCommandsProjection;
    let on_error = gatehouse::config::OnError::Park;

    // Batches of two: a full batch ends at its last event (more of its types may lie ahead); the first short one
    // moves past the passages after them to the head.
    let first = projection::run_batch(&mut commands, &journal, &mut views, 2, on_error).unwrap();
    assert_eq!(first, (1002, 2), "commissioned and the first lock-out");
    let second = projection::run_batch(&mut commands, &journal, &mut views, 2, on_error).unwrap();
    assert_eq!(second, (2004, 2), "the unlock and the second lock-out");
    let third = projection::run_batch(&mut commands, &journal, &mut views, 2, on_error).unwrap();
    assert_eq!(third, (head, 0), "none left: on to the head");
    let fourth = projection::run_batch(&mut commands, &journal, &mut views, 2, on_error).unwrap();
    assert_eq!(fourth, (head, 0), "and there it stays");
    assert_eq!(projection::checkpoint(&views, "device_commands").unwrap(), head);
    let (locked, reason, version): (bool, String, i64) = views
        .query_row(
            "SELECT locked, reason, version FROM device_commands WHERE device_id = 'T1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((locked, reason.as_str(), version), (true, "vandalism", 2004));
}

/// Writes two rows per event and, for the positions it refuses, fails between them: what a projection whose
/// second statement breaks a constraint does.
struct HalfWriter {
    refuses: Vec<u64>,
}

impl Projection for HalfWriter {
    fn name(&self) -> &'static str {
        "half_writer"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["half_written"]
    }

    fn apply(&mut self, tx: &Connection, event: &StoredEvent) -> Result<(), projection::ApplyError> {
        tx.execute(
            "INSERT INTO half_written (row) VALUES (?1)",
            [format!("{}a", event.position)],
        )?;
        if self.refuses.contains(&event.position) {
            return Err(projection::ApplyError::Event(format!(
                "refuses position {}",
                event.position
            )));
        }
        tx.execute(
            "INSERT INTO half_written (row) VALUES (?1)",
            [format!("{}b", event.position)],
        )?;
        Ok(())
    }
}

#[test]
fn an_event_that_fails_half_written_leaves_nothing_behind_and_the_rest_of_its_batch_is_applied() {
    let site = Site::new(NORTH);
    let mut events = vec![north_commissioned()];
    events.extend(passages(10));
    seed(&site.paths(), &[("T1", events)]);
    let journal = JournalReader::open(&site.paths().journal()).unwrap();
    assert_eq!(journal.head().unwrap(), 11);
    let mut views = views_conn(&site);
    views
        .execute("CREATE TABLE half_written (row TEXT PRIMARY KEY)", [])
        .unwrap();
    let rows = |views: &Connection| -> Vec<String> {
        let mut stmt = views
            .prepare("SELECT row FROM half_written ORDER BY CAST(row AS INTEGER), row")
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let whole = |positions: std::ops::RangeInclusive<u64>, except: &[u64]| -> Vec<String> {
        positions
            .filter(|p| !except.contains(p))
            .flat_map(|p| [format!("{p}a"), format!("{p}b")])
            .collect()
    };

    // Stopping: what came before the first refused event is kept, and nothing of it.
    let mut stops = HalfWriter { refuses: vec![5, 8] };
    let stop = gatehouse::config::OnError::Stop;
    let error = projection::run_batch(&mut stops, &journal, &mut views, 100, stop).unwrap_err();
    assert!(
        format!("{error:#}").contains("position 5: refuses position 5"),
        "{error:#}"
    );
    assert_eq!(rows(&views), whole(1..=4, &[]));
    assert_eq!(projection::checkpoint(&views, "half_writer").unwrap(), 4);

    // Parking: both refused events are parked, their first rows undone, every other event applied in full.
    let mut parks = HalfWriter { refuses: vec![5, 8] };
    let park = gatehouse::config::OnError::Park;
    let done = projection::run_batch(&mut parks, &journal, &mut views, 100, park).unwrap();
    assert_eq!(done, (11, 7), "from the checkpoint at 4 to the head");
    assert_eq!(rows(&views), whole(1..=11, &[5, 8]));
    let parked = projection::parked::list(&views, None).unwrap();
    let parked: Vec<(String, u64)> = parked.into_iter().map(|p| (p.follower, p.position)).collect();
    assert_eq!(parked, [("half_writer".to_string(), 5), ("half_writer".to_string(), 8)]);
    assert_eq!(projection::checkpoint(&views, "half_writer").unwrap(), 11);
}
