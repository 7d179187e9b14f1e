//! The generic host and the policy framework, proven with a second, tiny aggregate (`tally`) defined here, as
//! any later kind would be: given/when/then through the real registry, journal and recovery, and a policy that
//! is SIGKILLed between an event and its command and still acts exactly once.

use crate::helpers::*;
use gatehouse::actors::{CommandError, CommandOutcome, Hosted, Meta};
use gatehouse::codec::{DecodeError, EventCodec};
use gatehouse::domain::{Aggregate, DomainEvent};
use gatehouse::journal::{Actor, StoredEvent};
use gatehouse::policy::{Order, Policy};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Counts what it is told to count, until closed.
struct Tally;

#[derive(Debug, Clone)]
enum TallyCommand {
    Count { of: u64, at: jiff::Timestamp },
    Close { at: jiff::Timestamp },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    Counted { of: u64, at: jiff::Timestamp },
    Closed { at: jiff::Timestamp },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TallyState {
    count: u64,
    closed: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the tally is closed")]
struct TallyClosed;

impl DomainEvent for TallyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TallyEvent::Counted { .. } => "TallyCounted",
            TallyEvent::Closed { .. } => "TallyClosed",
        }
    }
    fn occurred_at(&self) -> jiff::Timestamp {
        match self {
            TallyEvent::Counted { at, .. } | TallyEvent::Closed { at } => *at,
        }
    }
}

/// A test kind may store its bodies however it likes; JSON keeps this one short.
impl EventCodec for TallyEvent {
    fn encode_body(&self) -> (u32, Vec<u8>) {
        (1, serde_json::to_vec(self).unwrap())
    }
    fn decode_body(event_type: &str, _schema: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(payload).map_err(|_| DecodeError::UnknownType(event_type.to_owned()))
    }
    fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

impl Aggregate for Tally {
    const KIND: &'static str = "tally";
    const STATE_SCHEMA: u32 = 1;
    type Command = TallyCommand;
    type Event = TallyEvent;
    type State = TallyState;
    type Rejection = TallyClosed;

    fn decide(state: &TallyState, command: &TallyCommand) -> Result<Vec<TallyEvent>, TallyClosed> {
        match (state.closed, command) {
            (true, _) => Err(TallyClosed),
            (false, TallyCommand::Count { of, at }) => Ok(vec![TallyEvent::Counted { of: *of, at: *at }]),
            (false, TallyCommand::Close { at }) => Ok(vec![TallyEvent::Closed { at: *at }]),
        }
    }

