//! The report pages against a real server, fed through the real pipeline (MQTT payloads into the ingestor, the
//! device actors, the journal writer and the projectors): their CSV rows must be exactly what was fed in, in the
//! site's time zone (Europe/Berlin, daylight-saving days included), device-sent text must arrive escaped, and bad
//! parameters or empty periods must say what to do.

use crate::helpers::*;
use gatehouse::domain::*;
use gatehouse::ingest::Ingested;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;
use gatehouse::journal::JournalReader;
use gatehouse::projection;
use gatehouse::web::AppState;

/// Hands one device message to the ingestor, as the MQTT endpoint would, `received` being the receive time (the
/// time of `status` messages, which carry none of their own).
async fn send(state: &AppState, topic: &str, payload: &str, received: &str) {
    let outcome = state
        .ingestor
        .ingest(Received::once(
            &format!("gatehouse/{topic}"),
            payload.as_bytes(),
            at(received),
            Actor::gateway("test"),
        ))
        .await
        .expect("the journal accepts it");
    assert!(
        matches!(outcome, Ingested::Recorded { .. }),
        "{topic} {payload}: {outcome:?}"
    );
}

/// A passage message with its own device time.
async fn passage_at(state: &AppState, device: &str, direction: &str, when: &str) {
    let payload = format!(r#"{{"msg_id":"{device}-{when}-{direction}","at":"{when}","direction":"{direction}"}}"#);
    send(state, &format!("turnstile/{device}/passage"), &payload, when).await;
}

/// GETs a CSV report and returns its lines (header first), after checking the status.
async fn csv(addr: std::net::SocketAddr, path: &str) -> Vec<String> {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(body.ends_with("\r\n"), "{path}: rows end with CRLF: {body:?}");
    body.lines().map(str::to_owned).collect()
}

/// Two turnstiles in two zones, one day apart, in hours that straddle nothing special (CET, UTC+1).
async fn feed_plain_traffic(state: &AppState) {
    passage_at(state, "T1", "in", "2026-03-02T08:10:00Z").await;
    passage_at(state, "T1", "in", "2026-03-02T08:50:00Z").await;
    passage_at(state, "T2", "out", "2026-03-02T08:30:00Z").await;
    passage_at(state, "T1", "out", "2026-03-02T09:05:00Z").await;
    passage_at(state, "T2", "in", "2026-03-03T10:00:00Z").await;
    // Outside the periods asked for below: local 2026-03-01 23:59 and 2026-03-04 00:00.
    passage_at(state, "T1", "in", "2026-03-01T22:59:00Z").await;
    passage_at(state, "T1", "in", "2026-03-03T23:00:00Z").await;
    settle(state).await;
}

#[test]
fn the_traffic_csv_has_one_row_per_local_hour_and_device_with_the_site_offset() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        feed_plain_traffic(state).await;
        assert_eq!(
            csv(addr, "/reports/traffic?from=2026-03-02&to=2026-03-02&format=csv").await,
            [
                "bucket_start,device,zone,in,out",
                "2026-03-02T09:00:00+01:00,T1,Hall A,2,0",
                "2026-03-02T09:00:00+01:00,T2,Hall B,0,1",
                "2026-03-02T10:00:00+01:00,T1,Hall A,0,1",
            ]
        );
    });
}

