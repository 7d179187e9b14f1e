//! The forwarder against a real three-node NATS JetStream cluster: every event lands in the replicated stream
//! exactly once and in journal order while stream leaders and followers die, the site is killed, or the whole
//! cluster is away; a stream ahead of the journal stops it with a clear error.

use crate::helpers::*;
use crate::load::*;
use crate::nats::*;
use std::time::{Duration, Instant};

const ONE_TURNSTILE: &str = "[[turnstile]]\nid = \"T1\"\nname = \"North\"\nzone = \"Hall A\"\n";
const STREAM: &str = "GATEHOUSE";

/// A site (run as its own process, so it can be killed) forwarding to `cluster`.
pub fn forwarding_site(cluster: &NatsCluster, id: &str) -> (Site, u16, std::net::SocketAddr) {
    let (mqtt, http_port) = (free_port(), free_port());
    let site = Site::new("");
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nid = \"{id}\"\nname = \"Site {id}\"\ntimezone = \"Europe/Berlin\"\n\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[storage]\ndir = \"data\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nrequire_auth = false\n\n\
             [forward]\nnats = {}\nreplicas = 3\n\n{ONE_TURNSTILE}",
            cluster.toml_servers()
        ),
    )
    .unwrap();
    (site, mqtt, ([127, 0, 0, 1], http_port).into())
}

pub fn journal_head(site: &Site) -> u64 {
    query_i64(&site.paths().journal(), "SELECT COALESCE(MAX(position), 0) FROM events") as u64
}

fn wait_for_acks(gateway: &Gateway, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while gateway.acked() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} acknowledged",
            gateway.acked()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the stream holds the site's journal up to its head, then checks it holds each position once, in
/// order, from 1.
fn assert_stream_holds_the_journal(cluster: &NatsCluster, site: &Site, id: &str) -> Vec<serde_json::Value> {
    assert_stream_holds_the_journal_within(cluster, site, id, 0)
}

/// [`assert_stream_holds_the_journal`], with positions allowed `reordered` places from their own: the documented
/// limit when a connection drops mid-window (publishes written to the dead socket are lost, later ones queued in
/// the client land first, the lost ones after them when the forwarder publishes again from the first unconfirmed).
/// Each position is still there exactly once; the network view applies them in order either way.
fn assert_stream_holds_the_journal_within(
    cluster: &NatsCluster,
    site: &Site,
    id: &str,
    reordered: usize,
) -> Vec<serde_json::Value> {
    let head = journal_head(site);
    let subject = format!("gatehouse.{id}.events");
    // Every position up to the head is there (in whatever order the stream took them).
    let documents = cluster.documents(STREAM, &subject, |d| {
        let mut distinct = event_positions(d);
        distinct.sort_unstable();
        distinct.dedup();
        distinct.len() as u64 >= head
    });
    let positions = event_positions(&documents);
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    let expected: Vec<u64> = (1..=sorted.last().copied().unwrap_or(0)).collect();
    let displaced = positions
        .iter()
        .enumerate()
        .map(|(index, position)| (index as i64 - (*position as i64 - 1)).unsigned_abs() as usize)
        .max()
        .unwrap_or(0);
    if sorted != expected || displaced > reordered {
        let doubled = positions.len() as i64 - expected.len() as i64;
        let first_wrong = positions.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "the stream does not hold {id}'s journal exactly once in order: {} documents for {} positions \
             ({doubled:+}), first out of place at index {first_wrong:?}, the farthest {displaced} places from its own \
             ({reordered} allowed)",
            positions.len(),
            expected.len()
        );
    }
    documents
}

