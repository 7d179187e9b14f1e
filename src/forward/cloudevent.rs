//! The integration contract (SPEC §5): a journal event as the CloudEvents 1.0 document a site forwards, the
//! heartbeat, and the device context (kind, name, zone) each device event carries so nobody has to call back.
//! Pure: no I/O, so the contract is tested without a cluster.

use crate::codec::AnyEvent;
use crate::domain::{DeviceEvent, DeviceKind, Pseudonym};
use crate::journal::{Position, StoredEvent, UnreadableEvent};
use crate::privacy::{Revealed, SubjectVault};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The `major` of every type this program forwards; a change that breaks a type's `data` bumps its own.
pub const MAJOR: u32 = 1;
/// The heartbeat's type (SPEC §5).
pub const HEARTBEAT: &str = "gatehouse.site.heartbeat.v1";
/// What a site forwards for a journal row it cannot read: the position is told, not skipped.
pub const UNREADABLE: &str = "gatehouse.site.unreadable_event.v1";

/// Who the site is in every document.
#[derive(Debug, Clone)]
pub struct SiteIdentity {
    pub id: String,
    pub timezone: String,
}

/// What a device is, as of the events forwarded so far (commissioning and detail changes move it).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceContext {
    pub kind: DeviceKind,
    pub name: String,
    pub zone: String,
}

/// Every device's context, kept up to date by the events it sees.
#[derive(Debug, Default)]
pub struct Devices(HashMap<String, DeviceContext>);

impl Devices {
    pub fn insert(&mut self, device: &str, context: DeviceContext) {
        self.0.insert(device.to_owned(), context);
    }

    pub fn get(&self, device: &str) -> Option<&DeviceContext> {
        self.0.get(device)
    }

    /// Follows a device event that changes what the device is.
    pub fn see(&mut self, device: &str, event: &DeviceEvent) {
        match event {
            DeviceEvent::Commissioned(c) => self.insert(
                device,
                DeviceContext {
                    kind: c.kind,
                    name: c.details.name.clone(),
                    zone: c.details.zone.clone(),
                },
            ),
            DeviceEvent::DetailsChanged(d) => {
                if let Some(context) = self.0.get_mut(device) {
                    context.name = d.details.name.clone();
                    context.zone = d.details.zone.clone();
                }
            }
            _ => {}
        }
    }
}

/// The person identifiers an alarm's first event named (its source), by alarm stream: its later events (a repeat,
/// an acknowledgement's note) carry only text that may mention them, so they are replaced there too.
#[derive(Debug, Default)]
pub struct Mentions(HashMap<String, Vec<(String, String)>>);

impl Mentions {
    fn of(&self, stream: &str) -> &[(String, String)] {
        self.0.get(stream).map_or(&[], Vec::as_slice)
    }

    /// What an alarm's carried-forward state names (archival removed the `AlarmRaised` that taught it).
    pub fn learn_subject(&mut self, stream: &str, subject: &crate::domain::Subject, vault: &SubjectVault) {
        if let Revealed::Known(plain) = vault.reveal(&subject.pseudonym) {
            self.remember(stream, &[(plain.as_str().to_owned(), subject.pseudonym.to_string())]);
        }
    }

    fn remember(&mut self, stream: &str, seen: &[(String, String)]) {
        let known = self.0.entry(stream.to_owned()).or_default();
        for pair in seen {
            if !known.contains(pair) {
                known.push(pair.clone());
            }
        }
    }
}

/// `PassageRecorded` → `passage_recorded`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The CloudEvents document of one journal event. `devices` must already have seen the event (so a
/// commissioning carries its own context); `mentions` learns and applies the subjects an alarm names.
pub fn document(
    site: &SiteIdentity,
    stored: &StoredEvent,
    devices: &Devices,
    mentions: &mut Mentions,
    vault: &SubjectVault,
) -> Value {
    let (aggregate, mut data) = match &stored.event {
        AnyEvent::Device(_) => {
            let device = stored.stream_id.id();
            let context = devices.get(device);
            let mut data = body(&stored.event);
            data.insert("device".into(), json!(device));
            data.insert("zone".into(), json!(context.map(|c| c.zone.as_str())));
            data.insert("device_name".into(), json!(context.map(|c| c.name.as_str())));
            // A device nobody commissioned cannot have events; "device" keeps the type well-formed regardless.
            let kind = context.map_or("device", |c| c.kind.as_str());
            (kind.to_owned(), data)
        }
        _ => (stored.stream_id.kind().to_owned(), body(&stored.event)),
    };
    let stream = stored.stream_id.as_str();
    let seen = pseudonymize(&mut data, vault, mentions.of(stream));
    if stored.stream_id.kind() == <crate::domain::Alarm as crate::domain::Aggregate>::KIND && !seen.is_empty() {
        mentions.remember(stream, &seen);
    }
    let event_type = format!("gatehouse.{aggregate}.{}.v{MAJOR}", snake_case(stored.event_type));
    envelope(
        site,
        stored.position,
        &event_type,
        stored.stream_id.id(),
        stored.occurred_at,
        Value::Object(data),
    )
}

