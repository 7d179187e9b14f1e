//! Who passed, end to end over MQTT: a camera's recognition and a rotation of a turnstile it watches, within the
//! match window either way round, become an identified passage on the person's presence stream; the muster list
//! shows who is inside per zone (page and CSV); leaving a zone never entered is an anti-passback violation; a
//! face too far from any rotation identifies nobody.

use crate::helpers::*;

fn publish(port: u16, topic: &'static str, lines: &[String]) -> tokio::task::JoinHandle<()> {
    let lines = lines.to_vec();
    tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, topic, &lines))
}

/// An instant `minutes` (and fractions) after a start an hour ago, as RFC 3339: recent enough that nobody has
/// timed out (`presence_timeout` is 16 h).
fn t(minutes: f64) -> String {
    // Fixed once per test process, so every call agrees on the start.
    static START: std::sync::OnceLock<jiff::Timestamp> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        start.round(jiff::Unit::Minute).unwrap()
    });
    (*start + jiff::SignedDuration::from_secs_f64(minutes * 60.0)).to_string()
}

fn recognition(msg_id: &str, subject: &str, at: &str) -> String {
    format!(r#"{{"msg_id":"{msg_id}","subject":"{subject}","confidence":0.93,"at":"{at}"}}"#)
}

fn rotation(msg_id: &str, direction: &str, at: &str) -> String {
    format!(r#"{{"msg_id":"{msg_id}","direction":"{direction}","at":"{at}"}}"#)
}

#[test]
fn recognitions_and_rotations_become_identified_passages_the_muster_list_and_attendance() {
    let port = free_port();
    // Attendance days start 12 hours from now, far from the hour of passages below.
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let day_starts = (jiff::Timestamp::now().to_zoned_datetime(berlin).hour() + 12) % 24;
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}\n[identification]\nday_starts_at = \"{day_starts:02}:00\"\n"),
    );
    with_server(site.config(), async |state, addr| {
        let (_, empty) = get(addr, "/muster").await;
        assert!(empty.contains("0 people identified inside"), "{empty}");
        assert!(empty.contains("Nobody identified inside."), "{empty}");

        // P-1: face first, rotation 1.5 s later. P-2: rotation first, its face (seen 1 s before the rotation)
        // arrives afterwards. P-3: a face 10 s from any rotation identifies nobody.
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r1", "P-1", &t(0.0))],
        )
        .await
        .unwrap();
        publish(
            port,
            "gatehouse/turnstile/T1/passage",
            &[rotation("p1", "in", &t(0.025)), rotation("p2", "in", &t(5.0))],
        )
        .await
        .unwrap();
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r2", "P-2", &t(5.0 - 1.0 / 60.0))],
        )
        .await
        .unwrap();
        publish(port, "gatehouse/turnstile/T1/passage", &[rotation("p3", "in", &t(5.5))])
            .await
            .unwrap();
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r3", "P-3", &t(5.5 + 10.0 / 60.0))],
        )
        .await
        .unwrap();
        settle(state).await;
        let (status, page) = get(addr, "/muster").await;
        assert_eq!(status, 200);

        assert!(page.contains("2 people identified inside"), "{page}");
        let hall_a = page.split("<h2>Hall A").nth(1).unwrap_or_default();
        assert!(
            hall_a.contains("<td>P-1</td>") && hall_a.contains("<td>P-2</td>"),
            "{page}"
        );
        assert!(!page.contains("P-3"), "{page}");
        // Three rotations in, two of them identified.
        assert!(hall_a.contains("1 more person inside, not identified"), "{page}");
        let (_, csv) = get(addr, "/muster?format=csv").await;
        let csv: Vec<&str> = csv.lines().collect();
        assert_eq!(
            csv,
            [
                "subject,zone,since,last_seen_at,last_seen_at_device",
                format!("P-1,Hall A,{},{},T1", t(0.025), t(0.025)).as_str(),
                format!("P-2,Hall A,{},{},T1", t(5.0), t(5.0)).as_str(),
            ]
        );

        // P-1 leaves; then, seen again going out, leaves a zone they are not in: anti-passback, recorded.
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r4", "P-1", &t(60.0 - 0.5))],
        )
        .await
        .unwrap();
        publish(
            port,
            "gatehouse/turnstile/T1/passage",
            &[rotation("p4", "out", &t(60.0 - 0.5 + 1.0 / 60.0))],
        )
        .await
        .unwrap();
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r5", "P-1", &t(60.0 - 0.25))],
        )
        .await
        .unwrap();
        publish(
            port,
            "gatehouse/turnstile/T1/passage",
            &[rotation("p5", "out", &t(60.0 - 0.25 + 0.5 / 60.0))],
        )
        .await
        .unwrap();
        settle(state).await;
        let (_, csv) = get(addr, "/muster?format=csv").await;
        assert_eq!(csv.lines().count(), 2, "only P-2 is inside: {csv}");
        let views = rusqlite::Connection::open(site.paths().views()).unwrap();
        // The tables know people by pseudonym only; the vault reads them back.
        let revealed = |rows: Vec<String>| -> Vec<String> {
            rows.iter()
                .map(|row| {
                    assert!(!row.contains("P-"), "{row}");
                    state.vault.reveal_text(row)
                })
                .collect()
        };
        assert_eq!(
            revealed(dump(
                &views,
                "SELECT subject, zone, direction, violation FROM anti_passback"
            )),
            ["P-1|Hall A|out|never_entered"]
        );
        assert_eq!(
            revealed(dump(
                &views,
                "SELECT subject, direction, turnstile, camera FROM identified_passages ORDER BY at"
            )),
            ["P-1|in|T1|C1", "P-2|in|T1|C1", "P-1|out|T1|C1", "P-1|out|T1|C1"]
        );
        // Attendance: P-1 inside from the first entry to the first exit; P-2 came in and has not left.
        let (_, attendance) = get(addr, "/reports/attendance?format=csv").await;
        let rows: Vec<Vec<&str>> = attendance.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows[0], ["day", "subject", "first_in", "last_out", "inside_seconds"]);
        assert_eq!(rows.len(), 3, "{attendance}");
        assert_eq!((rows[1][1], rows[1][4]), ("P-1", "3569"), "{attendance}");
        assert!(
            rows[1][2].ends_with("+01:00") || rows[1][2].ends_with("+02:00"),
            "site time: {attendance}"
        );
        assert_eq!((rows[2][1], rows[2][3], rows[2][4]), ("P-2", "", "0"), "{attendance}");
        let (_, page) = get(addr, "/reports/attendance?subject=P-2").await;
        assert!(
            page.contains("<td>P-2</td>") && !page.contains("<td>P-1</td>"),
            "{page}"
        );
        // The person's stream is named by their pseudonym, never their id.
        let journal = rusqlite::Connection::open(site.paths().journal()).unwrap();
        let streams = dump(
            &journal,
            "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'presence:%'",
        );
        assert_eq!(streams.len(), 2, "{streams:?}");
        assert!(
            streams
                .iter()
                .all(|s| s.starts_with("presence:ps-") && !s.contains("P-")),
            "{streams:?}"
        );

        // The camera took a visitor for P-2: a manager voids that recognition, and attendance leaves P-2 out.
        let wrong_person: i64 = journal
            .query_row(
                "SELECT position FROM events WHERE event_type = 'RecognitionRecorded' AND causation = 'r2'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let void = gatehouse::requests::OperatorCommand::void(wrong_person as u64, "a visitor, not P-2").unwrap();
        gatehouse::requests::carry_out(
            &state.registry,
            &state.vault,
            &void,
            gatehouse::journal::Actor::user("ana"),
            None,
        )
        .await
        .unwrap();
        settle(state).await;
        let (_, attendance) = get(addr, "/reports/attendance?format=csv").await;
        assert_eq!(attendance.lines().count(), 2, "only P-1 is left: {attendance}");
        assert!(!attendance.contains("P-2"), "{attendance}");
    });
}

