//! Device events: the facts the journal keeps forever. Past tense; each variant's body is its own struct so the
//! journal can store the body under a stable type name and a schema version (see `codec`).

use super::aggregate::DomainEvent;
use super::ids::{DeviceDetails, DeviceId, DeviceKind};
use super::time::timestamp;
use super::values::{Confidence, Direction, FaultCode, Subject};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Every fact a turnstile or camera stream can hold. Turnstile-only and camera-only events are rejected by the
/// other kind's `decide`, so one enum serves both and the journal, projectors and pages need only one type.
///
/// The enum itself is never stored: the codec stores each body under its `event_type` name.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    Commissioned(Commissioned),
    DetailsChanged(DetailsChanged),
    WatchesChanged(WatchesChanged),
    Decommissioned(Decommissioned),
    PassageRecorded(PassageRecorded),
    FaultReported(FaultReported),
    FaultCleared(FaultCleared),
    LockedOut(LockedOut),
    Unlocked(Unlocked),
    WentOffline(WentOffline),
    CameOnline(CameOnline),
    RecognitionRecorded(RecognitionRecorded),
    MessageCounted(MessageCounted),
    FactVoided(FactVoided),
}

/// The device was added to `config.toml` (or added back after a removal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commissioned {
    pub kind: DeviceKind,
    pub details: DeviceDetails,
    /// Turnstiles a camera looks at; empty for turnstiles.
    pub watches: Vec<DeviceId>,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The installer renamed the device, moved it to another zone or corrected its equipment facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetailsChanged {
    pub details: DeviceDetails,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A camera now watches a different set of turnstiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchesChanged {
    pub watches: Vec<DeviceId>,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The device was removed from `config.toml`; its history stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decommissioned {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// One completed rotation of a turnstile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageRecorded {
    pub direction: Direction,
    /// Device time of the rotation.
    #[serde(with = "timestamp")]
    pub at: Timestamp,
    /// A fault was open when the rotation happened: the count may be less trustworthy.
    pub during_fault: bool,
    /// The turnstile was locked out by a manager: somebody got through a unit taken out of service.
    pub during_lockout: bool,
    /// The gateway's message counter for this device, when it sends one (schema 2; older events: `None`).
    pub seq: Option<u64>,
}

/// The unit reported a malfunction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultReported {
    pub code: FaultCode,
    pub detail: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
    /// The gateway's message counter for this device, when it sends one (schema 2; older events: `None`).
    pub seq: Option<u64>,
}

/// The unit reported a fault gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultCleared {
    pub code: FaultCode,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
    /// The gateway's message counter for this device, when it sends one (schema 2; older events: `None`).
    pub seq: Option<u64>,
}