/// What is forwarded for a row this program cannot decode: its place in the journal, and why.
pub fn unreadable(site: &SiteIdentity, row: &UnreadableEvent, now: jiff::Timestamp) -> Value {
    envelope(
        site,
        row.position,
        UNREADABLE,
        "site",
        now,
        json!({ "stream": row.stream_id, "event_type": row.event_type, "error": row.error }),
    )
}

/// The heartbeat: how far the journal goes and how far the stream has it, so a consumer tells lag from silence.
/// Its `gatehouseposition` is `forwarded_up_to` (the event it follows), its id `site:heartbeat:MILLIS`: consumers
/// key events by position only for types other than the heartbeat.
pub fn heartbeat(
    site: &SiteIdentity,
    journal_head: Position,
    forwarded_up_to: Position,
    now: jiff::Timestamp,
) -> Value {
    envelope(
        site,
        forwarded_up_to,
        HEARTBEAT,
        "site",
        now,
        json!({ "journal_head": journal_head, "forwarded_up_to": forwarded_up_to }),
    )
}

/// The heartbeat's message id: one per instant, never colliding with an event's `site:position`.
pub fn heartbeat_id(site: &SiteIdentity, now: jiff::Timestamp) -> String {
    format!("{}:heartbeat:{}", site.id, now.as_millisecond())
}

/// An event's message id and CloudEvents `id`.
pub fn event_id(site: &SiteIdentity, position: Position) -> String {
    format!("{}:{position}", site.id)
}

fn envelope(
    site: &SiteIdentity,
    position: Position,
    event_type: &str,
    subject: &str,
    time: jiff::Timestamp,
    data: Value,
) -> Value {
    let id = if event_type == HEARTBEAT {
        heartbeat_id(site, time)
    } else {
        event_id(site, position)
    };
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("gatehouse/{}", site.id),
        "type": event_type,
        "subject": subject,
        "time": time.to_string(),
        "datacontenttype": "application/json",
        "gatehousesite": site.id,
        "gatehouseposition": position,
        "gatehousetimezone": site.timezone,
        "data": data,
    })
}

fn body(event: &AnyEvent) -> Map<String, Value> {
    match event.to_json() {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("value".into(), other);
            map
        }
    }
}

/// Subjects reach this point as pseudonyms already (events carry nothing else); what may still name a person is
/// text a manager typed beside them (an acknowledgement's note): every mention there of a person the data names is
/// replaced by their pseudonym too. Returns the (identifier, pseudonym) pairs of the people under subject keys.
fn pseudonymize(
    data: &mut Map<String, Value>,
    vault: &SubjectVault,
    known: &[(String, String)],
) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    find_subjects(data, vault, &mut seen);
    let mut all = seen.clone();
    all.extend(known.iter().cloned());
    if !all.is_empty() {
        for value in data.values_mut() {
            replace_mentions(value, &all);
        }
    }
    seen
}

fn find_subjects(map: &mut Map<String, Value>, vault: &SubjectVault, seen: &mut Vec<(String, String)>) {
    for (name, value) in map.iter_mut() {
        match value {
            Value::String(text) if name == "subject" || name == "Subject" => match Pseudonym::parse(text) {
                Ok(pseudonym) => {
                    if let Revealed::Known(plain) = vault.reveal(&pseudonym) {
                        seen.push((plain.as_str().to_owned(), text.clone()));
                    }
                }
                // Never a stored subject's shape; whatever it is, it is not forwarded as written.
                Err(_) => *text = "ps-unreadable".to_owned(),
            },
            Value::Object(inner) => find_subjects(inner, vault, seen),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        find_subjects(inner, vault, seen);
                    }
                }
            }
            _ => {}
        }
    }
}