#[test]
fn occupancy_counts_in_minus_out_per_zone_raises_over_capacity_and_takes_a_managers_correction() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}\n[[zone]]\nname = \"Hall A\"\ncapacity = 2\n"),
    );
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        let passages: Vec<String> = ["in", "in", "in", "out"]
            .iter()
            .enumerate()
            .map(|(n, d)| format!(r#"{{"msg_id":"a{n}","direction":"{d}"}}"#))
            .collect();
        publish(port, "gatehouse/turnstile/T1/passage", &passages)
            .await
            .unwrap();
        // Out of an empty hall: stays at zero.
        publish(
            port,
            "gatehouse/turnstile/T2/passage",
            &[r#"{"msg_id":"b1","direction":"out"}"#.to_owned()],
        )
        .await
        .unwrap();
        settle(state).await;
        let (_, dashboard) = get(addr, "/live/dashboard").await;
        assert!(
            dashboard.contains(r#"<td class="num occupancy">2 / 2</td>"#),
            "{dashboard}"
        );
        assert!(dashboard.contains(r#"<td class="num occupancy">0</td>"#), "{dashboard}");
        // The third person in was one too many: an over-capacity alarm, which ended when one left.
        let (_, alarms) = get(addr, "/alarms?format=csv").await;
        assert!(
            alarms.contains("A-000001,over_capacity,major,zone Hall A,cleared_unacknowledged"),
            "{alarms}"
        );

        // A manager counts 7 people in Hall A and says so on the dashboard.
        let session = tokio::task::spawn_blocking(move || {
            let session = Session::sign_in(&journal, addr, "max", gatehouse::auth::Role::Manager);
            let page = session.get(addr, "/").body;
            assert!(page.contains("Correct a zone's count"), "{page}");
            let refused = session.post(addr, "/occupancy/correct", "zone=Hall+A&count=7&reason=");
            let done = session.post(
                addr,
                "/occupancy/correct",
                "zone=Hall+A&count=7&reason=headcount+at+noon",
            );
            (
                refused.header("location").unwrap_or_default().to_owned(),
                done.header("location").unwrap_or_default().to_owned(),
            )
        })
        .await
        .unwrap();
        assert!(session.0.contains("needs%20a%20reason"), "{session:?}");
        assert!(session.1.contains("Hall%20A%20now%20counts%207"), "{session:?}");
        // The alarms policy raises the alarm again from the correction, after it: wait for it as the live page does.
        settle(state).await;
        let (_, dashboard) = get(addr, "/live/dashboard").await;
        assert!(
            dashboard.contains(r#"<td class="num occupancy overdue">7 / 2</td>"#),
            "{dashboard}"
        );
        let (_, alarms) = get(addr, "/alarms?format=csv").await;
        assert!(
            alarms.contains("over_capacity,major,zone Hall A,active_unacknowledged"),
            "{alarms}"
        );

        let (status, report) = get(addr, "/reports/occupancy?zone=Hall+A").await;
        assert_eq!(status, 200, "{report}");
        assert!(report.contains(r#"Peak <strong class="peak">7</strong>"#), "{report}");
        let (_, csv) = get(addr, "/reports/occupancy?format=csv").await;
        let counts: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|line| line.split(',').skip(1).collect::<Vec<_>>().join(","))
            .collect();
        assert_eq!(csv.lines().next(), Some("time,zone,occupancy"));
        assert_eq!(
            counts,
            ["Hall A,1", "Hall A,2", "Hall A,3", "Hall A,2", "Hall A,7", "Hall B,0"],
            "{csv}"
        );
    });
    // Recorded with who and why.
    let journal = rusqlite::Connection::open(site.paths().journal()).unwrap();
    assert_eq!(
        dump(
            &journal,
            "SELECT stream_id, event_type, actor FROM events WHERE stream_id = 'occupancy:site'"
        ),
        ["occupancy:site|OccupancyCorrected|user:max"]
    );
}

#[test]
fn two_rotations_in_a_moment_with_one_face_raise_a_tailgating_alarm() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}\n[identification]\nmatch_window = \"1s\"\ntailgate_window = \"1s\"\n"),
    );
    with_server(site.config(), async |state, addr| {
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r1", "P-1", &t(0.0))],
        )
        .await
        .unwrap();
        // Two people through T1 half a second apart; the camera saw one of them.
        publish(
            port,
            "gatehouse/turnstile/T1/passage",
            &[rotation("p1", "in", &t(0.005)), rotation("p2", "in", &t(0.0135))],
        )
        .await
        .unwrap();
        // The verdict waits until a late face could no longer change it (window + match window + 10 s).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            settle(state).await;
            let (_, alarms) = get(addr, "/alarms?format=csv").await;
            if alarms.contains(",tailgating,minor,device T1,active_unacknowledged,") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no tailgating alarm: {alarms}");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let (_, alarms) = get(addr, "/alarms?format=csv").await;
        assert_eq!(alarms.lines().count(), 2, "one alarm: {alarms}");
    });
}

