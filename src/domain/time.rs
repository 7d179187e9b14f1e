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
            s.serialize_i64(storable_micros(*ts))
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

/// An instant's microseconds as they can be read back: jiff refuses microsecond counts within the last second
/// of its range (`Timestamp::MAX` is 22:00:00.999999999 on 9999-12-30, but microseconds stop at 22:00:00), so
/// such an instant is stored as its whole second rather than as something no reader could decode.
fn storable_micros(ts: Timestamp) -> i64 {
    let micros = ts.as_microsecond();
    if Timestamp::from_microsecond(micros).is_ok() {
        micros
    } else {
        ts.as_second().saturating_mul(1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instant_jiff_has_is_stored_as_something_readable() {
        for ts in [Timestamp::MIN, Timestamp::MAX, Timestamp::UNIX_EPOCH] {
            let back = Timestamp::from_microsecond(storable_micros(ts)).unwrap();
            assert!(
                (back.as_second() - ts.as_second()).abs() <= 1,
                "{ts} came back as {back}"
            );
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
