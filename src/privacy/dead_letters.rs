//! Dead letters keep the payload as received, except a person's identifier: each string under a `subject` key (at
//! any depth of a JSON payload) is replaced by `{"sealed": "ps-…"}` before the letter is stored, so forgetting the
//! person covers bad messages too; a payload that is not JSON but mentions a subject is withheld whole. A re-driven
//! letter gets its sealed subjects back from the vault ([`unseal_payload_subjects`]); the dead-letter pages show
//! them revealed.

use crate::domain::{Subject, SubjectId};
use serde_json::{Map, Value, json};

/// What stands in for an identifier that is not a valid one (too long, control characters): still perhaps a
/// person's, so not kept.
pub const REMOVED: &str = "[removed: not a valid identifier]";

/// `payload` with its subject fields sealed; unchanged (byte for byte) when it names nobody. A payload that is not
/// JSON yet mentions a subject cannot be sealed field by field: it is withheld (its size and SHA-256 kept).
pub fn seal_payload_subjects<E>(
    payload: &[u8],
    mut seal: impl FnMut(&SubjectId) -> Result<Subject, E>,
) -> Result<Vec<u8>, E> {
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return Ok(withheld_if_it_names_someone(payload));
    };
    let mut changed = false;
    match &mut value {
        Value::Object(map) => seal_map(map, &mut seal, &mut changed)?,
        Value::Array(items) => {
            for item in items {
                if let Value::Object(inner) = item {
                    seal_map(inner, &mut seal, &mut changed)?;
                }
            }
        }
        _ => {}
    }
    if !changed {
        return Ok(payload.to_vec());
    }
    Ok(serde_json::to_vec(&value).unwrap_or_else(|_| payload.to_vec()))
}

fn withheld_if_it_names_someone(payload: &[u8]) -> Vec<u8> {
    let lower = payload.to_ascii_lowercase();
    if !lower.windows(7).any(|w| w == b"subject") {
        return payload.to_vec();
    }
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "[payload withheld: not JSON, and it may name a person; {} bytes, SHA-256 {digest}]",
        payload.len()
    )
    .into_bytes()
}

fn seal_map<E>(
    map: &mut Map<String, Value>,
    seal: &mut impl FnMut(&SubjectId) -> Result<Subject, E>,
    changed: &mut bool,
) -> Result<(), E> {
    for (name, value) in map.iter_mut() {
        match value {
            Value::String(text) if name == "subject" => {
                *value = match SubjectId::parse(text) {
                    Ok(subject) => json!({ "sealed": seal(&subject)?.pseudonym.as_str() }),
                    Err(_) => Value::String(REMOVED.to_owned()),
                };
                *changed = true;
            }
            // A number or flag where a name belongs (`{"subject": 1042}`) is not an identifier the protocol allows,
            // but may still be someone's: not kept.
            Value::Number(_) | Value::Bool(_) if name == "subject" => {
                *value = Value::String(REMOVED.to_owned());
                *changed = true;
            }
            Value::Object(inner) => seal_map(inner, seal, changed)?,
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        seal_map(inner, seal, changed)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A stored payload with each `{"sealed": "ps-…"}` under a `subject` key turned back into the identifier, for a
/// re-drive; a forgotten person's stays sealed (the message then fails again, naming nobody).
pub fn unseal_payload_subjects(payload: &[u8], vault: &crate::privacy::SubjectVault) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return payload.to_vec();
    };
    fn walk(value: &mut Value, vault: &crate::privacy::SubjectVault, changed: &mut bool) {
        match value {
            Value::Object(map) => {
                for (name, inner) in map.iter_mut() {
                    let sealed = inner
                        .get("sealed")
                        .and_then(Value::as_str)
                        .map(crate::domain::Pseudonym::parse);
                    match sealed {
                        Some(Ok(pseudonym)) if name == "subject" => {
                            if let crate::privacy::Revealed::Known(subject) = vault.reveal(&pseudonym) {
                                *inner = Value::String(subject.as_str().to_owned());
                                *changed = true;
                            }
                        }
                        _ => walk(inner, vault, changed),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, vault, changed)),
            _ => {}
        }
    }
    // Nothing sealed in it: the very bytes kept, as received.
    let mut changed = false;
    walk(&mut value, vault, &mut changed);
    if !changed {
        return payload.to_vec();
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Pseudonym;

    fn fake_seal(subject: &SubjectId) -> Result<Subject, ()> {
        let mut digest = [0u8; 16];
        digest[0] = subject.as_str().len() as u8;
        Ok(Subject::unsealed(Pseudonym::from_digest(&digest)))
    }

    #[test]
    fn subjects_at_any_depth_are_sealed_and_other_payloads_kept_byte_for_byte() {
        let sealed = seal_payload_subjects(
            br#"{"subject":"P-1042","confidence":0.9,"x":[{"subject":"A"}]}"#,
            fake_seal,
        )
        .unwrap();
        let text = String::from_utf8(sealed).unwrap();
        assert!(!text.contains("P-1042") && !text.contains(r#""A""#), "{text}");
        assert!(
            text.contains(r#"{"sealed":"ps-06000000000000000000000000000000"}"#),
            "{text}"
        );
        for kept in [
            &b"not json at all"[..],
            br#"{"subject": null, "confidence": 2}"#,
            b"[1,2]",
        ] {
            assert_eq!(seal_payload_subjects(kept, fake_seal).unwrap(), kept);
        }
        let number = String::from_utf8(seal_payload_subjects(br#"{"subject":1042}"#, fake_seal).unwrap()).unwrap();
        assert!(number.contains(REMOVED) && !number.contains("1042"), "{number}");
        let broken = String::from_utf8(seal_payload_subjects(b"{subject: P-1042", fake_seal).unwrap()).unwrap();
        assert!(
            broken.starts_with("[payload withheld") && !broken.contains("1042"),
            "{broken}"
        );
        let long = format!(r#"{{"subject":"{}"}}"#, "x".repeat(200));
        let text = String::from_utf8(seal_payload_subjects(long.as_bytes(), fake_seal).unwrap()).unwrap();
        assert!(text.contains(REMOVED) && !text.contains("xxx"), "{text}");
    }

    #[test]
    fn a_re_driven_letter_gets_its_subject_back_unless_the_person_was_forgotten() {
        let (_dir, vault) = crate::privacy::SubjectVault::scratch();
        let raw = br#"{"msg_id":"m1","subject":"emp-9","confidence":0.9}"#;
        let kept = seal_payload_subjects(raw, |s| vault.seal(s)).unwrap();
        assert!(!String::from_utf8_lossy(&kept).contains("emp-9"));
        let back: Value = serde_json::from_slice(&unseal_payload_subjects(&kept, &vault)).unwrap();
        assert_eq!(back, serde_json::from_slice::<Value>(raw).unwrap());
        // Nothing sealed: the very same bytes.
        let plain = br#"{"msg_id":"s1","direction":"sideways"}"#;
        assert_eq!(unseal_payload_subjects(plain, &vault), plain);
        vault.forget(&SubjectId::parse("emp-9").unwrap()).unwrap();
        assert_eq!(
            unseal_payload_subjects(&kept, &vault),
            kept,
            "a forgotten person stays sealed"
        );
    }
}
