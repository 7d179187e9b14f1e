//! Forgetting a person, end to end. ana.lopez-8812 (an identifier no schema comment or page text happens to hold) is watch-listed, recognized at a turnstile over MQTT (an alarm, an
//! identified passage, attendance), and sends a bad message (a dead letter); P-7 is recognized too. Before, the
//! pages show ana.lopez-8812 by name, and no database file ever holds the identifier in clear. `gatehouse forget ana.lopez-8812`
//! (while the server runs) leaves every count as it was, P-7 as they were, and ana.lopez-8812 nowhere: not in any page or
//! CSV, `gatehouse events`, the database files (after a checkpoint), an archive or a backup made afterwards. The
//! admin page's two-step form forgets P-7 the same way.

use crate::helpers::*;
use gatehouse::auth::Role;
use std::io::Read;

fn recognition(msg_id: &str, subject: &str, at: &str) -> String {
    format!(r#"{{"msg_id":"{msg_id}","subject":"{subject}","confidence":0.93,"at":"{at}"}}"#)
}

fn rotation(msg_id: &str, at: &str) -> String {
    format!(r#"{{"msg_id":"{msg_id}","direction":"in","at":"{at}"}}"#)
}

/// `minutes` after a start an hour ago, as RFC 3339.
fn t(minutes: f64) -> String {
    static START: std::sync::OnceLock<jiff::Timestamp> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1))
            .round(jiff::Unit::Minute)
            .unwrap()
    });
    (*start + jiff::SignedDuration::from_secs_f64(minutes * 60.0)).to_string()
}

/// `?from=&to=` covering the test's hour: from the day before it began (an attendance day starts at 04:00), site
/// time, to today.
fn period() -> String {
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let day = |at: jiff::Timestamp| at.to_zoned_datetime(berlin.clone()).date();
    let start: jiff::Timestamp = t(0.0).parse().unwrap();
    format!(
        "from={}&to={}",
        day(start).yesterday().unwrap(),
        day(jiff::Timestamp::now())
    )
}