#[test]
fn the_traffic_csv_sums_local_days_and_honours_the_device_and_zone_filters() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        feed_plain_traffic(state).await;
        assert_eq!(
            csv(addr, "/reports/traffic?from=2026-03-02&to=2026-03-03&format=csv").await,
            [
                "bucket_start,device,zone,in,out",
                "2026-03-02T00:00:00+01:00,T1,Hall A,2,1",
                "2026-03-02T00:00:00+01:00,T2,Hall B,0,1",
                "2026-03-03T00:00:00+01:00,T2,Hall B,1,0",
            ]
        );
        assert_eq!(
            csv(
                addr,
                "/reports/traffic?from=2026-03-02&to=2026-03-03&bucket=day&device=T2&format=csv"
            )
            .await,
            [
                "bucket_start,device,zone,in,out",
                "2026-03-02T00:00:00+01:00,T2,Hall B,0,1",
                "2026-03-03T00:00:00+01:00,T2,Hall B,1,0",
            ]
        );
        assert_eq!(
            csv(
                addr,
                "/reports/traffic?from=2026-03-02&to=2026-03-03&zone=Hall+A&format=csv"
            )
            .await,
            [
                "bucket_start,device,zone,in,out",
                "2026-03-02T00:00:00+01:00,T1,Hall A,2,1"
            ]
        );
        assert_eq!(
            csv(
                addr,
                "/reports/traffic?from=2026-03-02&to=2026-03-02&bucket=hour&zone=Hall%20B&format=csv"
            )
            .await,
            [
                "bucket_start,device,zone,in,out",
                "2026-03-02T09:00:00+01:00,T2,Hall B,0,1"
            ]
        );
    });
}

#[test]
fn a_spring_forward_day_has_23_hourly_buckets_on_the_right_local_hours_and_its_day_bucket_sums_them() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        // One passage in each real hour of 2026-03-29 in Berlin: 23:30Z on the 28th is 00:30 CET; 01:30Z is
        // already 03:30 CEST (02:00 local does not exist); 21:30Z is 23:30 CEST.
        let start = at("2026-03-28T23:30:00Z");
        for h in 0..23 {
            let when = (start + jiff::SignedDuration::from_hours(h)).to_string();
            passage_at(state, "T1", "in", &when).await;
        }
        // Just outside the day, on both sides.
        passage_at(state, "T1", "in", "2026-03-28T22:59:59Z").await;
        passage_at(state, "T1", "in", "2026-03-29T22:00:00Z").await;
        settle(state).await;

        let hours = csv(addr, "/reports/traffic?from=2026-03-29&to=2026-03-29&format=csv").await;
        let mut expected = vec!["bucket_start,device,zone,in,out".to_owned()];
        expected.push("2026-03-29T00:00:00+01:00,T1,Hall A,1,0".into());
        expected.push("2026-03-29T01:00:00+01:00,T1,Hall A,1,0".into());
        expected.extend((3..24).map(|h| format!("2026-03-29T{h:02}:00:00+02:00,T1,Hall A,1,0")));
        assert_eq!(hours, expected);
        assert_eq!(hours.len() - 1, 23);

        assert_eq!(
            csv(
                addr,
                "/reports/traffic?from=2026-03-29&to=2026-03-29&bucket=day&format=csv"
            )
            .await,
            [
                "bucket_start,device,zone,in,out",
                "2026-03-29T00:00:00+01:00,T1,Hall A,23,0"
            ]
        );
        let (status, page) = get(addr, "/reports/traffic?from=2026-03-29&to=2026-03-29").await;
        assert_eq!(status, 200);
        assert!(page.contains("2026-03-29 03:00 CEST"), "{page}");
        assert!(page.contains("2026-03-29 01:00 CET"), "{page}");
    });
}

#[test]
fn a_fall_back_day_has_25_hourly_buckets_with_two_0200_rows_told_apart_by_their_offset() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        // One passage in each real hour of 2026-10-25 in Berlin: 22:30Z on the 24th is 00:30 CEST; 00:30Z is
        // 02:30 CEST and 01:30Z 02:30 CET (the hour from 02:00 to 03:00 happens twice); 22:30Z is 23:30 CET.
        let start = at("2026-10-24T22:30:00Z");
        for h in 0..25 {
            let when = (start + jiff::SignedDuration::from_hours(h)).to_string();
            passage_at(state, "T1", "in", &when).await;
        }
        settle(state).await;
        let hours = csv(addr, "/reports/traffic?from=2026-10-25&to=2026-10-25&format=csv").await;
        let mut expected = vec!["bucket_start,device,zone,in,out".to_owned()];
        expected.extend((0..3).map(|h| format!("2026-10-25T{h:02}:00:00+02:00,T1,Hall A,1,0")));
        expected.extend((2..24).map(|h| format!("2026-10-25T{h:02}:00:00+01:00,T1,Hall A,1,0")));
        assert_eq!(hours, expected);
        assert_eq!(hours.len() - 1, 25);
        assert_eq!(
            csv(
                addr,
                "/reports/traffic?from=2026-10-25&to=2026-10-25&bucket=day&format=csv"
            )
            .await,
            [
                "bucket_start,device,zone,in,out",
                "2026-10-25T00:00:00+02:00,T1,Hall A,25,0"
            ]
        );
    });
}