fn replace_mentions(value: &mut Value, seen: &[(String, String)]) {
    match value {
        Value::String(text) => {
            for (plain, pseudonym) in seen {
                if !plain.is_empty() && text.contains(plain.as_str()) {
                    *text = text.replace(plain.as_str(), pseudonym);
                }
            }
        }
        Value::Object(map) => map.values_mut().for_each(|v| replace_mentions(v, seen)),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_mentions(v, seen)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StreamName;
    use crate::domain::{Commissioned, DeviceDetails, Direction, PassageRecorded, RecognitionRecorded};

    fn site() -> SiteIdentity {
        SiteIdentity {
            id: "central".into(),
            timezone: "Europe/Berlin".into(),
        }
    }

    fn stored(position: Position, stream: &str, event: DeviceEvent) -> StoredEvent {
        let at: jiff::Timestamp = "2026-12-01T08:00:01.250Z".parse().unwrap();
        let event_type = crate::domain::DomainEvent::event_type(&event);
        StoredEvent {
            position,
            stream_id: StreamName::parse(stream).unwrap(),
            version: 1,
            event_type,
            schema: 2,
            occurred_at: at,
            recorded_at: at,
            causation: None,
            actor: None,
            event: AnyEvent::Device(event),
        }
    }

    fn commissioned(kind: DeviceKind) -> DeviceEvent {
        DeviceEvent::Commissioned(Commissioned {
            kind,
            details: DeviceDetails {
                name: "Hall A north".into(),
                zone: "Hall A".into(),
                serial: None,
                model: None,
                manufacturer: None,
            },
            watches: vec![],
            at: "2026-12-01T07:00:00Z".parse().unwrap(),
        })
    }

    #[test]
    fn a_passage_is_the_documented_document() {
        let mut devices = Devices::default();
        devices.see("T1", &commissioned(DeviceKind::Turnstile));
        let passage = stored(
            1042,
            "T1",
            DeviceEvent::PassageRecorded(PassageRecorded {
                direction: Direction::In,
                at: "2026-12-01T08:00:01.250Z".parse().unwrap(),
                during_fault: false,
                during_lockout: false,
                seq: None,
            }),
        );
        let (_dir, vault) = vault();
        let doc = document(&site(), &passage, &devices, &mut Mentions::default(), &vault);
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["id"], "central:1042");
        assert_eq!(doc["source"], "gatehouse/central");
        assert_eq!(doc["type"], "gatehouse.turnstile.passage_recorded.v1");
        assert_eq!(doc["subject"], "T1");
        assert_eq!(doc["time"], "2026-12-01T08:00:01.25Z");
        assert_eq!(doc["gatehouseposition"], 1042);
        assert_eq!(doc["gatehousetimezone"], "Europe/Berlin");
        assert_eq!(doc["data"]["device"], "T1");
        assert_eq!(doc["data"]["zone"], "Hall A");
        assert_eq!(doc["data"]["device_name"], "Hall A north");
        assert_eq!(doc["data"]["direction"], "in");
        assert_eq!(doc["data"]["during_fault"], false);
    }

    fn vault() -> (tempfile::TempDir, SubjectVault) {
        SubjectVault::scratch()
    }

    fn id(s: &str) -> crate::domain::SubjectId {
        crate::domain::SubjectId::parse(s).unwrap()
    }

    #[test]
    fn a_recognized_face_is_forwarded_as_its_pseudonym_only() {
        let (_dir, vault) = vault();
        let mut devices = Devices::default();
        devices.see("C1", &commissioned(DeviceKind::Camera));
        let subject = vault.seal(&id("emp-4711")).unwrap();
        let face = stored(
            7,
            "C1",
            DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                subject: Some(subject.clone()),
                confidence: crate::domain::Confidence::new(0.93).unwrap(),
                at: "2026-12-01T08:00:01Z".parse().unwrap(),
                seq: None,
            }),
        );
        let doc = document(&site(), &face, &devices, &mut Mentions::default(), &vault);
        let text = doc.to_string();
        assert!(!text.contains("emp-4711"), "{text}");
        assert_eq!(doc["data"]["subject"], subject.pseudonym.as_str());
        assert_eq!(doc["type"], "gatehouse.camera.recognition_recorded.v1");
    }

    #[test]
    fn mentions_of_a_subject_in_text_are_replaced_too() {
        let (_dir, vault) = vault();
        let p = vault.seal(&id("emp-1")).unwrap().pseudonym;
        let mut data = json!({"source": {"Subject": p.as_str()}, "note": "spoke to emp-1 at the gate"});
        let Value::Object(map) = &mut data else { unreachable!() };
        let seen = pseudonymize(map, &vault, &[]);
        let text = data.to_string();
        assert!(!text.contains("emp-1"), "{text}");
        assert!(text.contains(&format!("spoke to {p} at the gate")), "{text}");
        // A later event of the same alarm names nobody itself: what the first one named is replaced too.
        let mut later = json!({"note": "emp-1 left"});
        let Value::Object(map) = &mut later else { unreachable!() };
        pseudonymize(map, &vault, &seen);
        assert!(!later.to_string().contains("emp-1"), "{later}");
        // Something under a subject key that is not a pseudonym is not forwarded as written.
        let mut sly = json!({"subject": "jones"});
        let Value::Object(map) = &mut sly else { unreachable!() };
        pseudonymize(map, &vault, &[]);
        assert!(!sly.to_string().contains("jones"), "{sly}");
        let _ = Pseudonym::parse(p.as_str()).unwrap();
    }

    #[test]
    fn names_are_snake_case() {
        assert_eq!(snake_case("PassageRecorded"), "passage_recorded");
        assert_eq!(snake_case("Raised"), "raised");
        assert_eq!(snake_case("AntiPassbackViolated"), "anti_passback_violated");
    }

    #[test]
    fn the_heartbeat_says_how_far_the_stream_has_the_journal() {
        let now: jiff::Timestamp = "2026-12-01T08:00:30Z".parse().unwrap();
        let doc = heartbeat(&site(), 120, 100, now);
        assert_eq!(doc["type"], HEARTBEAT);
        assert_eq!(doc["data"]["journal_head"], 120);
        assert_eq!(doc["data"]["forwarded_up_to"], 100);
        assert_eq!(doc["id"], heartbeat_id(&site(), now).as_str());
    }
}