    fn evolve(mut state: TallyState, event: &TallyEvent) -> TallyState {
        match event {
            TallyEvent::Counted { .. } => state.count += 1,
            TallyEvent::Closed { .. } => state.closed = true,
        }
        state
    }
}

impl Hosted for Tally {}

fn count(of: u64) -> TallyCommand {
    TallyCommand::Count {
        of,
        at: at("2026-11-30T12:00:00Z"),
    }
}

fn by_test(causation: &str) -> Meta {
    Meta::by(Actor::user("ana")).caused_by(causation)
}

#[test]
fn the_generic_host_decides_records_deduplicates_refuses_and_recovers_a_second_kind() {
    let site = Site::new("");
    with_app(site.config(), async |app| {
        let registry = &app.state().registry;
        // Given nothing, when counting: recorded, and the instance was started on first use.
        let first = registry
            .execute_or_start::<Tally>("gate", count(1), by_test("c-1"))
            .await;
        assert!(
            matches!(first, Ok(CommandOutcome::Recorded { events: 1, .. })),
            "{first:?}"
        );
        // The same causation again records nothing.
        let again = registry
            .execute_or_start::<Tally>("gate", count(1), by_test("c-1"))
            .await;
        assert_eq!(again, Ok(CommandOutcome::Duplicate));
        registry
            .execute_or_start::<Tally>("gate", count(2), by_test("c-2"))
            .await
            .unwrap();
        registry
            .execute_or_start::<Tally>(
                "gate",
                TallyCommand::Close {
                    at: at("2026-11-30T12:01:00Z"),
                },
                by_test("c-3"),
            )
            .await
            .unwrap();
        // Given closed, when counting: refused with the aggregate's own reason.
        let refused = registry
            .execute_or_start::<Tally>("gate", count(3), by_test("c-4"))
            .await;
        assert_eq!(refused, Err(CommandError::Rejected(TallyClosed)));
    });
    // The stream is `kind:id` and each event records who asked.
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    assert_eq!(
        dump(
            &conn,
            "SELECT stream_id || ' ' || version || ' ' || event_type || ' ' || actor FROM events"
        ),
        [
            "tally:gate 1 TallyCounted user:ana",
            "tally:gate 2 TallyCounted user:ana",
            "tally:gate 3 TallyClosed user:ana"
        ]
    );
    drop(conn);
    // After a restart the state is recovered from the journal: still closed, still at version 3.
    with_app(site.config(), async |app| {
        let refused = app
            .state()
            .registry
            .execute_or_start::<Tally>("gate", count(4), by_test("c-5"))
            .await;
        assert_eq!(refused, Err(CommandError::Rejected(TallyClosed)));
        let fresh = app
            .state()
            .registry
            .execute_or_start::<Tally>("other", count(4), by_test("c-5"))
            .await;
        assert!(matches!(fresh, Ok(CommandOutcome::Recorded { .. })), "{fresh:?}");
    });
    // `gatehouse events --stream` takes the same name; the codec registry has no decoder for a test kind, so its
    // events are listed with why they cannot be shown, never skipped.
    let output = site.gatehouse(&["events", "--stream", "tally:gate"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = String::from_utf8(output.stdout).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.contains("unknown aggregate kind \\\"tally\\\""), "{lines}");
}

/// Counts every passage on the turnstile's tally, and opens a new tally per tenth passage: an instance whose id
/// comes from the causing event's position, so a re-delivery cannot create a second one.
struct TallyPolicy;

impl Policy for TallyPolicy {
    fn name(&self) -> &'static str {
        "tally"
    }

    fn react(&mut self, event: &StoredEvent) -> Result<Vec<Order>, String> {
        let Some((device, gatehouse::domain::DeviceEvent::PassageRecorded(p))) = event.device() else {
            return Ok(vec![]);
        };
        let of = event.position;
        let mut orders = vec![Order::to::<Tally>(device, TallyCommand::Count { of, at: p.at })];
        if of.is_multiple_of(10) {
            orders.push(Order::to::<Tally>(
                format!("batch-{of}"),
                TallyCommand::Count { of, at: p.at },
            ));
        }
        Ok(orders)
    }
}

const CHILD: &str = "GATEHOUSE_POLICY_CHILD_CONFIG";
const PASSAGES: u64 = 300;

/// In the child process: run a core with the tally policy until killed or caught up.
fn run_child(config: &str) {
    let config = gatehouse::config::Config::load(std::path::Path::new(config)).unwrap();
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let core = gatehouse::app::Core::start_with_policies(config, vec![Box::new(TallyPolicy)])
            .await
            .unwrap();
        let head = *core.state().committed.borrow();
        let policy = core
            .state()
            .projectors
            .iter()
            .find(|p| p.name == "policy:tally")
            .unwrap()
            .clone();
        policy.wait_for(head, Duration::from_secs(600)).await;
    });
}