#[test]
fn someone_not_seen_for_the_presence_timeout_leaves_the_muster_list() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}\n[identification]\npresence_timeout = \"2s\"\n"),
    );
    with_server(site.config(), async |state, addr| {
        let now = jiff::Timestamp::now();
        publish(
            port,
            "gatehouse/camera/C1/recognition",
            &[recognition("r1", "P-1", &now.to_string())],
        )
        .await
        .unwrap();
        publish(
            port,
            "gatehouse/turnstile/T1/passage",
            &[rotation("p1", "in", &now.to_string())],
        )
        .await
        .unwrap();
        settle(state).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen_inside = false;
        loop {
            let (_, csv) = get(addr, "/muster?format=csv").await;
            match csv.lines().count() {
                2 => seen_inside = true,
                1 if seen_inside => break,
                _ => {}
            }
            assert!(std::time::Instant::now() < deadline, "still listed: {csv}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let journal = rusqlite::Connection::open(site.paths().journal()).unwrap();
        assert_eq!(
            dump(
                &journal,
                "SELECT event_type FROM events WHERE stream_id LIKE 'presence:%' ORDER BY position"
            ),
            ["PassageIdentified", "PresenceTimedOut"]
        );
    });
}

#[test]
fn night_shifts_across_both_daylight_saving_changes_count_their_real_hours_on_the_day_they_began() {
    let port = free_port();
    // Last spring's and autumn's shifts, sent now by a gateway that stored them (device time is kept).
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        // Attendance days from noon: a night shift is one day.
        &format!(
            "{TWO_TURNSTILES_ONE_CAMERA}\n[devices]\nmax_backdate = \"400d\"\n\n[identification]\nday_starts_at = \"12:00\"\n"
        ),
    );
    with_server(site.config(), async |state, addr| {
        // 22:00 CET to 06:00 CEST (spring forward: 7 real hours), 22:00 CEST to 06:00 CET (fall back: 9).
        for (shift, arrive, leave) in [
            ("s", "2026-03-28T21:00:00Z", "2026-03-29T04:00:00Z"),
            ("f", "2026-10-24T20:00:00Z", "2026-10-25T05:00:00Z"),
        ] {
            let at = |base: &str, seconds: i64| {
                (base.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(seconds)).to_string()
            };
            // As the gateway saw them: the face a moment before each rotation.
            for (n, (base, direction)) in [(arrive, "in"), (leave, "out")].into_iter().enumerate() {
                publish(
                    port,
                    "gatehouse/camera/C1/recognition",
                    &[recognition(&format!("{shift}-r{n}"), "P-9", &at(base, -1))],
                )
                .await
                .unwrap();
                publish(
                    port,
                    "gatehouse/turnstile/T1/passage",
                    &[rotation(&format!("{shift}-p{n}"), direction, &at(base, 0))],
                )
                .await
                .unwrap();
            }
        }
        settle(state).await;
        let (status, csv) = get(addr, "/reports/attendance?from=2026-03-01&to=2026-10-31&format=csv").await;
        assert_eq!(status, 200, "{csv}");
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows,
            [
                "day,subject,first_in,last_out,inside_seconds",
                "2026-03-28,P-9,2026-03-28T22:00:00+01:00,2026-03-29T06:00:00+02:00,25200",
                "2026-10-24,P-9,2026-10-24T22:00:00+02:00,2026-10-25T06:00:00+01:00,32400",
            ],
            "{csv}"
        );
    });
}

