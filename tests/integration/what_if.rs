//! `gatehouse what-if`: a scratch copy of the journal up to an instant, injected device messages fed through the
//! normal ingest path, the figures printed beside the real ones or the copy's pages served; the live journal and
//! read tables stay byte for byte what they were.

use crate::helpers::*;
use gatehouse::domain::*;
use std::process::{Command, Stdio};

const DEVICES: &str = r#"
[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"
"#;

fn sha256(path: &std::path::Path) -> String {
    // A checkpoint first, so the file holds everything (the WAL is folded in).
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    gatehouse::archive::files::sha256_of(path).unwrap()
}

/// `[occupancy] reset_at` `minutes` from now, site time (HH:MM).
fn reset_in(minutes: i64) -> String {
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(minutes)).to_zoned_datetime(berlin);
    format!("{:02}:{:02}", at.hour(), at.minute())
}

/// A site with ten people through T1 (in), projected; its zones reset at `reset_at`.
fn site_resetting_at(reset_at: &str) -> Site {
    let site = Site::new(&format!("{DEVICES}\n[occupancy]\nreset_at = \"{reset_at}\"\n"));
    let mut events = vec![commissioned(
        DeviceKind::Turnstile,
        "Hall A north",
        "Hall A",
        "2026-03-01T06:00:00Z",
    )];
    for n in 0..10 {
        events.push(passage(Direction::In, &format!("2026-03-01T08:{n:02}:00Z")));
    }
    seed(&site.paths(), &[("T1", events)]);
    with_server(site.config(), async |state, _addr| settle(state).await);
    site
}

/// The same, resetting half a day away (no test run meets it).
fn site() -> Site {
    site_resetting_at(&reset_in(12 * 60))
}

/// Runs `gatehouse what-if --until UNTIL` on `site` with `lines` to inject; its output, once it succeeded.
fn what_if(site: &Site, until: jiff::Timestamp, lines: &[String]) -> String {
    let inject = site.dir.path().join("inject.jsonl");
    std::fs::write(&inject, lines.join("\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(site.dir.path())
        .args(["what-if", "--until", &until.to_string(), "--inject"])
        .arg(&inject)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// One figure's line of what-if's output: real, what-if and the difference.
fn figure(stdout: &str, name: &str) -> Vec<i64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} figure in:\n{stdout}"));
    line[name.len()..]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn injected_messages_change_the_copys_figures_and_never_the_live_data() {
    let site = site();
    let (journal, views) = (site.paths().journal(), site.paths().views());
    let before = (sha256(&journal), sha256(&views));
    let until = jiff::Timestamp::now();
    let at = |seconds: i64| (until + jiff::SignedDuration::from_secs(seconds)).to_string();
    let mut lines: Vec<String> = (0..5)
        .map(|n| {
            format!(
                r#"{{"topic":"turnstile/T1/passage","payload":{{"msg_id":"wi-{n}","direction":"in"}},"at":"{}"}}"#,
                at(60 + n)
            )
        })
        .collect();
    lines.push(format!(
        r#"{{"topic":"gatehouse/turnstile/T9/passage","payload":"{{\"direction\":\"in\"}}","at":"{}"}}"#,
        at(600)
    ));
    let stdout = what_if(&site, until, &lines);
    assert!(stdout.contains("fed 6 messages"), "{stdout}");
    assert!(stdout.contains("1 dead letters"), "{stdout}");
    assert!(stdout.contains("message 6 (in arrival order): dead letter"), "{stdout}");
    assert_eq!(
        figure(&stdout, "passages in, Hall A"),
        [0, 5, 5],
        "today's passages: none real, five injected"
    );
    assert_eq!(figure(&stdout, "inside now, Hall A"), [10, 15, 5]);
    // On the injected clock, T1 said nothing for the 90 s of offline_after after its last passage (+64 s) before
    // the last message (+600 s): it went offline in the copy.
    assert_eq!(figure(&stdout, "devices offline now"), [0, 1, 1]);

    // The live data is untouched.
    assert_eq!((sha256(&journal), sha256(&views)), before);
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        10
    );
}

#[test]
fn the_copy_serves_the_normal_pages_until_ctrl_c_and_the_live_data_stays_as_it_was() {
    let site = site();
    let journal = site.paths().journal();
    let token = gatehouse::auth::create_token(
        &gatehouse::auth::open(&journal).unwrap(),
        "what-if",
        gatehouse::auth::Role::Manager,
    )
    .unwrap();
    let before = sha256(&journal);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(site.dir.path())
        .args(["what-if", "--until", &jiff::Timestamp::now().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let addr = ([127, 0, 0, 1], port).into();
    let bearer = format!("Bearer {token}");
    // The port answers 503 while the copy recovers its devices, as a server's does.
    let mut page = http(addr, "GET", "/devices/T1", &[("Authorization", &bearer)], "");
    for _ in 0..400 {
        if page.status != 503 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        page = http(addr, "GET", "/devices/T1", &[("Authorization", &bearer)], "");
    }
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Hall A north"), "{}", page.body);
    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(sha256(&journal), before);
}

#[test]
fn the_occupancy_reset_happens_on_the_injected_clock() {
    // The reset falls five minutes from now: between the two injected passages, on the copy's clock only.
    let site = site_resetting_at(&reset_in(5));
    let until = jiff::Timestamp::now();
    let at = |seconds: i64| (until + jiff::SignedDuration::from_secs(seconds)).to_string();
    let lines = [
        format!(
            r#"{{"topic":"turnstile/T1/passage","payload":{{"msg_id":"r-1","direction":"in"}},"at":"{}"}}"#,
            at(30)
        ),
        format!(
            r#"{{"topic":"turnstile/T1/passage","payload":{{"msg_id":"r-2","direction":"in"}},"at":"{}"}}"#,
            at(900)
        ),
    ];
    let stdout = what_if(&site, until, &lines);
    // Real: the ten, nobody reset them. The copy: reset to 0 in between, then the second passage.
    assert_eq!(figure(&stdout, "inside now, Hall A"), [10, 1, -9], "{stdout}");
}

#[test]
fn a_maintenance_run_falls_due_on_the_injected_clock() {
    // A daily run five minutes from now (site time): only the copy's clock gets there.
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let run = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(5)).to_zoned_datetime(berlin);
    let site = Site::new(&format!(
        "{DEVICES}\n[occupancy]\nreset_at = \"{}\"\n\n[[maintenance]]\nid = \"daily-check\"\ncron = \"{} {} * * *\"\n\
         zone = \"Hall A\"\ntask = \"Check the arm\"\n",
        reset_in(12 * 60),
        run.minute(),
        run.hour()
    ));
    seed(
        &site.paths(),
        &[(
            "T1",
            vec![commissioned(
                DeviceKind::Turnstile,
                "Hall A north",
                "Hall A",
                "2026-03-01T06:00:00Z",
            )],
        )],
    );
    with_server(site.config(), async |state, _addr| settle(state).await);
    let until = jiff::Timestamp::now();
    let line = format!(
        r#"{{"topic":"turnstile/T1/heartbeat","payload":{{"msg_id":"h-1"}},"at":"{}"}}"#,
        until + jiff::SignedDuration::from_mins(15)
    );
    let stdout = what_if(&site, until, &[line]);
    assert_eq!(
        figure(&stdout, "work orders (all)"),
        [0, 1, 1],
        "the run due in between opened a preventive work order in the copy: {stdout}"
    );
}
