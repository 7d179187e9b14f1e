//! What a notification says: the JSON document webhooks get (Standard Webhooks' `type` / `timestamp` / `data`),
//! the retained MQTT state, and an e-mail's subject, plain text and HTML, all from one alarm's state.

use crate::domain::alarm::{AlarmEvent, RaisedAlarm};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Why a channel hears of an alarm now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Raised,
    Repeated,
    Reactivated,
    Acknowledged,
    Cleared,
    /// Still critical and unacknowledged after `[alarms] repeat`.
    Escalated,
}

impl Reason {
    pub fn of(event: &AlarmEvent) -> Reason {
        match event {
            AlarmEvent::Raised(_) => Reason::Raised,
            AlarmEvent::Repeated(_) => Reason::Repeated,
            AlarmEvent::Reactivated(_) => Reason::Reactivated,
            AlarmEvent::Acknowledged(_) => Reason::Acknowledged,
            AlarmEvent::Cleared(_) => Reason::Cleared,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Raised => "raised",
            Reason::Repeated => "repeated",
            Reason::Reactivated => "reactivated",
            Reason::Acknowledged => "acknowledged",
            Reason::Cleared => "cleared",
            Reason::Escalated => "escalated",
        }
    }

    /// The notifications that told a receiver the alarm is active: the cooldown runs from the latest of them.
    pub const TOLD_ACTIVE: [&'static str; 4] = ["raised", "repeated", "reactivated", "escalated"];
}

/// The alarm's state as every channel tells it (the `data` of a webhook, the retained MQTT message).
pub fn alarm_data(site: &str, number: &str, alarm: &RaisedAlarm) -> Value {
    let time = |t: Timestamp| t.to_string();
    json!({
        "site": site,
        "alarm": number,
        "alarm_type": alarm.alarm_type.as_str(),
        "severity": alarm.severity.as_str(),
        "source": alarm.source.to_string(),
        "zone": alarm.zone,
        "state": alarm.state_name(),
        "detail": alarm.detail,
        "first_seen": time(alarm.first_seen),
        "last_seen": time(alarm.last_seen),
        "count": alarm.count,
        "acknowledged_by": alarm.acknowledged.as_ref().map(|a| a.by.clone()),
        "acknowledged_at": alarm.acknowledged.as_ref().map(|a| time(a.at)),
        "note": alarm.acknowledged.as_ref().and_then(|a| a.note.clone()),
        "cleared_at": alarm.cleared_at.map(time),
    })
}

/// The webhook document: `{"type": "alarm.raised", "timestamp": ..., "data": {...}}`.
pub fn document(reason: Reason, at: Timestamp, data: Value) -> String {
    json!({
        "type": format!("alarm.{}", reason.as_str()),
        "timestamp": at.to_string(),
        "data": data,
    })
    .to_string()
}

/// An escalation of the document last sent: the same alarm state, told again as `alarm.escalated` now.
pub fn escalation(last_document: &str, now: Timestamp) -> Result<String, String> {
    let mut document: Value =
        serde_json::from_str(last_document).map_err(|e| format!("a stored notification is not JSON: {e}"))?;
    let data = document
        .get_mut("data")
        .map(Value::take)
        .ok_or("a stored notification has no data")?;
    Ok(self::document(Reason::Escalated, now, data))
}

/// A stored document (JSON) with every pseudonym in it revealed: the identifier, or "forgotten". A document that
/// is not JSON is revealed as text.
pub fn revealed(document: &str, vault: &crate::privacy::SubjectVault) -> String {
    match serde_json::from_str::<Value>(document) {
        Ok(mut value) => {
            vault.reveal_json(&mut value);
            value.to_string()
        }
        Err(_) => vault.reveal_text(document),
    }
}

/// An e-mail's subject, plain text and HTML, from a webhook document.
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn mail(document: &str) -> Result<Mail, String> {
    let document: Value =
        serde_json::from_str(document).map_err(|e| format!("a stored notification is not JSON: {e}"))?;
    let text_of = |key: &str| document["data"][key].as_str().unwrap_or("").to_owned();
    let what = document["type"]
        .as_str()
        .unwrap_or("alarm")
        .trim_start_matches("alarm.")
        .to_owned();
    let (alarm, severity) = (text_of("alarm"), text_of("severity"));
    let subject = format!(
        "[{}] {} {}: {} ({})",
        severity.to_uppercase(),
        alarm,
        what,
        text_of("alarm_type").replace('_', " "),
        text_of("source")
    );
    let rows: Vec<(&str, String)> = vec![
        ("Site", text_of("site")),
        ("Alarm", alarm.clone()),
        ("What happened", what),
        ("Type", text_of("alarm_type").replace('_', " ")),
        ("Severity", severity),
        ("Source", text_of("source")),
        ("Zone", text_of("zone")),
        ("State", text_of("state").replace('_', ", ")),
        ("Detail", text_of("detail")),
        ("First seen", text_of("first_seen")),
        ("Last seen", text_of("last_seen")),
        ("Count", document["data"]["count"].to_string()),
        ("Acknowledged by", text_of("acknowledged_by")),
        ("Note", text_of("note")),
    ];
    let rows: Vec<_> = rows.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut text = String::new();
    for (label, value) in &rows {
        text.push_str(&format!("{label}: {value}\n"));
    }
    text.push_str(&format!("\nOpen it on the site's Gatehouse at /alarms/{alarm}\n"));
    let mut html = String::from("<table>");
    for (label, value) in &rows {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape(label),
            escape(value)
        ));
    }
    html.push_str(&format!(
        "</table><p>Open it on the site's Gatehouse at <code>/alarms/{}</code>.</p>",
        escape(&alarm)
    ));
    Ok(Mail { subject, text, html })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_the_person_when_sent_and_nobody_once_they_are_forgotten() {
        let (_dir, vault) = crate::privacy::SubjectVault::scratch();
        let who = crate::domain::SubjectId::parse("emp \"7\"").unwrap();
        let person = vault.seal(&who).unwrap().pseudonym;
        // What the outbox keeps: the pseudonym only.
        let stored = json!({"alarm": "A-000001", "source": format!("subject {person}"),
                            "detail": format!("{person} (banned) recognized by C1")})
        .to_string();
        let sent: Value = serde_json::from_str(&revealed(&stored, &vault)).unwrap();
        assert_eq!(sent["source"], "subject emp \"7\"");
        assert_eq!(sent["detail"], "emp \"7\" (banned) recognized by C1");
        vault.forget(&who).unwrap();
        let later = revealed(&stored, &vault);
        assert!(!later.contains("emp") && later.contains("subject forgotten"), "{later}");
    }

    #[test]
    fn an_escalation_tells_the_same_state_again() {
        let first = document(
            Reason::Raised,
            "2026-12-05T06:00:00Z".parse().unwrap(),
            json!({"alarm": "A-000001", "severity": "critical", "source": "subject <P-1>", "count": 3}),
        );
        let again = escalation(&first, "2026-12-05T06:15:00Z".parse().unwrap()).unwrap();
        let again: Value = serde_json::from_str(&again).unwrap();
        assert_eq!(again["type"], "alarm.escalated");
        assert_eq!(again["timestamp"], "2026-12-05T06:15:00Z");
        assert_eq!(again["data"]["count"], 3);
        let mail = mail(&first).unwrap();
        assert_eq!(mail.subject, "[CRITICAL] A-000001 raised:  (subject <P-1>)");
        assert!(mail.text.contains("Count: 3\n"), "{}", mail.text);
        assert!(mail.html.contains("subject &lt;P-1&gt;"), "{}", mail.html);
    }
}