#[test]
fn the_traffic_page_draws_its_chart_lists_the_rows_and_totals_them() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        feed_plain_traffic(state).await;
        let (status, page) = get(addr, "/reports/traffic?from=2026-03-02&to=2026-03-03").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<svg viewBox=\"0 0 800 260\" role=\"img\""), "{page}");
        assert!(
            page.contains(
                "<title id=\"traffic-chart-title\">Passages in and out per day, 2026-03-02 to 2026-03-03</title>"
            ),
            "{page}"
        );
        // Two days, two bars each.
        assert_eq!(page.matches("<rect class=\"bar-").count(), 4, "{page}");
        assert!(page.contains(
            "<tfoot><tr><th scope=\"row\" colspan=\"3\">Total</th><td class=\"num\">3</td><td class=\"num\">2</td>"
        ));
        assert!(
            page.contains("<option value=\"Hall B\">Hall B</option>"),
            "the zone filter lists known zones"
        );
        assert!(
            page.contains("<option value=\"T2\">T2</option>"),
            "the device filter lists known devices"
        );
        assert!(
            page.contains("href=\"/reports/traffic?from=2026-03-02&#38;to=2026-03-03&#38;bucket=day&#38;format=csv\""),
            "{page}"
        );
    });
}

#[test]
fn equipment_shows_uptime_faults_and_repair_time_as_worked_out_by_hand() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        // The period is 2026-03-02 in Berlin (CET): 2026-03-01T23:00Z to 2026-03-02T23:00Z, 24 hours.
        // T1: online from before the period; offline 11:00Z to 17:00Z; online again to the end.
        //     Online 12 h + 6 h, offline 6 h: 75.00 %. Faults opened in the period: JAM (05:00Z, cleared 17:30Z:
        //     12.5 h = 45000 s) and DOOR (20:00Z, still open): 2, mean time to repair 45000 s.
        send(state, "turnstile/T1/status", "online", "2026-03-01T20:00:00Z").await;
        send(
            state,
            "turnstile/T1/fault",
            r#"{"msg_id":"f1","at":"2026-03-02T05:00:00Z","code":"JAM","detail":"<script>alert('jam')</script>"}"#,
            "2026-03-02T05:00:00Z",
        )
        .await;
        send(state, "turnstile/T1/status", "offline", "2026-03-02T11:00:00Z").await;
        send(state, "turnstile/T1/status", "online", "2026-03-02T17:00:00Z").await;
        send(
            state,
            "turnstile/T1/fault_cleared",
            r#"{"msg_id":"f2","at":"2026-03-02T17:30:00Z","code":"JAM"}"#,
            "2026-03-02T17:30:00Z",
        )
        .await;
        send(
            state,
            "turnstile/T1/fault",
            r#"{"msg_id":"f3","at":"2026-03-02T20:00:00Z","code":"DOOR","detail":"door sensor"}"#,
            "2026-03-02T20:00:00Z",
        )
        .await;
        // T2: its fault report (22:00Z the day before) is its first sign of life, so it is online from then on:
        //     100.00 %. The fault opened before the period (not counted) and cleared in it after 2 h: 7200 s.
        send(
            state,
            "turnstile/T2/fault",
            r#"{"msg_id":"g1","at":"2026-03-01T22:00:00Z","code":"JAM","detail":""}"#,
            "2026-03-01T22:00:00Z",
        )
        .await;
        send(
            state,
            "turnstile/T2/fault_cleared",
            r#"{"msg_id":"g2","at":"2026-03-02T00:00:00Z","code":"JAM"}"#,
            "2026-03-02T00:00:00Z",
        )
        .await;
        // C1 never reported: its uptime is unknown, not zero.
        settle(state).await;

        assert_eq!(
            csv(addr, "/reports/equipment?from=2026-03-02&to=2026-03-02&format=csv").await,
            [
                "device,kind,uptime_pct,faults,mttr_seconds",
                "C1,camera,,0,",
                "T1,turnstile,75.00,2,45000",
                "T2,turnstile,100.00,0,7200",
            ]
        );
        let (status, page) = get(addr, "/reports/equipment?from=2026-03-02&to=2026-03-02").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("75.00 %"), "{page}");
        assert!(page.contains("<span title=\"no online or offline report in this period\">—</span>"));
        assert!(page.contains("<span title=\"45000 seconds\">12h 30m</span>"), "{page}");
        // Episodes in site time: the JAM opened at 06:00 CET and was cleared at 18:30; DOOR is still open.
        assert!(
            page.contains("<td>2026-03-02 06:00:00</td><td>2026-03-02 18:30:00</td>"),
            "{page}"
        );
        assert!(page.contains("still open"), "{page}");
    });
}

