//! Dead letters keep the payload as received, except a person's identifier: each string under a `subject` key (at
//! any depth of a JSON payload) is replaced by `{"sealed": "ps-…"}` before the letter is stored, so forgetting the
//! person covers bad messages too. A re-driven letter with a sealed subject fails again with a clear reason
//! (`subject: expected a string or null, found an object`); the dead-letter pages show the identifier revealed.

use crate::domain::{Subject, SubjectId};
use serde_json::{Map, Value, json};

/// What stands in for an identifier that is not a valid one (too long, control characters): still perhaps a
/// person's, so not kept.
pub const REMOVED: &str = "[removed: not a valid identifier]";

/// `payload` with its subject fields sealed; unchanged (byte for byte) when it is not JSON or names nobody.
pub fn seal_payload_subjects<E>(
    payload: &[u8],
    mut seal: impl FnMut(&SubjectId) -> Result<Subject, E>,
) -> Result<Vec<u8>, E> {
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return Ok(payload.to_vec());
    };
    let mut changed = false;
    if let Value::Object(map) = &mut value {
        seal_map(map, &mut seal, &mut changed)?;
    }
    if !changed {
        return Ok(payload.to_vec());
    }
    Ok(serde_json::to_vec(&value).unwrap_or_else(|_| payload.to_vec()))
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
            &b"not json {subject: P-1}"[..],
            br#"{"subject": null, "confidence": 2}"#,
            b"[1,2]",
        ] {
            assert_eq!(seal_payload_subjects(kept, fake_seal).unwrap(), kept);
        }
        let long = format!(r#"{{"subject":"{}"}}"#, "x".repeat(200));
        let text = String::from_utf8(seal_payload_subjects(long.as_bytes(), fake_seal).unwrap()).unwrap();
        assert!(text.contains(REMOVED) && !text.contains("xxx"), "{text}");
    }
}
