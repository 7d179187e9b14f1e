//! Followers never panic on data: an event a projector cannot handle (an instant jiff cannot bucket, a payload
//! that does not decode) is parked with its error, the projector goes on, `/healthz` says 503 naming it, the
//! admin page lists it, `rebuild` finishes, and a discard or re-drive clears it.

use crate::helpers::*;
use gatehouse::domain::*;

/// A passage at the very start of jiff's range: stored as a fact (the device time bounds of the edge would
/// refuse it today, but a journal may hold it: older releases accepted it), yet no local hour exists for it.
fn far_past_passage() -> DeviceEvent {
    DeviceEvent::PassageRecorded(PassageRecorded {
        direction: Direction::In,
        at: jiff::Timestamp::MIN,
        during_fault: false,
        during_lockout: false,
        seq: None,
    })
}

/// Appends a row whose payload no codec can read, the way a corrupted or future journal would hold one.
pub(crate) fn append_undecodable(site: &Site, stream: &str) -> u64 {
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    let head: i64 = conn
        .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))
        .unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1",
            [stream],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at, recorded_at,
                             causation, payload, actor)
         VALUES (?1, ?2, ?3, 'PassageRecorded', 2, 1, 0, 0, NULL, x'ff', 'gateway:test')",
        rusqlite::params![head + 1, stream, version + 1],
    )
    .unwrap();
    (head + 1) as u64
}

fn seeded_site() -> (Site, u64, u64) {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    seed(
        &site.paths(),
        &[
            (
                "T1",
                vec![
                    commissioned(DeviceKind::Turnstile, "Hall A north", "Hall A", "2026-03-01T07:00:00Z"),
                    passage(Direction::In, "2026-03-01T08:00:00Z"),
                    far_past_passage(),
                    passage(Direction::Out, "2026-03-01T08:05:00Z"),
                    // The far future has a local hour: it is bucketed, not parked, and nothing is stuck on it.
                    DeviceEvent::PassageRecorded(PassageRecorded {
                        direction: Direction::Out,
                        at: at("9999-12-30T12:00:00Z"),
                        during_fault: false,
                        during_lockout: false,
                        seq: None,
                    }),
                ],
            ),
            (
                "T2",
                vec![commissioned(
                    DeviceKind::Turnstile,
                    "Hall B south",
                    "Hall B",
                    "2026-03-01T07:00:00Z",
                )],
            ),
        ],
    );
    let undecodable = append_undecodable(&site, "T2");
    // One more ordinary passage after both bad events: the followers must get past them.
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    drop(conn);
    seed(
        &site.paths(),
        &[("T1", vec![passage(Direction::In, "2026-03-01T09:00:00Z")])],
    );
    (site, 3, undecodable)
}

#[test]
fn the_far_future_is_bucketed_and_the_reports_of_its_year_still_answer() {
    let (site, _, _) = seeded_site();
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        let views = site.paths().views();
        assert_eq!(
            query_i64(
                &views,
                "SELECT COUNT(*) FROM traffic_daily WHERE local_date LIKE '9999-%'"
            ),
            1
        );
        let (status, body) = get(addr, "/reports/traffic?from=9999-12-30&to=9999-12-31&bucket=hour").await;
        assert!(status == 200 || status == 400, "{status} {body}");
        let (status, _) = get(addr, "/reports/traffic?from=2026-03-01&to=2026-03-01&bucket=hour").await;
        assert_eq!(status, 200);
    });
}

