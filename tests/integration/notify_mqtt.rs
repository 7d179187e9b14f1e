//! The MQTT notification channel, read with `mosquitto_sub` as a control room's display would: with the embedded
//! endpoint, a gateway made with `--alarms` reads each alarm's state retained under `gatehouse/alarms/{id}` and
//! sees it emptied when the alarm clears, while a gateway without the right is refused; with an external
//! Mosquitto, the state is published there retained and emptied the same way.

use crate::helpers::*;
use gatehouse::requests::OperatorCommand;
use std::process::{Command, Output, Stdio};

const CHANNEL: &str = "\n[[notify.mqtt]]\n";

/// Runs a mosquitto client (`mosquitto_pub` / `mosquitto_sub`) with `args` against port `port`, off the runtime.
async fn mosquitto(tool: &'static str, port: u16, args: &[&str]) -> Output {
    let mut command = Command::new(tool);
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args);
    tokio::task::spawn_blocking(move || command.output().expect("mosquitto clients are installed"))
        .await
        .unwrap()
}

/// `gatehouse gateway add NAME --devices DEVICES [--alarms]`: the password it printed.
fn add_gateway(site: &Site, name: &str, devices: &str, alarms: bool) -> String {
    let mut args = vec!["gateway", "add", name, "--devices", devices];
    if alarms {
        args.push("--alarms");
    }
    let output = site.gatehouse(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let password = stdout.lines().find_map(|line| line.strip_prefix("mqtt_password="));
    password.expect("a password line").to_owned()
}

fn watch(site: &Site, subject: &str) {
    let added = site.gatehouse(&["watch", "add", subject, "--list", "banned", "--severity", "critical"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
}

async fn step(state: &gatehouse::web::AppState, alarm: &str, what: &str) {
    gatehouse::requests::carry_out(
        &state.registry,
        &state.vault,
        &OperatorCommand::alarm(alarm, what, None).unwrap(),
        gatehouse::journal::Actor::user("cleo"),
        None,
    )
    .await
    .unwrap();
}

/// The alarm's state as retained: the JSON a subscriber gets.
fn state_of(line: &str) -> serde_json::Value {
    let json = line
        .strip_prefix("gatehouse/alarms/A-000001 ")
        .unwrap_or_else(|| panic!("not A-000001's state: {line:?}"));
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_embedded_endpoint_serves_alarm_states_to_alarm_gateways_only() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\"\nrequire_auth = true"),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{CHANNEL}"),
    );
    let camera = add_gateway(&site, "cams", "C1", false);
    let desk = add_gateway(&site, "desk", "T2", true);
    watch(&site, "P-1042");
    with_app(site.config(), async |app| {
        let seen = mosquitto(
            "mosquitto_pub",
            port,
            &[
                "-u",
                "cams",
                "-P",
                &camera,
                "-q",
                "1",
                "-t",
                "gatehouse/camera/C1/recognition",
                "-m",
                r#"{"msg_id":"r1","subject":"P-1042","confidence":0.95}"#,
            ],
        )
        .await;
        assert!(seen.status.success(), "{}", String::from_utf8_lossy(&seen.stderr));

        // A display that connects later still gets the state: it is retained.
        let read = mosquitto(
            "mosquitto_sub",
            port,
            &[
                "-u",
                "desk",
                "-P",
                &desk,
                "-t",
                "gatehouse/alarms/#",
                "-v",
                "-C",
                "1",
                "-W",
                "20",
            ],
        )
        .await;
        let line = String::from_utf8_lossy(&read.stdout).trim_end().to_owned();
        let state = state_of(&line);
        assert_eq!(state["severity"], "critical", "{state}");
        assert_eq!(state["state"], "active_unacknowledged", "{state}");

        // A gateway without --alarms may not read them.
        let refused = mosquitto(
            "mosquitto_sub",
            port,
            &[
                "-u",
                "cams",
                "-P",
                &camera,
                "-t",
                "gatehouse/alarms/#",
                "-C",
                "1",
                "-W",
                "5",
            ],
        )
        .await;
        let said = String::from_utf8_lossy(&refused.stderr).into_owned() + &String::from_utf8_lossy(&refused.stdout);
        assert!(said.contains("All subscription requests were denied"), "{said}");
        assert!(!said.contains("P-1042"), "{said}");

        // A display watching while the alarm is acknowledged and then cleared sees it emptied. Like a broker's
        // retained message, only the latest state of an alarm is kept: a display that is slow to read may skip
        // the acknowledged state in between, never the clear.
        let desk_password = desk.clone();
        let watching = tokio::task::spawn_blocking(move || {
            Command::new("mosquitto_sub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-u",
                    "desk",
                    "-P",
                    &desk_password,
                ])
                .args(["-t", "gatehouse/alarms/#", "-v", "-C", "3", "-W", "8"])
                .stdout(Stdio::piped())
                .output()
                .unwrap()
        });
        // The retained state first, so the subscription is in place before the steps.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        step(app.state(), "A-000001", "ack").await;
        step(app.state(), "A-000001", "clear").await;
        let watched = watching.await.unwrap();
        let lines: Vec<String> = String::from_utf8_lossy(&watched.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert!((2..=3).contains(&lines.len()), "{lines:?}");
        assert_eq!(state_of(&lines[0])["state"], "active_unacknowledged");
        if lines.len() == 3 {
            assert_eq!(state_of(&lines[1])["state"], "active_acknowledged");
        }
        let last = lines.last().map(String::as_str).unwrap_or_default();
        assert!(
            last == "gatehouse/alarms/A-000001 " || last == "gatehouse/alarms/A-000001 (null)",
            "{lines:?}"
        );

        // Once cleared, nothing is retained for a newcomer.
        let newcomer = mosquitto(
            "mosquitto_sub",
            port,
            &[
                "-u",
                "desk",
                "-P",
                &desk,
                "-t",
                "gatehouse/alarms/#",
                "-v",
                "-C",
                "1",
                "-W",
                "2",
            ],
        )
        .await;
        assert!(
            newcomer.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&newcomer.stdout)
        );
    });
}

#[test]
fn with_an_external_broker_alarm_states_are_retained_there() {
    let broker = Mosquitto::start();
    let port = broker.port;
    let site = Site::with_mqtt(
        &format!("broker = \"{}\"", broker.url()),
        &format!("{TWO_TURNSTILES_ONE_CAMERA}{CHANNEL}"),
    );
    watch(&site, "P-1042");
    with_app(site.config(), async |app| {
        let recognition = vec![r#"{"msg_id":"r1","subject":"P-1042","confidence":0.95}"#.to_owned()];
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/camera/C1/recognition", &recognition))
            .await
            .unwrap();
        let read = mosquitto(
            "mosquitto_sub",
            port,
            &["-t", "gatehouse/alarms/#", "-v", "-C", "1", "-W", "20"],
        )
        .await;
        let line = String::from_utf8_lossy(&read.stdout).trim_end().to_owned();
        assert_eq!(state_of(&line)["source"], "subject P-1042", "{line}");

        step(app.state(), "A-000001", "clear").await;
        let mut attempts = 0;
        loop {
            let left = mosquitto(
                "mosquitto_sub",
                port,
                &["-t", "gatehouse/alarms/#", "-v", "-C", "1", "-W", "1"],
            )
            .await;
            if left.stdout.is_empty() {
                break;
            }
            attempts += 1;
            assert!(
                attempts < 20,
                "still retained: {}",
                String::from_utf8_lossy(&left.stdout)
            );
        }
    });
}
