//! Entry points for fuzzing the parsers that take bytes from outside: MQTT packets, device payloads, the config
//! file and stored events. Each must answer anything with a value or an error, never a panic. `fuzz/` (cargo fuzz,
//! `scripts/fuzz`) runs them for millions of inputs; the tests run a short seeded version of each.

use crate::domain::{DeviceId, DeviceKind, StreamName};
use bytes::BytesMut;

/// MQTT framing as the embedded endpoint reads it: a CONNECT first, then packets of that protocol version.
pub fn mqtt_packets(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let version = match crate::mqtt::codec::read_connect(&mut buf) {
        Ok(Some(crate::mqtt::codec::Inbound::Connect { version, .. })) => version,
        _ => crate::mqtt::codec::Version::V311,
    };
    // Also read the whole input as packets of either version, as if CONNECT had passed.
    for version in [version, crate::mqtt::codec::Version::V5] {
        let mut buf = BytesMut::from(data);
        for _ in 0..64 {
            match crate::mqtt::codec::read(version, &mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// A device message: the first byte picks a topic, the rest is the payload.
pub fn device_payload(data: &[u8]) {
    const TOPICS: [&str; 8] = [
        "gatehouse/turnstile/T1/passage",
        "gatehouse/turnstile/T1/fault",
        "gatehouse/turnstile/T1/fault_cleared",
        "gatehouse/camera/C1/recognition",
        "gatehouse/camera/C1/status",
        "gatehouse/turnstile/T1/heartbeat",
        "gatehouse/turnstile/T1/reboot",
        "gatehouse/turnstile//passage",
    ];
    let Some((first, payload)) = data.split_first() else {
        return;
    };
    let topic = TOPICS[usize::from(*first) % TOPICS.len()];
    let lookup = |id: &DeviceId| match id.as_str() {
        "T1" => Some(DeviceKind::Turnstile),
        "C1" => Some(DeviceKind::Camera),
        _ => None,
    };
    let now = jiff::Timestamp::from_second(1_780_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = crate::ingest::parse("gatehouse", topic, payload, now, Default::default(), lookup);
    // The topic itself from outside, too.
    if let Ok(text) = std::str::from_utf8(payload) {
        let _ = crate::ingest::parse("gatehouse", text, b"{}", now, Default::default(), lookup);
    }
}

/// `config.toml` as an installer might write it.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::parse(text, "config.toml", std::path::Path::new("/nonexistent"));
    }
}

/// A stored event: the first byte picks the stream kind and type, the second the format and schema, the rest is
/// the payload.
pub fn event_decoder(data: &[u8]) {
    const TYPES: [(&str, &str); 10] = [
        ("T1", "PassageRecorded"),
        ("T1", "Commissioned"),
        ("T1", "FaultReported"),
        ("C1", "RecognitionRecorded"),
        ("T1", "MessageCounted"),
        ("work_order:WO-000001", "WorkOrderOpened"),
        ("work_order:WO-000001", "WorkOrderResolved"),
        ("maintenance_schedule:s", "ScheduleRunDue"),
        ("maintenance_schedule:s", "ScheduleCreated"),
        ("tally:x", "Counted"),
    ];
    let [kind, version, payload @ ..] = data else {
        return;
    };
    let (stream, event_type) = TYPES[usize::from(*kind) % TYPES.len()];
    let Ok(stream) = StreamName::parse(stream) else {
        return;
    };
    let (format, schema) = (version & 0x0f, u32::from(version >> 4));
    if let Ok(event) = crate::codec::decode_any(&stream, event_type, schema, format, payload) {
        // What the event browser and `gatehouse events` do with a decoded event.
        let _ = event.to_json();
    }
}

#[cfg(test)]
mod tests {
    //! The short version of `scripts/fuzz`: every target on seeded random inputs and on mutations of valid ones.
    use super::*;
    use rand::{Rng, SeedableRng};

    const SEEDS: [&[u8]; 4] = [
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x\x32\x20\x00\x1egatehouse/turnstile/T1/passage\x00\x01{}",
        b"\x00{\"msg_id\":\"m\",\"at\":\"2026-03-01T09:00:00Z\",\"direction\":\"in\",\"seq\":4}",
        b"[site]\nname = \"S\"\ntimezone = \"Europe/Berlin\"\n[[turnstile]]\nid = \"T1\"\nname = \"n\"\nzone = \"z\"\n",
        b"\x00\x21\x00\x80\x80\x80\x80\x80\x01",
    ];

    fn run(target: fn(&[u8]), seed: &[u8], cases: usize) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x6761_7465);
        target(seed);
        for _ in 0..cases {
            let mut input = seed.to_vec();
            match rng.random_range(0..4) {
                // Random bytes.
                0 => {
                    let len = rng.random_range(0..256);
                    input = (0..len).map(|_| rng.random()).collect();
                }
                // A few bytes of a valid input flipped.
                1 => {
                    for _ in 0..rng.random_range(1..8) {
                        if !input.is_empty() {
                            let at = rng.random_range(0..input.len());
                            input[at] = rng.random();
                        }
                    }
                }
                // Cut short.
                2 => input.truncate(rng.random_range(0..=input.len())),
                // Grown with random bytes.
                _ => input.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
            }
            target(&input);
        }
    }

    #[test]
    fn the_parsers_answer_random_and_mangled_input_without_panicking() {
        run(mqtt_packets, SEEDS[0], 20_000);
        run(device_payload, SEEDS[1], 20_000);
        run(config, SEEDS[2], 5_000);
        run(event_decoder, SEEDS[3], 20_000);
        // A valid event's bytes, mangled.
        let stored = crate::codec::encode_event(&crate::domain::DeviceEvent::Unlocked(crate::domain::Unlocked {
            at: jiff::Timestamp::UNIX_EPOCH,
        }));
        let mut seed = vec![1, 0x11];
        seed.extend(stored.payload);
        run(event_decoder, &seed, 20_000);
    }
}
