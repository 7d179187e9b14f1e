//! Time travel: a device's state folded from its journal events up to an instant. Shared by `gatehouse state
//! --as-of` and the device page's `?as_of=`, so both answer "what did we know about T1 at 10:30" the same way.

use crate::domain::{DeviceEvent, DeviceId, DeviceState};
use crate::journal::{JournalReader, StoredEvent};
use anyhow::anyhow;

/// Parses an instant people type: an RFC 3339 instant, or a civil date-time in the site's time zone (what an
/// HTML `datetime-local` field sends).
pub fn parse_instant(text: &str, tz: &jiff::tz::TimeZone) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned_datetime(tz.clone())?.timestamp());
    }
    Err(anyhow!(
        "{text:?} is not an instant: expected RFC 3339 like 2026-03-01T09:00:00Z or a local 2026-03-01T09:00"
    ))
}

/// Folds a device's events up to `as_of` (all when `None`): the time-travel view. `None` when the journal has
/// no events for the device; otherwise the state and the version of the last event folded (0 when `as_of` is
/// before the device was commissioned).
pub fn fold_device(
    journal: &JournalReader,
    device: &DeviceId,
    as_of: Option<jiff::Timestamp>,
) -> anyhow::Result<Option<(DeviceState, u64)>> {
    fold_events(device, &journal.stream_events(device, 0)?, as_of)
}

/// [`fold_device`] on a stream already read, for callers that also show the events themselves.
///
/// An event belongs to the past of `as_of` when it *occurred* (device time) at or before it; events stay in
/// stream order, which is the order the device's actor decided them in.
pub fn fold_events(
    device: &DeviceId,
    events: &[StoredEvent],
    as_of: Option<jiff::Timestamp>,
) -> anyhow::Result<Option<(DeviceState, u64)>> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    // An archived stream starts with the state archival carried forward: nothing before it can be folded.
    if let (Some(cut), Some(as_of)) = (archived_before(events), as_of)
        && as_of < cut
    {
        return Err(anyhow!(
            "device {device}: its events before {cut} are archived; the journal can show it as of {cut} or later"
        ));
    }
    let mut state = match (&first.event, first.device()) {
        (crate::codec::AnyEvent::Carried(carried), _) => match carried.of.as_str() {
            "turnstile" => DeviceState::Turnstile(carried.state_of::<crate::domain::Turnstile>()?),
            "camera" => DeviceState::Camera(carried.state_of::<crate::domain::Camera>()?),
            other => return Err(anyhow!("device {device}: carried-forward state of a {other}")),
        },
        (_, Some((_, DeviceEvent::Commissioned(c)))) => DeviceState::initial(c.kind),
        _ => return Err(anyhow!("device {device}: stream does not start with Commissioned")),
    };
    let mut version = 0;
    for stored in events.iter().filter(|e| as_of.is_none_or(|t| e.occurred_at <= t)) {
        if let Some((_, event)) = stored.device() {
            state = state.evolve(event);
        }
        version = stored.version;
    }
    Ok(Some((state, version)))
}

/// When a stream starts with a carried-forward state, the instant of the last event archival moved out of it:
/// the earliest instant the journal alone can show it as of.
pub fn archived_before(events: &[StoredEvent]) -> Option<jiff::Timestamp> {
    match &events.first()?.event {
        crate::codec::AnyEvent::Carried(carried) => Some(carried.at),
        _ => None,
    }
}

/// Folds a work order's events up to `as_of` (all when `None`): `None` when the journal has no such order.
pub fn fold_work_order(
    journal: &JournalReader,
    stream: &crate::domain::StreamName,
    as_of: Option<jiff::Timestamp>,
) -> anyhow::Result<Option<(crate::domain::WorkOrderState, u64)>> {
    fold_stream::<crate::domain::WorkOrder>(journal, stream, as_of, |event| match event {
        crate::codec::AnyEvent::WorkOrder(e) => Some(e),
        _ => None,
    })
}

/// Folds any aggregate's stream up to `as_of` (all when `None`), `pick` taking its events out of the journal's
///: `None` when the journal has nothing on that stream.
pub fn fold_stream<A: crate::domain::Aggregate>(
    journal: &JournalReader,
    stream: &crate::domain::StreamName,
    as_of: Option<jiff::Timestamp>,
    pick: impl Fn(&crate::codec::AnyEvent) -> Option<&A::Event>,
) -> anyhow::Result<Option<(A::State, u64)>> {
    let events = journal.stream_events(stream, 0)?;
    if events.is_empty() {
        return Ok(None);
    }
    let mut state = A::State::default();
    let mut version = 0;
    for stored in events.iter().filter(|e| as_of.is_none_or(|t| e.occurred_at <= t)) {
        if let Some(event) = pick(&stored.event) {
            state = A::evolve(state, event);
        } else if let crate::codec::AnyEvent::Carried(carried) = &stored.event {
            state = carried.state_of::<A>()?;
        }
        version = stored.version;
    }
    Ok(Some((state, version)))
}