#[test]
fn zone_counts_go_back_to_zero_at_reset_at_by_themselves() {
    let port = free_port();
    // The next whole minute of the site's clock (two when this one is nearly over, so the site is up first).
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let now = jiff::Timestamp::now().to_zoned_datetime(berlin);
    let ahead = if now.second() >= 45 { 2 } else { 1 };
    let reset = (now.timestamp() + jiff::SignedDuration::from_mins(ahead)).to_zoned_datetime(now.time_zone().clone());
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!(
            "{TWO_TURNSTILES_ONE_CAMERA}\n[occupancy]\nreset_at = \"{:02}:{:02}\"\n",
            reset.hour(),
            reset.minute()
        ),
    );
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        let passages: Vec<String> = (0..3)
            .map(|n| format!(r#"{{"msg_id":"z{n}","direction":"in"}}"#))
            .collect();
        publish(port, "gatehouse/turnstile/T1/passage", &passages)
            .await
            .unwrap();
        settle(state).await;
        let (_, dashboard) = get(addr, "/live/dashboard").await;
        assert!(dashboard.contains(r#"<td class="num occupancy">3</td>"#), "{dashboard}");
        // Nobody does anything: at reset_at the occupancy policy records the day's reset.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(200);
        while query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'OccupancyReset'",
        ) == 0
        {
            assert!(std::time::Instant::now() < deadline, "no reset by {reset}");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        settle(state).await;
        let (_, dashboard) = get(addr, "/live/dashboard").await;
        assert!(dashboard.contains(r#"<td class="num occupancy">0</td>"#), "{dashboard}");
        assert!(
            !dashboard.contains(r#"<td class="num occupancy">3</td>"#),
            "{dashboard}"
        );
        let (_, csv) = get(addr, "/reports/occupancy?zone=Hall+A&format=csv").await;
        let counts: Vec<&str> = csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap()).collect();
        assert_eq!(counts, ["1", "2", "3", "0"], "{csv}");
    });
    let journal = rusqlite::Connection::open(site.paths().journal()).unwrap();
    assert_eq!(
        dump(
            &journal,
            "SELECT event_type, actor FROM events WHERE stream_id = 'occupancy:site'"
        ),
        ["OccupancyReset|policy:occupancy"]
    );
}