#[test]
fn device_sent_markup_in_a_fault_detail_or_a_subject_is_shown_escaped() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        send(
            state,
            "turnstile/T1/fault",
            r#"{"msg_id":"f1","at":"2026-03-02T05:00:00Z","code":"JAM","detail":"<script>alert('jam')</script>"}"#,
            "2026-03-02T05:00:00Z",
        )
        .await;
        send(
            state,
            "camera/C1/recognition",
            r#"{"msg_id":"r1","at":"2026-03-02T05:00:00Z","subject":"<script>alert(1)</script>","confidence":0.9}"#,
            "2026-03-02T05:00:00Z",
        )
        .await;
        settle(state).await;
        for path in [
            "/reports/equipment?from=2026-03-02&to=2026-03-02",
            "/reports/recognitions?from=2026-03-02&to=2026-03-02",
        ] {
            let (status, page) = get(addr, path).await;
            assert_eq!(status, 200, "{path}: {page}");
            assert!(!page.contains("<script>alert"), "{path}: {page}");
            assert!(page.contains("&#60;script&#62;alert("), "{path}: {page}");
        }
    });
}

#[test]
fn recognitions_count_known_and_unknown_faces_per_camera_and_hour_and_list_the_subjects() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        let recognition = async |n: u32, when: &str, subject: &str| {
            let payload = format!(r#"{{"msg_id":"r{n}","at":"{when}","subject":{subject},"confidence":0.8}}"#);
            send(state, "camera/C1/recognition", &payload, when).await;
        };
        recognition(1, "2026-03-02T08:10:00Z", r#""P-1042""#).await;
        recognition(2, "2026-03-02T08:20:00Z", "null").await;
        recognition(3, "2026-03-02T08:40:00Z", r#""P-7""#).await;
        recognition(4, "2026-03-02T09:15:00Z", "null").await;
        recognition(5, "2026-03-03T09:15:00Z", r#""P-1042""#).await;
        settle(state).await;

        assert_eq!(
            csv(addr, "/reports/recognitions?from=2026-03-02&to=2026-03-02&format=csv").await,
            [
                "bucket_start,camera,known,unknown",
                "2026-03-02T09:00:00+01:00,C1,2,1",
                "2026-03-02T10:00:00+01:00,C1,0,1",
            ]
        );
        assert_eq!(
            csv(
                addr,
                "/reports/recognitions?from=2026-03-02&to=2026-03-03&camera=C1&format=csv"
            )
            .await,
            [
                "bucket_start,camera,known,unknown",
                "2026-03-02T00:00:00+01:00,C1,2,2",
                "2026-03-03T00:00:00+01:00,C1,1,0",
            ]
        );
        let (status, page) = get(addr, "/reports/recognitions?from=2026-03-02&to=2026-03-03").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<svg viewBox=\"0 0 800 260\" role=\"img\""), "{page}");
        assert!(page.contains("<title id=\"recognitions-chart-title\">"), "{page}");
        // Most seen first, with the cameras that saw them.
        assert!(
            page.contains(
                "<tr><td>P-1042</td><td class=\"num\">2</td><td>C1</td></tr>\n<tr><td>P-7</td><td class=\"num\">1</td>"
            ),
            "{page}"
        );
        // Sightings landing in the period are in the list the next time it is shown.
        recognition(6, "2026-03-03T10:00:00Z", r#""P-7""#).await;
        recognition(7, "2026-03-03T10:05:00Z", r#""P-7""#).await;
        settle(state).await;
        let (_, page) = get(addr, "/reports/recognitions?from=2026-03-02&to=2026-03-03").await;
        assert!(
            page.contains(
                "<tr><td>P-7</td><td class=\"num\">3</td><td>C1</td></tr>\n<tr><td>P-1042</td><td class=\"num\">2</td>"
            ),
            "{page}"
        );
    });
}

#[test]
fn eleven_busy_days_per_hour_list_totals_per_hour_on_the_page_and_every_row_in_the_csv() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        // 2 turnstiles x 264 local hours (2026-03-02 00:30 to 03-12 23:30 CET) = 528 per-device rows.
        let start = at("2026-03-01T23:30:00Z");
        for hour in 0..264 {
            let when = (start + jiff::SignedDuration::from_hours(hour)).to_string();
            passage_at(state, "T1", "in", &when).await;
            passage_at(state, "T2", "out", &when).await;
        }
        settle(state).await;
        let path = "/reports/traffic?from=2026-03-02&to=2026-03-12&bucket=hour";
        let (status, page) = get(addr, path).await;
        assert_eq!(status, 200);
        assert!(page.contains("Totals per hour across devices"), "{page}");
        assert_eq!(
            page.matches("<td>all devices</td><td>all zones</td><td class=\"num\">1</td><td class=\"num\">1</td>")
                .count(),
            264,
            "{page}"
        );
        assert!(page.contains("<td>2026-03-12 23:00 CET</td>"), "{page}");
        let rows = csv(addr, &format!("{path}&format=csv")).await;
        assert_eq!(rows.len(), 1 + 528, "the CSV keeps one row per hour and device");
    });
}