#[test]
fn a_policy_killed_between_an_event_and_its_command_acts_once() {
    if let Ok(config) = std::env::var(CHILD) {
        return run_child(&config);
    }
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let mut t1 = vec![commissioned(
        gatehouse::domain::DeviceKind::Turnstile,
        "North",
        "Hall A",
        "2026-11-30T07:00:00Z",
    )];
    for n in 0..PASSAGES {
        t1.push(passage(
            gatehouse::domain::Direction::In,
            &format!("2026-11-30T08:{:02}:{:02}Z", n / 60, n % 60),
        ));
    }
    seed(&site.paths(), &[("T1", t1)]);
    let journal = site.paths().journal();
    let views = site.paths().views();
    let counted = || {
        try_query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'TallyCounted'",
        )
        .unwrap_or(0)
    };
    let child = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "policies::a_policy_killed_between_an_event_and_its_command_acts_once",
                "--test-threads=1",
            ])
            .env(CHILD, site.config_path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut windows_hit = 0;
    for round in 1..=4 {
        let mut running = child();
        let deadline = Instant::now() + Duration::from_secs(120);
        let target = (PASSAGES + PASSAGES / 10) * round / 6;
        while counted() < target as i64 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the policy counted {} of {target}",
                counted()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        running.kill().unwrap();
        running.wait().unwrap();
        // Commands of events past the checkpoint: the crash fell between an event's command and its checkpoint.
        let checkpoint = try_query_i64(
            &views,
            "SELECT position FROM projector_checkpoints WHERE projection = 'policy:tally'",
        )
        .unwrap_or(0);
        let acted_up_to = query_i64(
            &journal,
            "SELECT COALESCE(MAX(CAST(SUBSTR(causation, 14) AS INTEGER)), 0) FROM events WHERE causation LIKE 'policy:tally:%'",
        );
        if acted_up_to > checkpoint {
            windows_hit += 1;
        }
    }
    assert!(
        windows_hit > 0,
        "no kill fell between a command and its checkpoint; the test proved nothing"
    );
    let mut last = child();
    assert!(last.wait().unwrap().success(), "the policy caught up");
    // Exactly one count per passage, and one batch tally per tenth position: nothing doubled, nothing lost.
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        one("SELECT COUNT(*) FROM events WHERE event_type = 'TallyCounted' AND stream_id = 'tally:T1'"),
        PASSAGES as i64
    );
    let tenths = one("SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded' AND position % 10 = 0");
    assert_eq!(
        one("SELECT COUNT(*) FROM events WHERE stream_id LIKE 'tally:batch-%'"),
        tenths
    );
    assert_eq!(
        one("SELECT COUNT(DISTINCT stream_id) FROM events WHERE stream_id LIKE 'tally:batch-%'"),
        tenths
    );
    assert_eq!(
        one("SELECT COUNT(*) - COUNT(DISTINCT stream_id || causation) FROM events WHERE causation LIKE 'policy:%'"),
        0
    );
    assert_eq!(
        one("SELECT COUNT(DISTINCT actor) FROM events WHERE causation LIKE 'policy:%'"),
        1
    );
}

#[test]
fn with_on_error_stop_a_policy_halts_in_front_of_an_event_it_cannot_read_and_acts_on_nothing_after_it() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let t1 = |when: &str| passage(gatehouse::domain::Direction::In, when);
    seed(
        &site.paths(),
        &[(
            "T1",
            vec![
                commissioned(
                    gatehouse::domain::DeviceKind::Turnstile,
                    "North",
                    "Hall A",
                    "2026-11-30T07:00:00Z",
                ),
                t1("2026-11-30T08:00:00Z"),
            ],
        )],
    );
    let unreadable = crate::followers::append_undecodable(&site, "T2");
    seed(&site.paths(), &[("T1", vec![t1("2026-11-30T08:01:00Z")])]);
    let mut config = site.config();
    config.followers.on_error = gatehouse::config::OnError::Stop;
    let system = actix_web::rt::System::new();
    let (error, checkpoint) = system.block_on(async move {
        let core = gatehouse::app::Core::start_with_policies(config, vec![Box::new(TallyPolicy)])
            .await
            .unwrap();
        let policy = core
            .state()
            .projectors
            .iter()
            .find(|p| p.name == "policy:tally")
            .unwrap()
            .clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        while policy.error().is_none() {
            assert!(
                Instant::now() < deadline,
                "the policy never reported the unreadable event"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let checkpoint = *policy.position.borrow();
        (policy.error().unwrap(), checkpoint)
    });
    drop(system);
    assert!(
        error.contains(&format!("event at position {unreadable} cannot be handled")),
        "{error}"
    );
    assert_eq!(
        checkpoint,
        unreadable - 1,
        "it stopped in front of the unreadable event"
    );
    let counted = query_i64(
        &site.paths().journal(),
        "SELECT COUNT(*) FROM events WHERE event_type = 'TallyCounted'",
    );
    assert_eq!(counted, 1, "the passage after the unreadable event was not acted on");
}
