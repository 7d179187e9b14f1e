//! Alarms end to end: a watched subject recognized over MQTT raises one alarm whose count follows the sightings
//! (low confidence and unwatched subjects raise none), a rotation during a lock-out raises a critical one, and
//! people list, acknowledge and clear them from the command line.

use crate::helpers::*;

fn lines(output: &std::process::Output) -> Vec<String> {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn columns(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

#[test]
fn a_watched_subject_seen_over_mqtt_raises_one_alarm_that_people_acknowledge_and_clear() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    gatehouse::auth::add_user(
        &gatehouse::auth::open(&site.paths().journal()).unwrap(),
        "cleo",
        gatehouse::auth::Role::Manager,
        "a password",
    )
    .unwrap();
    let added = lines(&site.gatehouse(&[
        "watch",
        "add",
        "P-1042",
        "--list",
        "banned",
        "--severity",
        "major",
        "--note",
        "shoplifting",
    ]));
    assert!(
        added[0].starts_with("P-1042 is on the banned list (major) (by cli:"),
        "{added:?}"
    );
    assert_eq!(
        columns(&lines(&site.gatehouse(&["watch", "list"]))[0]),
        ["P-1042", "banned", "major", "-", "shoplifting"]
    );
    // Managing the watch list takes an admin, on the command line as on /admin/watch-list.
    let by_manager = site.gatehouse(&["--as", "cleo", "watch", "remove", "P-1042"]);
    assert_eq!(by_manager.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&by_manager.stderr).contains("--as cleo: changing the watch list takes an admin"),
        "{by_manager:?}"
    );
    assert_eq!(lines(&site.gatehouse(&["watch", "list"])).len(), 1);
    with_app(site.config(), async |app| {
        let recognitions = [
            r#"{"msg_id":"r1","subject":"P-1042","confidence":0.93}"#,
            r#"{"msg_id":"r2","subject":"P-1042","confidence":0.95}"#,
            // Not sure enough: nobody is identified.
            r#"{"msg_id":"r3","subject":"P-1042","confidence":0.5}"#,
            // Not on the list.
            r#"{"msg_id":"r4","subject":"P-7","confidence":0.99}"#,
            r#"{"msg_id":"r5","subject":"P-1042","confidence":0.91}"#,
        ]
        .map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            mosquitto_pub_lines(port, "gatehouse/camera/C1/recognition", &recognitions)
        })
        .await
        .unwrap();
        // A rotation while T1 is locked out.
        gatehouse::requests::carry_out(
            &app.state().registry,
            &app.state().vault,
            &gatehouse::requests::OperatorCommand::lock_out("T1", "wet floor").unwrap(),
            gatehouse::journal::Actor::user("cleo"),
            None,
        )
        .await
        .unwrap();
        let passage = vec![r#"{"msg_id":"p1","direction":"in"}"#.to_owned()];
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &passage))
            .await
            .unwrap();
        // The policy has acted once every follower passed the head (its alarms are events too).
        settle(app.state()).await;
    });
    let alarms = lines(&site.gatehouse(&["alarms"]));
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    // Active first, by severity: the forced passage (critical), then the watched subject (major), seen 3 times.
    let forced = columns(&alarms[0]);
    assert_eq!(
        [forced[0], forced[1], forced[2], forced[3], forced[4], forced[6]],
        [
            "A-000002",
            "critical",
            "active_unacknowledged",
            "forced_passage",
            "device T1",
            "1"
        ]
    );
    let watched = columns(&alarms[1]);
    assert_eq!(
        [watched[0], watched[1], watched[2], watched[3], watched[4], watched[6]],
        [
            "A-000001",
            "major",
            "active_unacknowledged",
            "watched_subject_seen",
            "subject P-1042",
            "3"
        ]
    );
    let acked = lines(&site.gatehouse(&["--as", "cleo", "alarm", "A-000001", "ack", "--note", "guard sent"]));
    assert!(acked[0].starts_with("A-000001 acknowledged (by user:cleo"), "{acked:?}");
    let cleared = lines(&site.gatehouse(&["alarm", "A-000001", "clear"]));
    assert!(cleared[0].starts_with("A-000001 cleared"), "{cleared:?}");
    let again = site.gatehouse(&["alarm", "A-000001", "clear"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("A-000001: this alarm is cleared already"));
    let active = lines(&site.gatehouse(&["alarms", "--active"]));
    assert_eq!(active.len(), 1);
    assert!(active[0].starts_with("A-000002\tcritical"));
    // Its whole life folded from its stream, as `state` shows any aggregate.
    let state: serde_json::Value =
        serde_json::from_slice(&site.gatehouse(&["state", "alarm:A-000001"]).stdout).unwrap();
    let alarm = &state["state"]["alarm"];
    assert_eq!(
        (alarm["count"].as_u64(), alarm["active"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(alarm["acknowledged"]["by"], "user:cleo");
    assert_eq!(alarm["acknowledged"]["note"], "guard sent");
    let unknown = site.gatehouse(&["alarm", "A-000009", "ack"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("A-000009: there is no such alarm"));
}