#[test]
fn a_long_period_of_many_cameras_lists_recognition_totals_per_day_and_every_row_in_the_csv() {
    let site = Site::new(&format!(
        "{TWO_TURNSTILES_ONE_CAMERA}
[[camera]]
id = \"C2\"
name = \"Hall B entrance\"
zone = \"Hall B\"
watches = [\"T2\"]
"
    ));
    with_server(site.config(), async |state, addr| {
        // 2 cameras x 260 days = 520 per-camera rows: more than a page lists.
        let start = at("2025-06-01T10:00:00Z");
        for day in 0..260 {
            let when = (start + jiff::SignedDuration::from_hours(24 * day)).to_string();
            for (camera, subject) in [("C1", r#""P-1""#), ("C2", "null")] {
                let payload =
                    format!(r#"{{"msg_id":"{camera}-{day}","at":"{when}","subject":{subject},"confidence":0.8}}"#);
                send(state, &format!("camera/{camera}/recognition"), &payload, &when).await;
            }
        }
        settle(state).await;
        let path = "/reports/recognitions?from=2025-06-01&to=2026-02-15&bucket=day";
        let (status, page) = get(addr, path).await;
        assert_eq!(status, 200);
        assert!(page.contains("Totals per day across cameras"), "{page}");
        assert_eq!(
            page.matches("<td>all cameras</td><td class=\"num\">1</td><td class=\"num\">1</td>")
                .count(),
            260,
            "{page}"
        );
        assert!(
            page.contains("<tr><td>P-1</td><td class=\"num\">260</td><td>C1</td></tr>"),
            "{page}"
        );
        let rows = csv(addr, &format!("{path}&format=csv")).await;
        assert_eq!(rows.len(), 1 + 520, "the CSV keeps one row per day and camera");
        let (_, c2) = get(addr, &format!("{path}&camera=C2")).await;
        assert!(!c2.contains("Totals per day across cameras"));
        assert_eq!(c2.matches("<a href=\"/devices/C2\">C2</a>").count(), 260);
        assert!(c2.contains("Nobody was recognized in this period"), "{c2}");
    });
}

#[test]
fn bad_report_parameters_get_a_400_that_says_what_is_wrong() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |_, addr| {
        let cases = [
            (
                "/reports/traffic?from=2026-02-30",
                "from: \"2026-02-30\" is not a date (expected YYYY-MM-DD)\n",
            ),
            (
                "/reports/traffic?from=2026-03-08&to=2026-03-01",
                "from (2026-03-08) is after to (2026-03-01)\n",
            ),
            ("/reports/traffic?bucket=week", "bucket: \"week\" is not hour or day\n"),
            (
                "/reports/traffic?device=T%3C1",
                "device: device id \"T<1\" may only contain letters, digits, '_' and '-'\n",
            ),
            (
                "/reports/equipment?from=2026-03-01&bucket=day",
                "unknown parameter \"bucket\": this report takes from, to, format\n",
            ),
            (
                "/reports/recognitions?format=pdf",
                "format: \"pdf\" is not html or csv\n",
            ),
        ];
        for (path, message) in cases {
            assert_eq!(get(addr, path).await, (400, message.to_owned()), "{path}");
        }
    });
}

#[test]
fn an_empty_period_says_what_to_check() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |_, addr| {
        let (status, page) = get(addr, "/reports/traffic?from=2026-03-01&to=2026-03-07").await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains("No passages in this period: check the dates, or whether gateways are publishing"),
            "{page}"
        );
        let (status, page) = get(addr, "/reports/recognitions").await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains("No recognitions in this period: check the dates"),
            "{page}"
        );
        let (status, page) = get(addr, "/reports/equipment?from=2026-03-01&to=2026-03-07").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("No faults in this period."), "{page}");
        assert_eq!(
            csv(addr, "/reports/traffic?from=2026-03-01&to=2026-03-07&format=csv").await,
            ["bucket_start,device,zone,in,out"]
        );
    });
}

