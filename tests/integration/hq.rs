//! `gatehouse hq` against a real three-node NATS cluster and two real sites: every site's events reach the
//! network view exactly once and in order through restarts of a site and of the HQ itself, and the network pages
//! and their CSV show them per site.

use crate::forward::{forwarding_site, journal_head};
use crate::helpers::*;
use crate::load::*;
use crate::nats::*;
use std::time::{Duration, Instant};

struct Hq {
    dir: tempfile::TempDir,
    web: std::net::SocketAddr,
    server: Server,
    token: String,
}

impl Hq {
    fn start(cluster: &NatsCluster) -> Hq {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[hq]\nnats = {}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndir = \"hq-data\"\n",
                cluster.toml_servers()
            ),
        )
        .unwrap();
        let created = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(dir.path())
            .args(["token", "create", "network-test", "--role", "admin"])
            .output()
            .unwrap();
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
        let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
        let server = Server::start_in(dir.path(), "hq");
        wait_for_port(port);
        Hq {
            web: ([127, 0, 0, 1], port).into(),
            server,
            token,
            dir,
        }
    }

    fn get(&self, path: &str) -> Response {
        let bearer = format!("Bearer {}", self.token);
        http(self.web, "GET", path, &[("Authorization", &bearer)], "")
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("hq-data").join("hq.db")
    }

    /// Waits until the HQ holds every position of `site`'s journal up to `head` (what a killed HQ had taken
    /// but not acknowledged comes again after the consumer's ack wait).
    fn wait_for(&self, site: &str, head: u64) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let applied = if self.db().exists() {
                rusqlite::Connection::open(self.db())
                    .and_then(|c| {
                        c.query_row(
                            "SELECT COUNT(*) FROM site_events WHERE site = ?1 AND position <= ?2",
                            rusqlite::params![site, head as i64],
                            |r| r.get::<_, i64>(0),
                        )
                    })
                    .unwrap_or(0) as u64
            } else {
                0
            };
            if applied >= head {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the HQ holds {applied} of {site}'s {head} positions"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn the_network_view_holds_two_sites_events_once_in_order_through_site_and_hq_restarts() {
    let cluster = NatsCluster::start();
    let (north, north_mqtt, north_web) = forwarding_site(&cluster, "north");
    let (south, south_mqtt, south_web) = forwarding_site(&cluster, "south");
    let mut north_server = Server::start(&north);
    let _south_server = Server::start(&south);
    for port in [north_mqtt, north_web.port(), south_mqtt, south_web.port()] {
        wait_for_port(port);
    }
    let mut hq = Hq::start(&cluster);
    // Before anything arrived: an empty state that says what to do.
    let empty = hq.get("/");
    assert_eq!(empty.status, 200, "{}", empty.body);
    let (north_gateway, south_gateway) = (Gateway::sending(north_mqtt, 3_000), Gateway::sending(south_mqtt, 2_000));
    while north_gateway.acked() < 1_000 {
        std::thread::sleep(Duration::from_millis(20));
    }
    hq.server.kill_and_restart();
    while north_gateway.acked() < 2_000 {
        std::thread::sleep(Duration::from_millis(20));
    }
    north_server.kill_and_restart();
    north_gateway.finish();
    south_gateway.finish();
    // A manager at the south site voids a test rotation: the network's traffic leaves it out too.
    let test_rotation = query_i64(
        &south.paths().journal(),
        "SELECT MIN(position) FROM events WHERE event_type = 'PassageRecorded'",
    );
    let voided = south.gatehouse(&["void", &test_rotation.to_string(), "--reason", "test rotation"]);
    assert!(voided.status.success(), "{}", String::from_utf8_lossy(&voided.stderr));
    wait_for_port(hq.web.port());
    for (site, name) in [(&north, "north"), (&south, "south")] {
        let head = journal_head(site);
        hq.wait_for(name, head);
        let conn = rusqlite::Connection::open(hq.db()).unwrap();
        let (count, first, last): (i64, i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), MIN(position), MAX(position) FROM site_events WHERE site = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((count, first), (last, 1), "{name}: every position once, from 1");
        assert!(last as u64 >= head);
        let (events, first): (i64, i64) = conn
            .query_row(
                "SELECT events, first_position FROM sites WHERE site = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((events, first), (count, 1), "{name}: the site's counters agree");
    }
    // The pages, as a manager (or a script) reads them.
    let sites = hq.get("/?format=csv");
    assert_eq!(sites.status, 200, "{}", sites.body);
    let lines: Vec<&str> = sites.body.lines().collect();
    assert_eq!(
        lines[0],
        "site,devices,online,open_faults,active_alarms,open_work_orders,last_event_at"
    );
    assert!(lines[1].starts_with("north,1,1,0,"), "{}", sites.body);
    assert!(lines[2].starts_with("south,1,1,0,"), "{}", sites.body);
    let page = hq.get("/");
    assert!(page.body.contains("href=\"/sites/north\""), "{}", page.body);
    let north_page = hq.get("/sites/north");
    assert!(
        north_page.body.contains("T1") && north_page.body.contains("online"),
        "{}",
        north_page.body
    );
    assert_eq!(hq.get("/sites/nowhere").status, 404);
    let traffic = hq.get("/reports/traffic?format=csv");
    let mut passages = std::collections::BTreeMap::new();
    for line in traffic.body.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        *passages.entry(fields[1].to_owned()).or_insert(0) += fields[2].parse::<u64>().unwrap();
    }
    assert_eq!(
        passages,
        [("north".to_owned(), 3_000), ("south".to_owned(), 1_999)]
            .into_iter()
            .collect(),
        "{}",
        traffic.body
    );
    let equipment = hq.get("/reports/equipment?format=csv");
    let rows: Vec<&str> = equipment.body.lines().collect();
    assert_eq!(rows[0], "site,device,kind,uptime_pct,faults,mttr_seconds");
    assert!(rows[1].starts_with("north,T1,turnstile,"), "{}", equipment.body);
    assert_eq!(hq.get("/reports/traffic?bucket=week").status, 400);
    assert_eq!(
        http(hq.web, "GET", "/", &[], "").status,
        401,
        "the network view needs a sign-in too"
    );
}
