//! Bad input end to end: a corpus of malformed or invalid messages published over MQTT, interleaved with valid
//! traffic. Each bad one ends as a dead letter with its specific reason; ingestion never stops; valid messages
//! between them are counted exactly.

use crate::helpers::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

#[test]
fn each_bad_message_becomes_a_dead_letter_with_its_reason_while_valid_traffic_is_counted() {
    let huge = format!(
        r#"{{"direction":"in","pad":"{}"}}"#,
        "x".repeat(gatehouse::ingest::MAX_PAYLOAD)
    );
    let long_detail = format!(r#"{{"code":"JAM","detail":"{}"}}"#, "d".repeat(1001));
    let corpus: Vec<(&str, &[u8], &str)> = vec![
        (
            "gatehouse/turnstile/T1/passage",
            huge.as_bytes(),
            // Only its first 4 KiB are kept, with its size and digest.
            "payload is 65563 bytes, over the 64 KiB limit (payload of 65563 bytes, SHA-256 \
             a159cd75c7c90993fca0d5998fe1b7733171f083774ce99b8ca21ddbbe7c323e; its first 4096 bytes are kept)",
        ),
        (
            "other/turnstile/T1/passage",
            b"{}",
            "topic \"other/turnstile/T1/passage\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouse/turnstile/T1",
            b"{}",
            "topic \"gatehouse/turnstile/T1\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouse/turnstile/T1/passage/extra",
            b"{}",
            "topic \"gatehouse/turnstile/T1/passage/extra\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouseX/turnstile/T1/passage",
            b"{}",
            "topic \"gatehouseX/turnstile/T1/passage\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouse/elevator/E1/passage",
            b"{}",
            "unknown device kind \"elevator\" in topic: expected turnstile or camera",
        ),
        (
            "gatehouse/turnstile/T 1/passage",
            b"{}",
            "invalid device id in topic: device id \"T 1\" may only contain letters, digits, '_' and '-'",
        ),
        (
            "gatehouse/turnstile//passage",
            b"{}",
            "invalid device id in topic: device id is empty",
        ),
        (
            "gatehouse/turnstile/T9/passage",
            b"{}",
            "unknown device \"T9\": add it to config.toml and re-drive",
        ),
        (
            "gatehouse/camera/T1/recognition",
            b"{}",
            "device \"T1\" is a turnstile, but the topic says camera",
        ),
        (
            "gatehouse/turnstile/T1/recognition",
            b"{}",
            "unknown message \"recognition\" for a turnstile",
        ),
        (
            "gatehouse/camera/C1/passage",
            b"{}",
            "unknown message \"passage\" for a camera",
        ),
        (
            "gatehouse/turnstile/T1/reboot",
            b"{}",
            "unknown message \"reboot\" for a turnstile",
        ),
        ("gatehouse/turnstile/T1/passage", b"\xff\xfe", "payload is not UTF-8"),
        (
            "gatehouse/turnstile/T1/passage",
            b"{\"direction\":",
            "payload is not valid JSON: EOF while parsing a value at line 1 column 13",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            b"",
            "payload is not valid JSON: EOF while parsing a value at line 1 column 0",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            b"[1,2]",
            "payload is not a JSON object",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            b"\"in\"",
            "payload is not a JSON object",
        ),
        ("gatehouse/turnstile/T1/passage", b"{}", "field \"direction\": missing"),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"sideways"}"#,
            "field \"direction\": direction \"sideways\" is not \"in\" or \"out\"",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":1}"#,
            "field \"direction\": expected a string, found a number",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","at":"yesterday"}"#,
            "field \"at\": \"yesterday\" is not an RFC 3339 timestamp",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","at":1700000000}"#,
            "field \"at\": expected an RFC 3339 string, found a number",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","msg_id":42}"#,
            "field \"msg_id\": expected a string, found a number",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","msg_id":""}"#,
            "field \"msg_id\": must be 1 to 128 characters",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"detail":"no code"}"#,
            "field \"code\": missing",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"code":""}"#,
            "field \"code\": fault code is empty",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"code":"JAM 2"}"#,
            "field \"code\": fault code \"JAM 2\" contains spaces or control characters",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"code":"JAM","detail":{"a":1}}"#,
            "field \"detail\": expected a string, found an object",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            long_detail.as_bytes(),
            "field \"detail\": longer than 1000 characters",
        ),
        (
            "gatehouse/turnstile/T1/fault_cleared",
            br#"{"code":null}"#,
            "field \"code\": missing",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"confidence":0.5}"#,
            "field \"subject\": missing (use null when nobody was recognized)",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":7,"confidence":0.5}"#,
            "field \"subject\": expected a string or null, found a number",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":"","confidence":0.5}"#,
            "field \"subject\": subject is empty",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null}"#,
            "field \"confidence\": missing",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null,"confidence":"high"}"#,
            "field \"confidence\": expected a number, found a string",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null,"confidence":1.5}"#,
            "field \"confidence\": 1.5 is outside 0..=1",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null,"confidence":-0.1}"#,
            "field \"confidence\": -0.1 is outside 0..=1",
        ),
        (
            "gatehouse/camera/C1/status",
            b"rebooting",
            "status payload \"rebooting\" is neither online nor offline",
        ),
    ];
    assert!(corpus.len() >= 30, "the corpus holds {} messages", corpus.len());
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let expected = corpus.clone();
    with_app(site.config(), async |app| {
        let addr = app.mqtt_addr().unwrap();
        let mut options = MqttOptions::new("fuzzy-gateway", addr.ip().to_string(), addr.port());
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 200);
        let total = corpus.len() * 2;
        let acks = actix_web::rt::spawn(async move {
            let mut acked = 0;
            while acked < total {
                match tokio::time::timeout(Duration::from_secs(20), eventloop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => panic!("connection failed after {acked} acks: {e}"),
                    Err(_) => panic!("only {acked} of {total} messages acknowledged"),
                }
            }
        });
        for (n, (topic, payload, _)) in corpus.into_iter().enumerate() {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
                .await
                .unwrap();
            let valid = format!(r#"{{"msg_id":"ok-{n}","direction":"in"}}"#);
            client
                .publish("gatehouse/turnstile/T1/passage", QoS::AtLeastOnce, false, valid)
                .await
                .unwrap();
        }
        acks.await.unwrap();
    });
    let journal = site.paths().journal();
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let mut stmt = conn
        .prepare("SELECT topic, reason FROM dead_letters ORDER BY id")
        .unwrap();
    let letters: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, _, r)| (t.to_string(), r.to_string()))
        .collect();
    assert_eq!(letters, expected);
    let passages = query_i64(
        &journal,
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    );
    assert_eq!(
        passages,
        expected.len() as i64,
        "every valid message between the bad ones was recorded once"
    );
}