#[test]
fn rebuilding_the_report_projections_recreates_the_same_rows() {
    let site = Site::new("");
    let recognition = |subject: Option<&str>, when: &str| {
        DeviceEvent::RecognitionRecorded(RecognitionRecorded {
            subject: subject.map(|s| sealed(&site.paths(), s)),
            confidence: Confidence::new(0.9).unwrap(),
            at: at(when),
            seq: None,
        })
    };
    seed(
        &site.paths(),
        &[
            (
                "T1",
                vec![
                    commissioned(DeviceKind::Turnstile, "North", "Hall A", "2026-03-01T00:00:00Z"),
                    DeviceEvent::CameOnline(CameOnline {
                        at: at("2026-03-01T01:00:00Z"),
                    }),
                    DeviceEvent::FaultReported(FaultReported {
                        code: FaultCode::parse("JAM").unwrap(),
                        detail: "stuck".into(),
                        at: at("2026-03-01T02:00:00Z"),
                        seq: None,
                    }),
                    DeviceEvent::WentOffline(WentOffline {
                        at: at("2026-03-01T03:00:00Z"),
                    }),
                    DeviceEvent::FaultCleared(FaultCleared {
                        code: FaultCode::parse("JAM").unwrap(),
                        at: at("2026-03-01T04:00:00Z"),
                        seq: None,
                    }),
                ],
            ),
            (
                "C1",
                vec![
                    commissioned(DeviceKind::Camera, "Entrance", "Hall A", "2026-03-01T00:00:00Z"),
                    recognition(Some("P-1"), "2026-03-01T05:00:00Z"),
                    recognition(None, "2026-03-01T05:10:00Z"),
                ],
            ),
        ],
    );
    let journal = JournalReader::open(&site.paths().journal()).unwrap();
    let mut views = gatehouse::db::open(&site.paths().views(), gatehouse::config::Synchronous::Normal).unwrap();
    gatehouse::db::migrate_views(&mut views).unwrap();
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
        "SELECT * FROM equipment_devices ORDER BY device_id",
        "SELECT * FROM equipment_faults ORDER BY device_id, opened_at",
        "SELECT * FROM equipment_availability ORDER BY device_id, started_at",
        "SELECT * FROM recognitions ORDER BY bucket_start, camera_id",
        "SELECT * FROM recognition_subjects ORDER BY local_date, camera_id, subject",
        "SELECT * FROM recognitions_daily ORDER BY local_date, camera_id",
        "SELECT * FROM recognition_subject_days ORDER BY local_date",
    ];
    let live: Vec<_> = queries.iter().map(|q| dump(&views, q)).collect();
    assert_eq!(
        live[2],
        [
            // Each interval with the time online and known (µs) in the device's earlier ones: 2 h online.
            format!(
                "T1|online|{}|{}|0|0",
                micros("2026-03-01T01:00:00Z"),
                micros("2026-03-01T03:00:00Z")
            ),
            format!(
                "T1|offline|{}|NULL|7200000000|7200000000",
                micros("2026-03-01T03:00:00Z")
            ),
        ]
    );
    views
        .execute_batch(
            "DELETE FROM equipment_faults; UPDATE recognitions SET known = 99; DELETE FROM recognitions_daily;
             UPDATE equipment_availability SET known_before = 0;",
        )
        .unwrap();

    let output = site.gatehouse(&["rebuild", "equipment", "recognitions"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rebuilt: Vec<_> = queries.iter().map(|q| dump(&views, q)).collect();
    assert_eq!(rebuilt, live);
    // Each swap counts, so what pages keep from these tables is worked out again.
    assert_eq!(
        dump(&views, "SELECT * FROM rebuilds ORDER BY projection"),
        ["equipment|1", "recognitions|1"]
    );
}

fn micros(when: &str) -> i64 {
    at(when).as_microsecond()
}

#[test]
fn a_long_busy_period_lists_totals_per_day_on_the_page_and_every_row_in_the_csv() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        // 2 turnstiles x 260 days = 520 per-device rows: more than a page lists.
        let start = at("2025-06-01T10:00:00Z");
        for day in 0..260 {
            let when = (start + jiff::SignedDuration::from_hours(24 * day)).to_string();
            passage_at(state, "T1", "in", &when).await;
            passage_at(state, "T2", "out", &when).await;
        }
        settle(state).await;
        let path = "/reports/traffic?from=2025-06-01&to=2026-02-15&bucket=day";
        let (status, page) = get(addr, path).await;
        assert_eq!(status, 200);
        assert!(page.contains("Totals per day across devices"), "{page}");
        assert!(
            page.contains("<td>all devices</td><td>all zones</td><td class=\"num\">1</td><td class=\"num\">1</td>"),
            "{page}"
        );
        assert!(
            !page.contains("<a href=\"/devices/T1\">T1</a></td>"),
            "no per-device rows"
        );
        assert_eq!(page.matches("<td>all devices</td>").count(), 260);
        let rows = csv(addr, &format!("{path}&format=csv")).await;
        assert_eq!(rows.len(), 1 + 520, "the CSV keeps one row per day and device");
        // With a device chosen the page lists that device's rows again.
        let (_, t1) = get(
            addr,
            "/reports/traffic?from=2025-06-01&to=2026-02-15&bucket=day&device=T1",
        )
        .await;
        assert!(!t1.contains("Totals per day across devices"));
        assert_eq!(t1.matches("<a href=\"/devices/T1\">T1</a>").count(), 260);
    });
}
