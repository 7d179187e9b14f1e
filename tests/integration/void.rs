//! A manager voids a wrongly recorded fact: a technician's test rotation (from the command line, with and without
//! a running server) and a recognition of the wrong person (from the device page). The journal keeps both the
//! fact and its correction; the traffic, occupancy and recognitions read tables leave the fact out, a rebuild
//! agrees, the timeline shows both, and a second void or a void of something that is not a fact is refused
//! with the reason.

use crate::helpers::*;
use gatehouse::auth::Role;
use gatehouse::domain::*;
use std::process::Command;

fn recognition(site: &Site, subject: &str, when: &str) -> DeviceEvent {
    DeviceEvent::RecognitionRecorded(RecognitionRecorded {
        subject: Some(sealed(&site.paths(), subject)),
        confidence: Confidence::new(0.97).unwrap(),
        at: at(when),
        seq: None,
    })
}

/// A site with two rotations in and one out on T1, and one recognition of `emp-1` by C1, all on 1 March.
fn seeded_site() -> Site {
    let site = Site::new(ONE_TURNSTILE_ONE_CAMERA);
    seed(
        &site.paths(),
        &[
            (
                "T1",
                vec![
                    commissioned(DeviceKind::Turnstile, "Hall A north", "Hall A", "2026-03-01T08:00:00Z"),
                    passage(Direction::In, "2026-03-01T09:00:00Z"),
                    passage(Direction::In, "2026-03-01T09:10:00Z"),
                    passage(Direction::Out, "2026-03-01T09:20:00Z"),
                ],
            ),
            (
                "C1",
                vec![
                    commissioned(DeviceKind::Camera, "Hall A entrance", "Hall A", "2026-03-01T08:00:00Z"),
                    recognition(&site, "emp-1", "2026-03-01T09:05:00Z"),
                ],
            ),
        ],
    );
    site
}

fn position_of(site: &Site, event_type: &str, nth: i64) -> i64 {
    query_i64(
        &site.paths().journal(),
        &format!(
            "SELECT position FROM events WHERE event_type = '{event_type}' ORDER BY position LIMIT 1 OFFSET {nth}"
        ),
    )
}

fn passages_in_on_march_first(site: &Site) -> i64 {
    query_i64(
        &site.paths().views(),
        "SELECT COALESCE(SUM(passages_in), 0) FROM traffic_daily WHERE device_id = 'T1' AND local_date = '2026-03-01'",
    )
}

fn zone_passages_in_that_hour(site: &Site) -> i64 {
    query_i64(
        &site.paths().views(),
        "SELECT COALESCE(SUM(passages_in), 0) FROM traffic_zone_hourly WHERE zone = 'Hall A' AND local_date = '2026-03-01'",
    )
}