#[test]
fn every_event_lands_once_in_order_while_the_leader_then_a_follower_die_and_the_site_is_killed() {
    let mut cluster = NatsCluster::start();
    let (site, mqtt, web) = forwarding_site(&cluster, "central");
    let mut server = Server::start(&site);
    wait_for_port(mqtt);
    wait_for_port(web.port());
    const MESSAGES: u64 = 10_000;
    let gateway = Gateway::sending(mqtt, MESSAGES);
    wait_for_acks(&gateway, 2_000);
    let leader = cluster.stream_leader(STREAM);
    cluster.kill(&leader);
    wait_for_acks(&gateway, 4_000);
    // A follower of the new leader (once one is elected: the dead one may still be reported for a moment).
    let deadline = Instant::now() + Duration::from_secs(60);
    let new_leader = loop {
        let now_leading = cluster.stream_leader(STREAM);
        if now_leading != leader {
            break now_leading;
        }
        assert!(Instant::now() < deadline, "no new leader after {leader} died");
        std::thread::sleep(Duration::from_millis(100));
    };
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .find(|n| *n != leader && *n != new_leader)
        .unwrap();
    cluster.kill(&follower);
    // One node of three: the stream has no quorum and confirms nothing, yet the site goes on acknowledging.
    wait_for_acks(&gateway, 6_000);
    let degraded = http(web, "GET", "/healthz", &[], "");
    assert_eq!(degraded.status, 200, "{}", degraded.body);
    cluster.restart(&leader);
    cluster.restart(&follower);
    wait_for_acks(&gateway, 8_000);
    server.kill_and_restart();
    gateway.finish();
    assert_messages_recorded_once(&site, MESSAGES);
    // The leader died under the forwarder's connection: within one window (256), order may differ.
    let documents = assert_stream_holds_the_journal_within(&cluster, &site, "central", 256);
    let passages = documents
        .iter()
        .filter(|d| d["type"] == "gatehouse.turnstile.passage_recorded.v1")
        .count();
    assert_eq!(passages as u64, MESSAGES, "every passage forwarded once");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(web, "GET", "/healthz", &[], "").body != "ok\n" {
        assert!(
            Instant::now() < deadline,
            "{}",
            http(web, "GET", "/healthz", &[], "").body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_the_whole_cluster_away_the_site_keeps_acknowledging_and_catches_up_when_it_returns() {
    let mut cluster = NatsCluster::start();
    let (site, mqtt, web) = forwarding_site(&cluster, "north");
    let _server = Server::start(&site);
    wait_for_port(mqtt);
    wait_for_port(web.port());
    Gateway::sending(mqtt, 500).finish();
    assert_stream_holds_the_journal(&cluster, &site, "north");
    for node in ["n1", "n2", "n3"] {
        cluster.kill(node);
    }
    // The gateways notice nothing: every message is acknowledged after its commit, as always.
    Gateway::sending_from(mqtt, 500, 1_500).finish();
    // Once a publish goes unconfirmed (a 5 s timeout), /healthz says so, and stays 200: the site works.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = http(web, "GET", "/healthz", &[], "");
        assert_eq!(health.status, 200, "{}", health.body);
        if health.body.contains("degraded: forwarder:") {
            assert!(health.body.contains("events waiting"), "{}", health.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never said the forwarder waits: {}",
            health.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // `scripts/soak` keeps the cluster away longer (GATEHOUSE_SOAK_NATS_OUTAGE_SECS).
    let outage = std::env::var("GATEHOUSE_SOAK_NATS_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    std::thread::sleep(Duration::from_secs(outage));
    for node in ["n1", "n2", "n3"] {
        cluster.restart(node);
    }
    assert_messages_recorded_once(&site, 2_000);
    assert_stream_holds_the_journal(&cluster, &site, "north");
}

#[test]
fn a_stream_ahead_of_a_restored_journal_stops_the_forwarder_with_a_clear_error() {
    let cluster = NatsCluster::start();
    let (site, mqtt, web) = forwarding_site(&cluster, "south");
    let mut server = Server::start(&site);
    wait_for_port(mqtt);
    wait_for_port(web.port());
    Gateway::sending(mqtt, 300).finish();
    assert_stream_holds_the_journal(&cluster, &site, "south");
    // The journal "restored from an older backup": a fresh one, far behind what the stream already holds.
    assert!(server.stop_with("TERM").success());
    std::fs::remove_dir_all(site.paths().dir).unwrap();
    server.spawn();
    wait_for_port(web.port());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = http(web, "GET", "/healthz", &[], "");
        if health.body.contains("forwarder stopped") {
            assert_eq!(health.status, 200, "{}", health.body);
            assert!(
                health
                    .body
                    .contains("stream GATEHOUSE already holds south's events up to position"),
                "{}",
                health.body
            );
            assert!(
                health.body.contains("was it restored from an older backup?"),
                "{}",
                health.body
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the forwarder never stopped: {}",
            health.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing of the new journal went out under positions the stream already had.
    let documents = cluster.documents(STREAM, "gatehouse.south.events", |_| true);
    let positions = event_positions(&documents);
    let expected: Vec<u64> = (1..=*positions.last().unwrap()).collect();
    assert_eq!(positions, expected);
}

/// Finds a `$ref`'d schema (`envelope.schema.json`) in `contracts/events/` by its file name.
struct ContractFiles;

impl jsonschema::Retrieve for ContractFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let file = uri.path().as_str().rsplit('/').next().unwrap_or_default().to_owned();
        let text = std::fs::read_to_string(contracts().join(&file))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn contracts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/events")
}

/// The validator of one type's contract (`contracts/events/{type}.schema.json`).
fn contract(event_type: &str) -> jsonschema::Validator {
    let path = contracts().join(format!("{event_type}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no contract for {event_type} ({}): {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .with_retriever(ContractFiles)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{event_type}: the contract does not compile: {e}"))
}

#[test]
fn every_forwarded_document_validates_against_its_contract_and_names_nobody() {
    let cluster = NatsCluster::start();
    let (mqtt, http_port) = (free_port(), free_port());
    let site = Site::new("");
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nid = \"east\"\ntimezone = \"Europe/Berlin\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
             [storage]\ndir = \"data\"\n\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nrequire_auth = false\n\n\
             [forward]\nnats = {}\n\n[alarms]\noffline_after = \"1s\"\n\n{TWO_TURNSTILES_ONE_CAMERA}",
            cluster.toml_servers()
        ),
    )
    .unwrap();
    let watched = site.gatehouse(&["watch", "add", "emp-4711", "--list", "banned", "--severity", "critical"]);
    assert!(watched.status.success(), "{}", String::from_utf8_lossy(&watched.stderr));
    let _server = Server::start(&site);
    wait_for_port(mqtt);
    wait_for_port(http_port);
    let now = || jiff::Timestamp::now().to_string();
    let publish = |topic: &str, payload: String| mosquitto_pub_lines(mqtt, topic, &[payload]);
    publish(
        "gatehouse/turnstile/T1/passage",
        format!(r#"{{"msg_id":"c-1","direction":"in","at":"{}"}}"#, now()),
    );
    publish(
        "gatehouse/camera/C1/recognition",
        format!(
            r#"{{"msg_id":"c-2","subject":"emp-4711","confidence":0.97,"at":"{}"}}"#,
            now()
        ),
    );
    publish(
        "gatehouse/turnstile/T1/passage",
        format!(r#"{{"msg_id":"c-3","direction":"in","at":"{}"}}"#, now()),
    );
    publish(
        "gatehouse/turnstile/T2/fault",
        format!(r#"{{"msg_id":"c-4","code":"E42","detail":"jammed","at":"{}"}}"#, now()),
    );
    publish("gatehouse/turnstile/T2/status", "offline".to_owned());
    for args in [
        &["lock-out", "T1", "--reason", "cleaning the hall"][..],
        &["unlock", "T1"][..],
        &["occupancy", "set", "Hall A", "3", "--reason", "counted by hand"][..],
    ] {
        let output = site.gatehouse(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The watched face's alarm and T2's offline alarm (after 1 s) are raised before T2 comes back.
    let journal = site.paths().journal();
    let deadline = Instant::now() + Duration::from_secs(60);
    while query_i64(&journal, "SELECT COUNT(*) FROM events WHERE event_type = 'AlarmRaised'") < 2 {
        assert!(Instant::now() < deadline, "the alarms were never raised");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A manager voids the first rotation and the recognition: the correction repeats the fact, the person only as
    // a pseudonym.
    for fact in ["PassageRecorded", "RecognitionRecorded"] {
        let position = query_i64(
            &journal,
            &format!("SELECT MIN(position) FROM events WHERE event_type = '{fact}'"),
        );
        let output = site.gatehouse(&["void", &position.to_string(), "--reason", "recorded by mistake"]);
        assert!(
            output.status.success(),
            "void {fact}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Seen again: the alarm's repeat names the person only in its text, which must not leave the site either.
    publish(
        "gatehouse/camera/C1/recognition",
        format!(
            r#"{{"msg_id":"c-2b","subject":"emp-4711","confidence":0.95,"at":"{}"}}"#,
            now()
        ),
    );
    publish("gatehouse/turnstile/T2/status", "online".to_owned());
    publish(
        "gatehouse/turnstile/T2/fault_cleared",
        format!(r#"{{"msg_id":"c-7","code":"E42","at":"{}"}}"#, now()),
    );
    // The policies act after the facts (an alarm cleared, a work order opened): wait for what they record.
    let expected = [
        "gatehouse.turnstile.commissioned.v1",
        "gatehouse.camera.recognition_recorded.v1",
        "gatehouse.turnstile.fault_reported.v1",
        "gatehouse.turnstile.fault_cleared.v1",
        "gatehouse.turnstile.locked_out.v1",
        "gatehouse.turnstile.went_offline.v1",
        "gatehouse.alarm.alarm_cleared.v1",
        "gatehouse.presence.passage_identified.v1",
        "gatehouse.work_order.work_order_opened.v1",
        "gatehouse.alarm.alarm_raised.v1",
        "gatehouse.alarm.alarm_repeated.v1",
        "gatehouse.watch_list.watch_entry_added.v1",
        "gatehouse.occupancy.occupancy_corrected.v1",
        "gatehouse.turnstile.fact_voided.v1",
        "gatehouse.camera.fact_voided.v1",
        "gatehouse.site.heartbeat.v1",
    ];
    cluster.documents(STREAM, "gatehouse.east.events", |documents| {
        expected.iter().all(|t| documents.iter().any(|d| d["type"] == *t))
    });
    let documents = assert_stream_holds_the_journal(&cluster, &site, "east");
    let mut validators = std::collections::HashMap::new();
    let mut types = std::collections::BTreeSet::new();
    for document in &documents {
        let event_type = document["type"].as_str().unwrap().to_owned();
        let validator = validators
            .entry(event_type.clone())
            .or_insert_with(|| contract(&event_type));
        let errors: Vec<String> = validator.iter_errors(document).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{event_type} breaks its contract: {errors:?}\n{document}"
        );
        types.insert(event_type);
        assert!(
            !document.to_string().contains("emp-4711"),
            "a plain subject went out: {document}"
        );
    }
    for expected in expected {
        assert!(types.contains(expected), "no {expected} among {types:?}");
    }
}

#[test]
fn after_archival_and_a_restart_forwarded_documents_keep_their_device_context() {
    let cluster = NatsCluster::start();
    let (site, mqtt, _web) = forwarding_site(&cluster, "west");
    let mut server = Server::start(&site);
    wait_for_port(mqtt);
    mosquitto_pub_lines(
        mqtt,
        "gatehouse/turnstile/T1/passage",
        &[r#"{"msg_id":"before-1","direction":"in"}"#.to_owned()],
    );
    // The forwarder notes how far it got now and then (the stream's last message is its real resume point), and
    // archival goes no further than that note: keep passages coming until it covers the commissioning.
    let journal = site.paths().journal();
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0.. {
        let forwarded = try_query_i64(&journal, "SELECT MAX(position) FROM forward_checkpoints").unwrap_or(0);
        if forwarded >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the forwarder never noted its progress");
        mosquitto_pub_lines(
            mqtt,
            "gatehouse/turnstile/T1/passage",
            &[format!(r#"{{"msg_id":"before-more-{n}","direction":"in"}}"#)],
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server.stop_with("TERM");
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let tomorrow = jiff::Timestamp::now()
        .to_zoned_datetime(berlin)
        .date()
        .tomorrow()
        .unwrap()
        .to_string();
    let archived = site.gatehouse(&["archive", "--before", &tomorrow]);
    assert!(
        archived.status.success(),
        "{}",
        String::from_utf8_lossy(&archived.stderr)
    );
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'Commissioned'"
        ),
        0,
        "the commissioning is archived"
    );
    let _server = Server::start(&site);
    wait_for_port(mqtt);
    mosquitto_pub_lines(
        mqtt,
        "gatehouse/turnstile/T1/passage",
        &[r#"{"msg_id":"after-1","direction":"in"}"#.to_owned()],
    );
    let passages = |documents: &[serde_json::Value]| -> Vec<serde_json::Value> {
        documents
            .iter()
            .filter(|d| d["type"].as_str().is_some_and(|t| t.ends_with(".passage_recorded.v1")))
            .cloned()
            .collect()
    };
    // Everything up to the journal's head now, the passage after the restart included.
    let head = journal_head(&site);
    let documents = cluster.documents(STREAM, "gatehouse.west.events", |d| {
        event_positions(d).last().is_some_and(|p| *p >= head)
    });
    assert!(passages(&documents).len() >= 2);
    for passage in passages(&documents) {
        assert_eq!(passage["type"], "gatehouse.turnstile.passage_recorded.v1", "{passage}");
        assert_eq!(passage["data"]["zone"], "Hall A", "{passage}");
        assert_eq!(passage["data"]["device_name"], "North", "{passage}");
    }
}