#[test]
fn a_poison_event_is_parked_the_projectors_go_on_and_healthz_names_it() {
    let (site, far_past, undecodable) = seeded_site();
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        // Everything after the bad events was applied: four good passages on T1 (one in the year 9999).
        let views = site.paths().views();
        assert_eq!(
            query_i64(&views, "SELECT SUM(passages_in + passages_out) FROM traffic"),
            4
        );

        let parked = gatehouse::projection::parked::list(&rusqlite::Connection::open(&views).unwrap(), None).unwrap();
        let at =
            |follower: &str, position: u64| parked.iter().find(|p| p.follower == follower && p.position == position);
        let traffic = at("traffic", far_past).expect("traffic parked the far-past passage");
        assert!(traffic.error.contains("has no local hour"), "{}", traffic.error);
        let checkpoints = rusqlite::Connection::open(&views).unwrap();
        for projection in gatehouse::projection::all(&jiff::tz::TimeZone::UTC) {
            let follower = projection.name();
            if projection
                .event_types()
                .is_some_and(|types| !types.contains(&"PassageRecorded"))
            {
                // It reads no passages, so it never meets this row: it is past it, with nothing parked.
                let checkpoint = gatehouse::projection::checkpoint(&checkpoints, follower).unwrap();
                assert!(checkpoint > undecodable, "{follower} is past the undecodable event");
                assert!(
                    at(follower, undecodable).is_none(),
                    "{follower} parked a row it does not read"
                );
                continue;
            }
            let bad = at(follower, undecodable).unwrap_or_else(|| panic!("{follower} parked the undecodable event"));
            assert!(bad.error.contains("cannot be read"), "{}", bad.error);
        }

        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains(&format!("traffic: event at position {far_past} parked")),
            "{body}"
        );

        let (status, page) = get(addr, "/admin/projections").await;
        assert_eq!(status, 200);
        assert!(page.contains(&format!("id=\"parked-traffic-{far_past}\"")), "{page}");

        let (_, metrics) = get(addr, "/metrics").await;
        assert!(
            metrics.contains("gatehouse_parked_events{projection=\"traffic\"} 2"),
            "{metrics}"
        );
    });
}

#[test]
fn rebuild_parks_the_same_events_and_finishes_with_the_live_tables_swapped() {
    let (site, far_past, undecodable) = seeded_site();
    let output = site.gatehouse(&["rebuild", "traffic"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let views = site.paths().views();
    assert_eq!(
        query_i64(&views, "SELECT SUM(passages_in + passages_out) FROM traffic"),
        4
    );
    assert_eq!(
        query_i64(&views, "SELECT COUNT(*) FROM parked_events WHERE follower = 'traffic'"),
        2,
        "positions {far_past} and {undecodable}: {:?}",
        dump(
            &rusqlite::Connection::open(&views).unwrap(),
            "SELECT position || ' ' || error FROM parked_events"
        )
    );
}

#[test]
fn an_admin_discards_or_redrives_a_parked_event_and_health_returns() {
    let (site, far_past, undecodable) = seeded_site();
    let policy_config = site.config();
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        let journal = site.paths().journal();
        let admin =
            tokio::task::spawn_blocking(move || Session::sign_in(&journal, addr, "ana", gatehouse::auth::Role::Admin))
                .await
                .unwrap();
        let admin = std::sync::Arc::new(admin);
        let session = admin.clone();
        let outcomes = tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::new();
            // A re-drive of an event that still cannot be handled fails again and stays parked.
            let again = session.post(
                addr,
                "/admin/projections/parked/redrive",
                &format!("follower=traffic&position={far_past}"),
            );
            outcomes.push(again.header("location").unwrap_or_default().to_owned());
            let policies = gatehouse::policy::all(&policy_config)
                .iter()
                .map(|p| gatehouse::policy::follower_name(p.name()))
                .collect::<Vec<_>>();
            let projections = gatehouse::projection::names().into_iter().map(str::to_owned);
            for follower in projections.chain(policies) {
                for position in [far_past, undecodable] {
                    session.post(
                        addr,
                        "/admin/projections/parked/discard",
                        &format!("follower={follower}&position={position}"),
                    );
                }
            }
            outcomes
        })
        .await
        .unwrap();
        assert!(outcomes[0].contains("failed%20again"), "{outcomes:?}");
        let (_, body) = get(addr, "/healthz").await;
        assert!(!body.contains("parked"), "{body}");
        // With a forged CSRF token nothing happens.
        let csrf_less = http(
            addr,
            "POST",
            "/admin/projections/parked/discard",
            &[
                ("Cookie", &admin.cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "csrf=forged&follower=traffic&position=1",
        );
        assert_eq!(csrf_less.status, 403);
    });
}