/// Every file under `dir` (recursively), gzip files decompressed, that contains `needle`. The database files are
/// read by `grep`, another process: this one runs the server, and closing any descriptor of a SQLite file in the
/// process that holds its POSIX locks would release them.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let grep = std::process::Command::new("grep")
        .args(["-r", "-l", "-a", "-F", "--exclude=*.gz", needle])
        .arg(dir)
        .output()
        .unwrap();
    let mut found: Vec<String> = String::from_utf8_lossy(&grep.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "gz") {
                let mut plain = Vec::new();
                flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
                    .read_to_end(&mut plain)
                    .unwrap();
                if plain.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

/// Every page and CSV a manager could find a person on.
const PAGES: &[&str] = &[
    "/muster",
    "/muster?format=csv",
    "/reports/attendance?PERIOD",
    "/reports/attendance?format=csv&PERIOD",
    "/reports/recognitions?PERIOD",
    "/alarms",
    "/alarms?format=csv",
    "/alarms/A-000001",
    "/admin/watch-list",
    "/admin/watch-list?format=csv",
    "/admin/dead-letters",
    "/events",
    "/devices/C1",
    "/",
];

async fn pages(addr: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    for path in PAGES {
        let (status, body) = get(addr, &path.replace("PERIOD", &period())).await;
        assert_eq!(status, 200, "{path}: {body}");
        all.push((*path, body));
    }
    all
}

#[test]
fn a_forgotten_person_reads_as_forgotten_everywhere_and_every_count_stays() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    let listed = site.gatehouse(&[
        "watch",
        "add",
        "ana.lopez-8812",
        "--list",
        "banned",
        "--severity",
        "critical",
    ]);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("ana.lopez-8812 is on the banned list"),
        "{listed:?}"
    );

    let before = with_server(site.config(), async |state, addr| {
        let publish = |topic: &'static str, lines: Vec<String>| {
            tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, topic, &lines))
        };
        // Each face just before its rotation (the matcher keeps about a minute of faces).
        for (face, turn) in [
            (recognition("r1", "ana.lopez-8812", &t(0.0)), rotation("p1", &t(0.02))),
            (recognition("r2", "P-7", &t(10.0)), rotation("p2", &t(10.02))),
        ] {
            publish("gatehouse/camera/C1/recognition", vec![face]).await.unwrap();
            publish("gatehouse/turnstile/T1/passage", vec![turn]).await.unwrap();
        }
        // A bad message naming them: a dead letter.
        publish(
            "gatehouse/camera/C1/recognition",
            vec![r#"{"msg_id":"r3","subject":"ana.lopez-8812","confidence":7}"#.to_owned()],
        )
        .await
        .unwrap();
        eventually("two identified passages", || {
            try_query_i64(&site.paths().views(), "SELECT COUNT(*) FROM identified_passages") == Some(2)
        })
        .await;
        eventually("the dead letter", || {
            try_query_i64(&site.paths().journal(), "SELECT COUNT(*) FROM dead_letters") == Some(1)
        })
        .await;
        settle(state).await;
        let before = pages(addr).await;
        for (path, body) in &before {
            if ["/muster", "/alarms", "/admin/watch-list", "/events", "/devices/C1"].contains(path) {
                assert!(
                    body.contains("ana.lopez-8812"),
                    "{path} shows the person before: {body}"
                );
            }
        }
        let (_, recognitions) = get(addr, &format!("/reports/recognitions?{}", period())).await;
        assert!(
            recognitions.contains("ana.lopez-8812") && recognitions.contains("P-7"),
            "{recognitions}"
        );

        // Sealed from the start: no database file holds the identifier in clear, even before forgetting.
        let clear = files_containing(site.dir.path(), "ana.lopez-8812");
        assert!(clear.is_empty(), "in clear before forgetting: {clear:?}");

        let journal = site.paths().journal();
        let (forgot, journal_head) = {
            let dir = site.dir.path().to_owned();
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                    .current_dir(dir)
                    .args(["forget", "ana.lopez-8812"])
                    .output()
                    .unwrap();
                (out, query_i64(&journal, "SELECT MAX(position) FROM events"))
            })
            .await
            .unwrap()
        };
        assert!(forgot.status.success(), "{forgot:?}");
        assert!(
            String::from_utf8_lossy(&forgot.stdout).contains("ana.lopez-8812: the person is forgotten"),
            "{forgot:?}"
        );
        assert!(journal_head > 0);
        settle(state).await;

        let after = pages(addr).await;
        for (path, body) in &after {
            assert!(
                !body.contains("ana.lopez-8812"),
                "{path} still shows the person: {body}"
            );
        }
        let page = |path: &str| after.iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone()).unwrap();
        assert!(page("/muster").contains("<td>forgotten</td>"), "{}", page("/muster"));
        assert!(page("/muster").contains("<td>P-7</td>"), "{}", page("/muster"));
        assert!(page("/alarms").contains("subject forgotten"), "{}", page("/alarms"));
        assert!(
            page("/admin/watch-list").contains("Nobody is on the watch list"),
            "the entry is gone"
        );
        assert!(
            page("/reports/attendance?format=csv&PERIOD").contains(",forgotten,"),
            "{}",
            page("/reports/attendance?format=csv&PERIOD")
        );
        assert!(
            page("/admin/dead-letters").contains("forgotten"),
            "{}",
            page("/admin/dead-letters")
        );
        let (_, recognitions) = get(addr, &format!("/reports/recognitions?{}", period())).await;
        assert!(
            recognitions.contains("forgotten") && recognitions.contains("P-7"),
            "{recognitions}"
        );
        // Every count stays: the same two identified passages, two known recognitions.
        assert_eq!(
            query_i64(&site.paths().views(), "SELECT COUNT(*) FROM identified_passages"),
            2
        );
        assert_eq!(
            query_i64(&site.paths().views(), "SELECT SUM(known) FROM recognitions"),
            2,
            "recognitions stay counted"
        );
        before.len()
    });
    assert_eq!(before, PAGES.len());

    // The erasure is an event that names nobody; `gatehouse events` shows the person as forgotten.
    let events = site.gatehouse(&["events"]);
    assert!(events.status.success(), "{events:?}");
    let text = String::from_utf8_lossy(&events.stdout);
    assert!(!text.contains("ana.lopez-8812"), "{text}");
    assert!(text.contains(r#""type":"SubjectForgotten""#), "{text}");
    assert!(
        text.contains(r#""subject":"forgotten""#) && text.contains(r#""subject":"P-7""#),
        "{text}"
    );

    // An archive and a backup made afterwards, and every database file after a checkpoint: nowhere.
    let archived = site.gatehouse(&["archive", "--before", "2999-01-01"]);
    assert!(archived.status.success(), "{archived:?}");
    let backup_dir = site.dir.path().join("backup");
    let backup = site.gatehouse(&["backup", backup_dir.to_str().unwrap()]);
    assert!(backup.status.success(), "{backup:?}");
    for db in [site.paths().journal(), site.paths().views()] {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let found = files_containing(site.dir.path(), "ana.lopez-8812");
    assert!(found.is_empty(), "the forgotten identifier is still in {found:?}");
    // The archive holds the recognitions, and names nobody in clear (P-7 neither: sealed like everyone).
    let archive = site.dir.path().join("archive");
    assert!(
        !files_containing(&archive, "RecognitionRecorded").is_empty(),
        "nothing archived"
    );
    assert_eq!(files_containing(&archive, "P-7"), Vec::<String>::new());
}

#[test]
fn an_admin_forgets_a_person_from_the_admin_page_after_confirming() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        tokio::task::spawn_blocking(move || {
            mosquitto_pub_lines(
                port,
                "gatehouse/camera/C1/recognition",
                &[recognition("r1", "emp <7>", &t(0.0))],
            )
        })
        .await
        .unwrap();
        eventually("the recognition", || {
            try_query_i64(&site.paths().views(), "SELECT COUNT(*) FROM recognition_subjects") == Some(1)
        })
        .await;
        settle(state).await;
        let journal = site.paths().journal();
        let (manager, admin) = tokio::task::spawn_blocking(move || {
            (
                Session::sign_in(&journal, addr, "mia", Role::Manager),
                Session::sign_in(&journal, addr, "ada", Role::Admin),
            )
        })
        .await
        .unwrap();
        let refused = manager.post(addr, "/admin/forget", "subject=emp+%3C7%3E");
        assert_eq!(refused.status, 403, "{}", refused.body);

        let unknown = admin.post(addr, "/admin/forget", "subject=nobody");
        assert!(
            unknown.body.contains("nothing is stored under that identifier"),
            "{}",
            unknown.body
        );
        let asked = admin.post(addr, "/admin/forget", "subject=emp+%3C7%3E");
        assert_eq!(asked.status, 200, "{}", asked.body);
        assert!(asked.body.contains("Forget emp &#60;7&#62;?"), "{}", asked.body);
        assert!(asked.body.contains("cannot be undone"), "{}", asked.body);
        let (_, before) = get(addr, &format!("/reports/recognitions?{}", period())).await;
        let subjects = before
            .split("ubjects")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take(1500)
            .collect::<String>();
        assert!(before.contains("emp &#60;7&#62;"), "asking forgets nothing: {subjects}");

        let person = asked
            .body
            .split(r#"name="person" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        let done = admin.post(addr, "/admin/forget/confirm", &format!("person={person}"));
        assert_eq!(done.status, 303, "{}", done.body);
        let location = done.header("location").unwrap_or_default().to_owned();
        assert!(!location.contains("emp"), "no URL carries the identifier: {location}");
        let notice = admin.get(addr, &location);
        assert!(notice.body.contains("the person is forgotten"), "{}", notice.body);
        settle(state).await;
        let (_, after) = get(addr, &format!("/reports/recognitions?{}", period())).await;
        assert!(
            !after.contains("emp &#60;7&#62;") && after.contains("forgotten"),
            "{after}"
        );
        let again = admin.post(addr, "/admin/forget", "subject=emp+%3C7%3E");
        assert!(
            again.body.contains("nothing is stored under that identifier"),
            "{}",
            again.body
        );
    });
}
