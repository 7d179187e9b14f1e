//! How instants are stored: compact microseconds in the journal, RFC 3339 wherever people read them.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

/// Serde adapter for [`Timestamp`] fields of events and state.
///
/// Binary formats (bincode: `is_human_readable() == false`) get an `i64` of microseconds since the Unix
/// epoch, so replaying a million events does not parse a million date strings. JSON (the `events` command,
/// the device page) gets RFC 3339 text.
pub mod timestamp {
    use super::*;

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(ts)
        } else {
            s.serialize_i64(ts.as_microsecond())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let micros = i64::deserialize(d)?;
            Timestamp::from_microsecond(micros).map_err(serde::de::Error::custom)
        }
    }
}

/// The same adapter for optional instants.
pub mod option_timestamp {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wrapped(#[serde(with = "super::timestamp")] Timestamp);

    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&ts.map(Wrapped), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(ts)| ts))
    }
}