/// A manager took the turnstile out of service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedOut {
    pub reason: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A manager put the turnstile back into service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unlocked {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The device stopped being reachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WentOffline {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The device is reachable again (or for the first time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameOnline {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A camera saw a face; `subject` is `None` when nobody was recognized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognitionRecorded {
    pub subject: Option<Subject>,
    pub confidence: Confidence,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
    /// The gateway's message counter for this device, when it sends one (schema 2; older events: `None`).
    pub seq: Option<u64>,
}

/// A device message with a `seq` that changed nothing else (a repeated fault report, a stray clear): kept so the
/// counter has no false gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageCounted {
    pub seq: u64,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A recorded fact a manager may void, with what read models need to take it back out without reading the
/// original again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// Externally tagged (`{"passage": {...}}`): bincode, the journal's format, cannot read internally tagged enums.
#[serde(rename_all = "snake_case")]
pub enum VoidedFact {
    Passage {
        direction: Direction,
        #[serde(with = "timestamp")]
        at: Timestamp,
    },
    Recognition {
        subject: Option<Subject>,
        confidence: Confidence,
        #[serde(with = "timestamp")]
        at: Timestamp,
    },
}

impl VoidedFact {
    /// The fact an event records, when it is one that can be voided (a passage or a recognition).
    pub fn of(event: &DeviceEvent) -> Option<VoidedFact> {
        match event {
            DeviceEvent::PassageRecorded(e) => Some(VoidedFact::Passage {
                direction: e.direction,
                at: e.at,
            }),
            DeviceEvent::RecognitionRecorded(e) => Some(VoidedFact::Recognition {
                subject: e.subject.clone(),
                confidence: e.confidence,
                at: e.at,
            }),
            _ => None,
        }
    }

    /// `passage` or `recognition`.
    pub fn name(&self) -> &'static str {
        match self {
            VoidedFact::Passage { .. } => "passage",
            VoidedFact::Recognition { .. } => "recognition",
        }
    }
}

/// A manager declared the fact at journal `position` wrong (a technician's test rotations, a recognition of the
/// wrong person): reports, occupancy and attendance leave it out from now on. The original stays in the journal
/// unchanged; this correcting event references it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactVoided {
    pub position: u64,
    pub fact: VoidedFact,
    pub reason: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// Every device event type, as the journal's `event_type` column names them (`DomainEvent::event_type`).
pub const DEVICE_EVENT_TYPES: [&str; 14] = [
    "Commissioned",
    "DetailsChanged",
    "WatchesChanged",
    "Decommissioned",
    "PassageRecorded",
    "FaultReported",
    "FaultCleared",
    "LockedOut",
    "Unlocked",
    "WentOffline",
    "CameOnline",
    "RecognitionRecorded",
    "MessageCounted",
    "FactVoided",
];

impl DomainEvent for DeviceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            DeviceEvent::Commissioned(_) => "Commissioned",
            DeviceEvent::DetailsChanged(_) => "DetailsChanged",
            DeviceEvent::WatchesChanged(_) => "WatchesChanged",
            DeviceEvent::Decommissioned(_) => "Decommissioned",
            DeviceEvent::PassageRecorded(_) => "PassageRecorded",
            DeviceEvent::FaultReported(_) => "FaultReported",
            DeviceEvent::FaultCleared(_) => "FaultCleared",
            DeviceEvent::LockedOut(_) => "LockedOut",
            DeviceEvent::Unlocked(_) => "Unlocked",
            DeviceEvent::WentOffline(_) => "WentOffline",
            DeviceEvent::CameOnline(_) => "CameOnline",
            DeviceEvent::RecognitionRecorded(_) => "RecognitionRecorded",
            DeviceEvent::MessageCounted(_) => "MessageCounted",
            DeviceEvent::FactVoided(_) => "FactVoided",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            DeviceEvent::Commissioned(e) => e.at,
            DeviceEvent::DetailsChanged(e) => e.at,
            DeviceEvent::WatchesChanged(e) => e.at,
            DeviceEvent::Decommissioned(e) => e.at,
            DeviceEvent::PassageRecorded(e) => e.at,
            DeviceEvent::FaultReported(e) => e.at,
            DeviceEvent::FaultCleared(e) => e.at,
            DeviceEvent::LockedOut(e) => e.at,
            DeviceEvent::Unlocked(e) => e.at,
            DeviceEvent::WentOffline(e) => e.at,
            DeviceEvent::CameOnline(e) => e.at,
            DeviceEvent::RecognitionRecorded(e) => e.at,
            DeviceEvent::MessageCounted(e) => e.at,
            DeviceEvent::FactVoided(e) => e.at,
        }
    }
}

impl DeviceEvent {
    /// Whether the device itself sent the message this records (not a decision of ours or the config's).
    pub fn is_device_message(&self) -> bool {
        matches!(
            self,
            DeviceEvent::PassageRecorded(_)
                | DeviceEvent::FaultReported(_)
                | DeviceEvent::FaultCleared(_)
                | DeviceEvent::RecognitionRecorded(_)
                | DeviceEvent::MessageCounted(_)
        )
    }

    /// The gateway's message counter the event carries, for the device messages that have one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            DeviceEvent::PassageRecorded(e) => e.seq,
            DeviceEvent::FaultReported(e) => e.seq,
            DeviceEvent::FaultCleared(e) => e.seq,
            DeviceEvent::RecognitionRecorded(e) => e.seq,
            DeviceEvent::MessageCounted(e) => Some(e.seq),
            _ => None,
        }
    }
}
