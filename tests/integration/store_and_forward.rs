//! The README's store-and-forward recipe, for real: a gateway's own Mosquitto, bridged to Gatehouse's embedded
//! endpoint with a gateway identity, keeps taking the gateway's messages while Gatehouse is down (killed) and
//! re-sends them when it is back; with `msg_id` every message counts once.

use crate::helpers::*;
use crate::load::*;
use std::time::{Duration, Instant};

const ONE_TURNSTILE: &str = "[[turnstile]]\nid = \"T1\"\nname = \"North\"\nzone = \"Hall A\"\n";

fn counted(site: &Site) -> (i64, i64) {
    let journal = site.paths().journal();
    (
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded' AND causation LIKE 'sf-%'",
        ),
        query_i64(
            &journal,
            "SELECT COUNT(DISTINCT causation) FROM events WHERE event_type = 'PassageRecorded' AND causation LIKE 'sf-%'",
        ),
    )
}

fn publish(broker: &Mosquitto, from: u64, to: u64) {
    let lines: Vec<String> = (from..to)
        .map(|i| format!(r#"{{"msg_id":"sf-{i}","direction":"in"}}"#))
        .collect();
    mosquitto_pub_lines(broker.port, "gatehouse/turnstile/T1/passage", &lines);
}

#[test]
fn a_bridged_gateway_broker_keeps_publishing_while_gatehouse_is_down_and_every_message_counts_once() {
    let (mqtt, http_port) = (free_port(), free_port());
    let site = Site::new("");
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"Bridge\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[storage]\ndir = \"data\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nrequire_auth = true\n\n{ONE_TURNSTILE}"
        ),
    )
    .unwrap();
    let added = site.gatehouse(&["gateway", "add", "door-pi", "--devices", "T1"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let stdout = String::from_utf8_lossy(&added.stdout).into_owned();
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("mqtt_password="))
        .unwrap()
        .to_owned();
    let mut server = Server::start(&site);
    wait_for_port(mqtt);
    wait_for_port(http_port);
    let gateway = Mosquitto::start_with(&format!(
        "connection gatehouse\naddress 127.0.0.1:{mqtt}\nremote_clientid door-pi\nremote_username door-pi\n\
         remote_password {password}\ncleansession false\ntry_private false\nnotifications false\n\
         restart_timeout 1\ntopic gatehouse/turnstile/# out 1\n"
    ));
    publish(&gateway, 0, 300);
    let wait_for = |n: i64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while counted(&site).1 < n {
            assert!(Instant::now() < deadline, "only {:?} of {n} counted", counted(&site));
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(300);
    // Gatehouse gone (kill -9) while the gateway goes on counting people.
    server.kill();
    publish(&gateway, 300, 700);
    std::thread::sleep(Duration::from_secs(2));
    server.spawn();
    wait_for_port(mqtt);
    publish(&gateway, 700, 1000);
    wait_for(1000);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counted(&site), (1000, 1000), "every message once");
}
