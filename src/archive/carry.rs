//! The state archival carries forward for a stream: the aggregate folded from its previous carried-forward state
//! (if any) and its events up to the last one being archived, in the codec of snapshots.

use crate::codec::{self, CarriedForward, EventCodec};
use crate::domain::DomainEvent;
use crate::domain::{
    Aggregate, Alarm, Camera, DEVICE_KIND, MaintenanceSchedule, Occupancy, Presence, StreamName, Turnstile, WatchList,
    WorkOrder,
};
use crate::journal::JournalReader;
use anyhow::{Context, anyhow};

/// The state `stream` has after its event at `version`, ready to be stored in that event's place (with that
/// event's own time).
pub fn state_through(journal: &JournalReader, stream: &StreamName, version: u64) -> anyhow::Result<CarriedForward> {
    let carried = journal.carried_forward(stream.as_str())?;
    match stream.kind() {
        DEVICE_KIND => match device_state_of(journal, stream, carried.as_ref())?.as_str() {
            "turnstile" => fold::<Turnstile>(journal, stream, carried, version),
            "camera" => fold::<Camera>(journal, stream, carried, version),
            other => Err(anyhow!("stream {stream}: a device of unknown kind {other:?}")),
        },
        WorkOrder::KIND => fold::<WorkOrder>(journal, stream, carried, version),
        MaintenanceSchedule::KIND => fold::<MaintenanceSchedule>(journal, stream, carried, version),
        Alarm::KIND => fold::<Alarm>(journal, stream, carried, version),
        WatchList::KIND => fold::<WatchList>(journal, stream, carried, version),
        Presence::KIND => fold::<Presence>(journal, stream, carried, version),
        Occupancy::KIND => fold::<Occupancy>(journal, stream, carried, version),
        other => Err(anyhow!("stream {stream}: unknown aggregate kind {other:?}")),
    }
}

/// Whether a device stream is a turnstile's or a camera's: its carried-forward state says, or its commissioning.
fn device_state_of(
    journal: &JournalReader,
    stream: &StreamName,
    carried: Option<&(u64, CarriedForward)>,
) -> anyhow::Result<String> {
    if let Some((_, carried)) = carried {
        return Ok(carried.of.clone());
    }
    // The first commissioning says (read through the type index, not the whole stream).
    let (schema, format, payload): (u32, u8, Vec<u8>) = journal
        .connection()
        .query_row(
            "SELECT schema, format, payload FROM events WHERE event_type = 'Commissioned' AND stream_id = ?1
             ORDER BY position LIMIT 1",
            [stream.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(|_| anyhow!("stream {stream}: no Commissioned event says what device it is"))?;
    let first = match codec::decode_event::<crate::domain::DeviceEvent>("Commissioned", schema, format, &payload)? {
        crate::domain::DeviceEvent::Commissioned(c) => c.kind,
        _ => return Err(anyhow!("stream {stream}: its commissioning does not read as one")),
    };
    Ok(first.as_str().to_owned())
}

fn fold<A: Aggregate<Event: EventCodec>>(
    journal: &JournalReader,
    stream: &StreamName,
    carried: Option<(u64, CarriedForward)>,
    up_to: u64,
) -> anyhow::Result<CarriedForward> {
    let (mut state, from, mut at) = match carried {
        Some((version, carried)) => (carried.state_of::<A>()?, version, Some(carried.at)),
        None => (A::State::default(), 0, None),
    };
    for stored in journal
        .stream_events_as_between::<A::Event>(stream, from, up_to)
        .with_context(|| format!("stream {stream}: cannot fold its archived events"))?
    {
        state = A::evolve(state, &stored.event);
        at = Some(stored.event.occurred_at());
    }
    let at = at.ok_or_else(|| anyhow!("stream {stream}: no event up to version {up_to} to carry forward"))?;
    let (_, bytes) = codec::encode_state(&state);
    Ok(CarriedForward {
        of: A::STATE_OF.to_owned(),
        state_schema: A::STATE_SCHEMA,
        at,
        state: bytes,
    })
}