#[test]
fn a_voided_rotation_leaves_the_reports_and_occupancy_and_the_timeline_shows_both() {
    let site = seeded_site();
    let journal = site.paths().journal();
    gatehouse::auth::add_user(
        &gatehouse::auth::open(&journal).unwrap(),
        "ben",
        Role::Manager,
        "a password",
    )
    .unwrap();
    let test_rotation = position_of(&site, "PassageRecorded", 1);
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        assert_eq!(passages_in_on_march_first(&site), 2);
        let occupancy_before = query_i64(
            &site.paths().views(),
            "SELECT count FROM occupancy WHERE zone = 'Hall A'",
        );

        // Through the running server: the command line leaves a request, the server carries it out.
        let cli = tokio::task::spawn_blocking({
            let dir = site.dir.path().to_owned();
            let position = test_rotation.to_string();
            move || {
                Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                    .current_dir(dir)
                    .args([
                        "--as",
                        "ben",
                        "void",
                        &position,
                        "--reason",
                        "technician's test rotation",
                    ])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&cli.stdout);
        assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
        assert!(
            stdout.contains(&format!(
                "T1: the passage at journal position {test_rotation} is void (technician's test rotation) (by user:ben"
            )),
            "{stdout}"
        );
        settle(state).await;
        assert_eq!(
            passages_in_on_march_first(&site),
            1,
            "the day report leaves the test rotation out"
        );
        assert_eq!(zone_passages_in_that_hour(&site), 1, "so does the zone's hour");
        let occupancy_after = query_i64(
            &site.paths().views(),
            "SELECT count FROM occupancy WHERE zone = 'Hall A'",
        );
        assert_eq!(
            occupancy_after,
            (occupancy_before - 1).max(0),
            "one person fewer inside"
        );
        assert_eq!(
            query_i64(
                &site.paths().views(),
                "SELECT COUNT(*) FROM occupancy_changes WHERE cause = 'void'"
            ),
            1
        );

        // The timeline shows the fact and its correction; a second void is refused with the reason.
        let session = tokio::task::spawn_blocking({
            let journal = journal.clone();
            move || Session::sign_in(&journal, addr, "ana", Role::Manager)
        })
        .await
        .unwrap();
        let (page, again) = tokio::task::spawn_blocking(move || {
            let page = session.get(addr, "/devices/T1").body;
            let again = session.post(
                addr,
                "/devices/T1/void",
                &format!("position={test_rotation}&reason=twice"),
            );
            (page, again)
        })
        .await
        .unwrap();
        assert!(
            page.contains("void: technician&#39;s test rotation (by user:ben"),
            "{page}"
        );
        assert!(page.contains("FactVoided"), "the correction is on the timeline too");
        assert_eq!(again.status, 303);
        let location = again.header("location").unwrap_or_default().to_owned();
        assert!(
            location.contains("already%20void") || location.contains("already+void"),
            "{location}"
        );
    });
    // Facts stay: the journal holds the rotation and its correction, referencing it.
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        3
    );
    assert_eq!(
        query_i64(&journal, "SELECT COUNT(*) FROM events WHERE event_type = 'FactVoided'"),
        1
    );

    // A rebuild from the journal comes to the same figures.
    let rebuild = site.gatehouse(&["rebuild"]);
    assert!(rebuild.status.success(), "{}", String::from_utf8_lossy(&rebuild.stderr));
    assert_eq!(passages_in_on_march_first(&site), 1);

    // Without a server: the command line starts a core of its own. Not a fact: refused, exit 1, with why.
    let commissioning = position_of(&site, "Commissioned", 0);
    let not_a_fact = site.gatehouse(&["void", &commissioning.to_string(), "--reason", "oops"]);
    assert_eq!(not_a_fact.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&not_a_fact.stderr);
    assert!(
        stderr.contains("only passages and recognitions can be voided"),
        "{stderr}"
    );
    let nowhere = site.gatehouse(&["void", "999999", "--reason", "oops"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("there is no event at journal position 999999"));
    let no_reason = site.gatehouse(&["void", &test_rotation.to_string(), "--reason", " "]);
    assert_eq!(no_reason.status.code(), Some(2));
    let again = site.gatehouse(&["void", &test_rotation.to_string(), "--reason", "again"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is already void"));
    // The other rotation is voided by a core of the command line's own.
    let other = position_of(&site, "PassageRecorded", 0);
    let own_core = site.gatehouse(&["void", &other.to_string(), "--reason", "second test"]);
    assert!(
        own_core.status.success(),
        "{}",
        String::from_utf8_lossy(&own_core.stderr)
    );
    assert_eq!(
        query_i64(&journal, "SELECT COUNT(*) FROM events WHERE event_type = 'FactVoided'"),
        2
    );
}

#[test]
fn a_recognition_of_the_wrong_person_voided_from_the_device_page_leaves_the_recognitions_report() {
    let site = seeded_site();
    let wrong_person = position_of(&site, "RecognitionRecorded", 0);
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        let known = || {
            query_i64(
                &site.paths().views(),
                "SELECT COALESCE(SUM(known), 0) FROM recognitions_daily WHERE camera_id = 'C1'",
            )
        };
        assert_eq!(known(), 1);
        let response = tokio::task::spawn_blocking({
            let journal = journal.clone();
            move || {
                let manager = Session::sign_in(&journal, addr, "ana", Role::Manager);
                manager.post(
                    addr,
                    "/devices/C1/void",
                    &format!("position={wrong_person}&reason=not+emp-1%2C+a+visitor"),
                )
            }
        })
        .await
        .unwrap();
        assert_eq!(response.status, 303);
        let location = response.header("location").unwrap_or_default().to_owned();
        assert!(location.starts_with("/devices/C1"), "{location}");
        settle(state).await;
        assert_eq!(known(), 0, "the recognitions report leaves it out");
        assert_eq!(
            query_i64(
                &site.paths().views(),
                "SELECT COUNT(*) FROM recognition_subjects WHERE camera_id = 'C1'"
            ),
            0,
            "nobody is listed as seen that day"
        );
        let actor: String = rusqlite::Connection::open(&journal)
            .unwrap()
            .query_row("SELECT actor FROM events WHERE event_type = 'FactVoided'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(actor, "user:ana");
    });
}
