//! What a simulation did: the counts of a run ([`SimulationReport`]) and the short summary they print as.

use std::collections::BTreeMap;
use std::fmt;

/// What a simulation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// Messages handed to the broker, duplicates and `status` messages included.
    pub sent: u64,
    /// Messages the broker acknowledged (PUBACK); equals `sent` unless the connection broke or the broker was
    /// slower than the final wait.
    pub acked: u64,
    /// Of `sent`, repeats of an earlier message (same `msg_id`), as retrying gateways send them.
    pub duplicates: u64,
    /// Messages sent per kind (`passage`, `fault`, `fault_cleared`, `recognition`, `heartbeat`, `status`),
    /// duplicates counted under their kind.
    pub by_message: BTreeMap<String, u64>,
    /// Of those, repeats per kind: a kind's distinct messages are `by_message - repeated` (passages recorded, for
    /// one: every repeat carries the `msg_id` of a passage sent before).
    pub repeated: BTreeMap<String, u64>,
}

impl SimulationReport {
    pub(super) fn record(&mut self, kind: &str, duplicate: bool) {
        self.sent += 1;
        if duplicate {
            self.duplicates += 1;
            *self.repeated.entry(kind.to_owned()).or_default() += 1;
        }
        *self.by_message.entry(kind.to_owned()).or_default() += 1;
    }
}

impl fmt::Display for SimulationReport {
    /// `sent 1200 messages (12 duplicates), 1200 acknowledged`, then one line per kind, most frequent first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "sent {} ({}), {} acknowledged",
            plural(self.sent, "message"),
            plural(self.duplicates, "duplicate"),
            self.acked
        )?;
        let mut kinds: Vec<(&String, &u64)> = self.by_message.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let width = kinds.iter().map(|(kind, _)| kind.len()).max().unwrap_or(0);
        for (kind, count) in kinds {
            write!(f, "\n  {kind:<width$}  {count}")?;
            if let Some(repeated) = self.repeated.get(kind) {
                write!(f, " ({repeated} repeated)")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_as_a_short_summary() {
        let mut report = SimulationReport::default();
        for _ in 0..3 {
            report.record("passage", false);
        }
        report.record("passage", true);
        report.record("status", false);
        report.record("fault_cleared", false);
        report.acked = 6;
        assert_eq!(
            report.to_string(),
            "sent 6 messages (1 duplicate), 6 acknowledged\n  passage        4 (1 repeated)\n  fault_cleared  1\n  status         1"
        );
        assert_eq!(report.by_message["passage"], 4);
    }
}
