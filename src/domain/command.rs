//! Commands: what someone asks a device aggregate to do (imperative), and why it may say no.

use super::ids::{DeviceDetails, DeviceId, DeviceKind};
use super::values::{Direction, FaultCode, Subject};
use jiff::Timestamp;

/// Everything a device aggregate can be asked. Device messages arrive from MQTT, lifecycle commands from the
/// difference between `config.toml` and the journal, lock-outs from managers, `ReportAvailability` also from the
/// offline policy.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceCommand {
    Commission {
        details: DeviceDetails,
        watches: Vec<DeviceId>,
        at: Timestamp,
    },
    /// Bring the device's details (and a camera's watch list) in line with the configuration.
    Reconfigure {
        details: DeviceDetails,
        watches: Vec<DeviceId>,
        at: Timestamp,
    },
    Decommission {
        at: Timestamp,
    },
    RecordPassage {
        direction: Direction,
        at: Timestamp,
        /// The gateway's message counter (`seq`), when it sends one.
        seq: Option<u64>,
    },
    ReportFault {
        code: FaultCode,
        detail: String,
        at: Timestamp,
        /// The gateway's message counter (`seq`), when it sends one.
        seq: Option<u64>,
    },
    ClearFault {
        code: FaultCode,
        at: Timestamp,
        /// The gateway's message counter (`seq`), when it sends one.
        seq: Option<u64>,
    },
    LockOut {
        reason: String,
        at: Timestamp,
    },
    Unlock {
        at: Timestamp,
    },
    /// A `status` message (`online` / `offline`, often a gateway's Last Will) or the offline policy.
    ReportAvailability {
        online: bool,
        at: Timestamp,
    },
    RecordHeartbeat {
        at: Timestamp,
    },
    RecordRecognition {
        subject: Option<Subject>,
        /// Raw as received: the range rule lives in `decide`.
        confidence: f64,
        at: Timestamp,
        seq: Option<u64>,
    },
    /// A manager voids the fact at journal `position` of this device's stream; `fact` is what that event
    /// recorded, read from the journal by whoever asks.
    VoidFact {
        position: u64,
        fact: super::event::VoidedFact,
        reason: String,
        at: Timestamp,
    },
}

impl DeviceCommand {
    /// A short name for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            DeviceCommand::Commission { .. } => "commission",
            DeviceCommand::Reconfigure { .. } => "reconfigure",
            DeviceCommand::Decommission { .. } => "decommission",
            DeviceCommand::RecordPassage { .. } => "record passage",
            DeviceCommand::ReportFault { .. } => "report fault",
            DeviceCommand::ClearFault { .. } => "clear fault",
            DeviceCommand::LockOut { .. } => "lock out",
            DeviceCommand::Unlock { .. } => "unlock",
            DeviceCommand::ReportAvailability { .. } => "report availability",
            DeviceCommand::RecordHeartbeat { .. } => "record heartbeat",
            DeviceCommand::RecordRecognition { .. } => "record recognition",
            DeviceCommand::VoidFact { .. } => "void a fact",
        }
    }

    /// The gateway's message counter, for the device messages that carry one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            DeviceCommand::RecordPassage { seq, .. }
            | DeviceCommand::ReportFault { seq, .. }
            | DeviceCommand::ClearFault { seq, .. }
            | DeviceCommand::RecordRecognition { seq, .. } => *seq,
            _ => None,
        }
    }

    /// Whether the device itself sent this: any such message is proof that the device is reachable.
    pub fn is_sign_of_life(&self) -> bool {
        matches!(
            self,
            DeviceCommand::RecordPassage { .. }
                | DeviceCommand::ReportFault { .. }
                | DeviceCommand::ClearFault { .. }
                | DeviceCommand::RecordHeartbeat { .. }
                | DeviceCommand::RecordRecognition { .. }
        )
    }
}

/// Why an aggregate refused a command. The text is what dead letters and pages show.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("device is not commissioned: add it to config.toml and restart")]
    NotCommissioned,
    #[error("device is already commissioned")]
    AlreadyCommissioned,
    #[error("device is decommissioned and accepts nothing")]
    Decommissioned,
    #[error("a {kind} cannot {command}")]
    WrongKind { kind: DeviceKind, command: &'static str },
    #[error("confidence {0} is outside 0..=1")]
    ConfidenceOutOfRange(f64),
    #[error("the fact at journal position {0} is already void")]
    AlreadyVoided(u64),
}
