//! Alarms that no single message raises: a device offline longer than `[alarms] offline_after` (cleared by the
//! device coming back, refused to people while it is still offline), a fault open longer than `fault_open_after`
//! (cleared by the unit reporting it gone), a gateway whose message counter skips, and
//! a sender whose dead letters pass `dead_letter_rate` a minute. All through the embedded MQTT endpoint.

use crate::helpers::*;
use gatehouse::requests::{OperatorCommand, carry_out};

fn alarm_rows(views: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(views).unwrap();
    dump(
        &conn,
        "SELECT alarm_type, severity, source, active, count FROM alarms ORDER BY number",
    )
}

#[test]
fn lasting_and_counted_trouble_raises_alarms_that_end_with_their_condition() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!(
            "{TWO_TURNSTILES_ONE_CAMERA}\n[alarms]\noffline_after = \"1s\"\nfault_open_after = \"1s\"\ndead_letter_rate = 5\n"
        ),
    );
    let views = site.paths().views();
    with_app(site.config(), async |app| {
        let publish = |topic: &'static str, lines: &[&str]| {
            let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, topic, &lines))
        };
        // Heard from first: a device never heard from is not offline.
        publish("gatehouse/turnstile/T1/status", &["online", "offline"])
            .await
            .unwrap();
        let rows = views.clone();
        eventually("T1 offline past offline_after raised an alarm", move || {
            alarm_rows(&rows).contains(&"device_offline|major|device T1|1|1".to_owned())
        })
        .await;
        let refused = carry_out(
            &app.state().registry,
            &app.state().vault,
            &OperatorCommand::alarm("A-000001", "clear", None).unwrap(),
            gatehouse::journal::Actor::user("cleo"),
            None,
        )
        .await;
        let refusal = format!("{refused:?}");
        assert!(refusal.contains("device T1 is still offline"), "{refusal}");

        publish("gatehouse/turnstile/T1/status", &["online"]).await.unwrap();
        let rows = views.clone();
        eventually("T1 back online cleared its alarm", move || {
            alarm_rows(&rows).contains(&"device_offline|major|device T1|0|1".to_owned())
        })
        .await;

        // A fault left open past fault_open_after: an alarm that ends when the unit reports the fault gone.
        publish(
            "gatehouse/camera/C1/fault",
            &[r#"{"msg_id":"f1","code":"LENS","detail":"fogged"}"#],
        )
        .await
        .unwrap();
        let rows = views.clone();
        eventually("C1's fault open past fault_open_after raised an alarm", move || {
            alarm_rows(&rows).contains(&"fault_open|major|device C1|1|1".to_owned())
        })
        .await;
        publish(
            "gatehouse/camera/C1/fault_cleared",
            &[r#"{"msg_id":"f2","code":"LENS"}"#],
        )
        .await
        .unwrap();
        let rows = views.clone();
        eventually("the fault cleared ended its alarm", move || {
            alarm_rows(&rows).contains(&"fault_open|major|device C1|0|1".to_owned())
        })
        .await;

        // Messages 3 to 5 never arrived.
        publish(
            "gatehouse/turnstile/T2/passage",
            &[
                r#"{"direction":"in","seq":1}"#,
                r#"{"direction":"in","seq":2}"#,
                r#"{"direction":"in","seq":6}"#,
            ],
        )
        .await
        .unwrap();
        // Five messages in a minute that cannot be read.
        publish("gatehouse/turnstile/T2/passage", &["{"; 5]).await.unwrap();
        let rows = views.clone();
        eventually("a lost-messages and a dead-letter alarm", move || {
            let rows = alarm_rows(&rows);
            rows.iter()
                .any(|r| *r == "lost_messages|minor|gateway:anonymous@127.0.0.1|1|1")
                && rows
                    .iter()
                    .any(|r| r.starts_with("dead_letter_flood|minor|gateway:anonymous@127.0.0.1|1|"))
        })
        .await;
        settle(app.state()).await;
    });
    let listed = site.gatehouse(&["alarms"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("lost_messages"), "{listed}");
    assert!(listed.contains("dead_letter_flood"), "{listed}");
}
