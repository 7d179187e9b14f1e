//! Test scaffolding: a temporary site (config + data dir), seeding the journal through the real writer, and a
//! tiny HTTP client. Everything binds port 0 and lives in its own temporary directory.

use gatehouse::app::Application;
use gatehouse::config::{Config, Synchronous};
use gatehouse::db::StoragePaths;
use gatehouse::domain::*;
use gatehouse::journal::{AppendOutcome, AppendRequest, JournalWriter};
use jiff::Timestamp;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A site in a temporary directory.
pub struct Site {
    pub dir: tempfile::TempDir,
}

pub const TWO_TURNSTILES_ONE_CAMERA: &str = r#"
[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"

[[turnstile]]
id = "T2"
name = "Hall B south"
zone = "Hall B"

[[camera]]
id = "C1"
name = "Hall A entrance"
zone = "Hall A"
watches = ["T1"]
"#;

/// T1 and C1, both in Hall A; the camera watches no turnstile.
pub const ONE_TURNSTILE_ONE_CAMERA: &str = r#"
[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"

[[camera]]
id = "C1"
name = "Hall A entrance"
zone = "Hall A"
"#;

impl Site {
    /// A site whose config has `devices` (TOML tables) after a header that listens on port 0.
    pub fn new(devices: &str) -> Site {
        let site = Site {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        site.write_config(devices);
        site
    }

    pub fn write_config(&self, devices: &str) {
        self.write_config_with_mqtt("listen = \"127.0.0.1:0\"", devices);
    }

    /// A site whose `[mqtt]` section is `mqtt` (e.g. an external broker URL or a fixed listen port).
    pub fn with_mqtt(mqtt: &str, devices: &str) -> Site {
        let site = Site {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        site.write_config_with_mqtt(mqtt, devices);
        site
    }

    pub fn write_config_with_mqtt(&self, mqtt: &str, devices: &str) {
        // Gateways in most tests connect without an identity; the tests of signing in turn it on themselves.
        let mqtt = if mqtt.contains("require_auth") {
            mqtt.to_owned()
        } else {
            format!("{mqtt}\nrequire_auth = false")
        };
        let text = format!(
            "[site]\nname = \"Test Station\"\ntimezone = \"Europe/Berlin\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [storage]\ndir = \"data\"\nsnapshot_every = 3\n\n[mqtt]\n{mqtt}\n{devices}"
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).expect("test config is valid")
    }

    pub fn paths(&self) -> StoragePaths {
        StoragePaths::new(self.dir.path().join("data"))
    }

    /// Runs the real binary with this site's config in the site's directory.
    pub fn gatehouse(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .expect("run gatehouse")
    }

    /// Starts `gatehouse serve` on this site in the background, its output discarded; the caller stops it.
    pub fn spawn_serve(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(self.dir.path())
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start gatehouse serve")
    }
}

pub fn at(s: &str) -> Timestamp {
    s.parse().expect("valid RFC 3339 in test")
}

pub fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

pub fn commissioned(kind: DeviceKind, name: &str, zone: &str, when: &str) -> DeviceEvent {
    DeviceEvent::Commissioned(Commissioned {
        kind,
        details: DeviceDetails {
            name: name.into(),
            zone: zone.into(),
            ..Default::default()
        },
        watches: vec![],
        at: at(when),
    })
}

pub fn passage(direction: Direction, when: &str) -> DeviceEvent {
    DeviceEvent::PassageRecorded(PassageRecorded {
        direction,
        at: at(when),
        during_fault: false,
        during_lockout: false,
        seq: None,
    })
}

/// A stream name (a bare id is a device).
pub fn sid(s: &str) -> StreamName {
    StreamName::parse(s).unwrap()
}

/// Who tests say sent their commands.
pub fn test_meta(causation: Option<&str>) -> gatehouse::actors::Meta {
    gatehouse::actors::Meta {
        causation: causation.map(str::to_owned),
        actor: gatehouse::journal::Actor::gateway("test"),
        delivery: None,
    }
}

/// A person as events carry them, sealed by the site's own subject vault (as ingest would).
pub fn sealed(paths: &StoragePaths, identifier: &str) -> Subject {
    paths.prepare().unwrap();
    let mut conn = gatehouse::db::open(&paths.journal(), Synchronous::Normal).unwrap();
    gatehouse::db::migrate_journal(&mut conn).unwrap();
    let vault = gatehouse::privacy::SubjectVault::on(conn).unwrap();
    vault.seal(&SubjectId::parse(identifier).unwrap()).unwrap()
}

/// Appends events through the real journal writer, stream by stream, in the given order.
pub fn seed(paths: &StoragePaths, streams: &[(&str, Vec<DeviceEvent>)]) {
    seed_any(paths, streams);
}

/// [`seed`] for the events of any aggregate kind (streams named `kind:id`).
pub fn seed_any<E: gatehouse::codec::EventCodec>(paths: &StoragePaths, streams: &[(&str, Vec<E>)]) {
    paths.prepare().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (writer, thread) = JournalWriter::open(&paths.journal(), Synchronous::Normal).unwrap();
        let reader = gatehouse::journal::JournalReader::open(&paths.journal()).unwrap();
        for (stream, events) in streams {
            let stream = sid(stream);
            let expected_version = reader.stream_version(&stream).unwrap();
            let outcome = writer
                .append(AppendRequest {
                    stream,
                    expected_version,
                    events: events.iter().map(gatehouse::codec::encode_event).collect(),
                    causation: None,
                    actor: gatehouse::journal::Actor::config(),
                    delivery: None,
                })
                .await
                .unwrap();
            assert!(matches!(outcome, AppendOutcome::Appended { .. }));
        }
        drop(writer);
        thread.join();
    });
}

/// Runs a whole Gatehouse (journal writer, actors, projectors, web server on port 0) in its own actix system
/// for the duration of `f`, then stops it completely, as a process exit would: the next `with_app` on the same
/// site is a real restart.
pub fn with_app<T>(config: Config, f: impl AsyncFnOnce(&Application) -> T) -> T {
    let system = actix_web::rt::System::new();
    let (result, writer_thread) = system.block_on(async move {
        let app = Application::build(config).await.expect("the app starts");
        let result = f(&app).await;
        (result, app.stop())
    });
    drop(system);
    writer_thread.join();
    result
}

/// An HTTP response as tests look at it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client, enough to check status lines, headers and bodies without a client library.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the test server");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Response { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The admin API token `with_server` created for each running test server.
static TOKENS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<SocketAddr, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The API token of the test server at `addr`.
pub fn token_for(addr: SocketAddr) -> String {
    TOKENS
        .lock()
        .unwrap()
        .get(&addr)
        .cloned()
        .expect("a server started by with_server")
}

/// A GET as a signed-in admin (with the server's API token), as most page tests want.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let bearer = format!("Bearer {}", token_for(addr));
    let response = http(addr, "GET", path, &[("Authorization", &bearer)], "");
    (response.status, response.body)
}

/// For tests that count "today's" passages: waits out the last minute before local midnight in the test site's
/// zone, so events stamped "now" and the page that counts them fall on the same day.
pub fn clear_of_local_midnight() {
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    let midnight = now
        .date()
        .tomorrow()
        .unwrap()
        .to_zoned_datetime(now.time_zone().clone())
        .unwrap();
    let left = now.duration_until(&midnight);
    if left < jiff::SignedDuration::from_secs(60) {
        std::thread::sleep((left + jiff::SignedDuration::from_secs(1)).unsigned_abs());
    }
}

/// Waits until every follower has applied the journal head, so read tables answer for everything so far. A
/// policy may append while it follows (a fault opens a work order), so it waits again until the head holds still.
pub async fn settle(state: &gatehouse::web::AppState) {
    loop {
        let head = *state.committed.borrow();
        for projector in &state.projectors {
            assert!(
                projector.wait_for(head, std::time::Duration::from_secs(60)).await,
                "projector {} reached {head}",
                projector.name
            );
        }
        if *state.committed.borrow() == head {
            return;
        }
    }
}

/// Reads one integer from a database, for assertions.
pub fn query_i64(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The same for a database another process is still creating: `None` until the file and its tables exist.
pub fn try_query_i64(path: &Path, sql: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row(sql, [], |r| r.get(0)).ok()
}

/// Like [`with_app`], with the web server running; `f` gets its address.
pub fn with_server<T>(config: Config, f: impl AsyncFnOnce(&gatehouse::web::AppState, SocketAddr) -> T) -> T {
    let system = actix_web::rt::System::new();
    let journal = config.storage.dir.join(gatehouse::db::JOURNAL_FILE);
    let token = gatehouse::auth::create_token(
        &gatehouse::auth::open(&journal).unwrap(),
        "tests",
        gatehouse::auth::Role::Admin,
    )
    .unwrap();
    let (result, writer_thread) = system.block_on(async move {
        let app = Application::build(config).await.expect("the app starts");
        let addr = app.http_addr();
        TOKENS.lock().unwrap().insert(addr, token);
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = actix_web::rt::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let result = f(&state, addr).await;
        let _ = stop.send(());
        let writer_thread = server.await.expect("server task").expect("server ran");
        TOKENS.lock().unwrap().remove(&addr);
        drop(state);
        (result, writer_thread)
    });
    drop(system);
    writer_thread.join();
    result
}

/// [`http_get`] (as an admin) off the actix thread, so the app keeps running while the test waits for the answer.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || http_get(addr, &path))
        .await
        .unwrap()
}

/// Polls `check` every 20 ms for up to 20 s: long enough for a loaded 2-core machine, and it returns as soon
/// as the condition holds, so fast machines do not wait.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A free TCP port on the loopback interface, for a server the test starts later (a separate process or a
/// restart on the same port).
///
/// It comes from below the kernel's ephemeral range (32768–60999 here), never from `bind(0)`: a port handed out
/// by `bind(0)` and released can be handed out again at once to another test's `listen = "127.0.0.1:0"`, and
/// then one test's gateway publishes into another test's server. Ports below that range are never given to
/// `bind(0)`; a per-process counter keeps this process's tests apart, the process id keeps parallel test
/// processes apart, and a bind check skips ports something else holds.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(997);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = (FIRST + offset.wrapping_add(n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16) {
    // A debug build recovering its devices on a busy 2-core machine can take a while to bind.
    for _ in 0..3000 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("nothing listens on port {port}");
}

/// A real Mosquitto broker on a free port, with persistence so its sessions survive a restart. Killed on drop.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_with("")
    }

    /// A broker with more configuration (a bridge, for a gateway's own store-and-forward broker).
    pub fn start_with(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // max_queued_messages: Mosquitto's default (1000) drops QoS 1 messages for a disconnected persistent
        // session during a long outage; operators must raise it, and so do the tests. `user root`: started as root
        // (CI), Mosquitto would otherwise switch to its own user, which cannot write the temporary directory, and
        // lose every session on restart. Ignored when not started as root.
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             user root\n\
             max_queued_messages 1000000\nmax_inflight_messages 0\n{extra}",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Mosquitto { port, dir, child: None };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// Stops the broker gracefully (it saves its sessions) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Publishes `lines` (one payload each) to `topic` with QoS 1 through `mosquitto_pub -l`, as a gateway would.
pub fn mosquitto_pub_lines(port: u16, topic: &str, lines: &[String]) {
    use std::io::Write as _;
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub is installed (scripts/test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "mosquitto_pub failed");
}

/// Publishes a passage with a fresh `sentinel-` msg_id to `device` at the broker on `port` and waits until it is in
/// the journal. A broker delivers one subscription's messages in order, so once the sentinel is recorded so is
/// everything routed before it: what tests count next is final, with no sleep guessing how long redeliveries take.
/// Count with `causation NOT LIKE 'sentinel-%'` to leave the sentinels out.
pub fn sentinel_recorded(port: u16, journal: &Path, device: &str) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let msg_id = format!("sentinel-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    mosquitto_pub_lines(
        port,
        &format!("gatehouse/turnstile/{device}/passage"),
        &[format!(r#"{{"msg_id":"{msg_id}","direction":"in"}}"#)],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let recorded =
        format!("SELECT COUNT(*) FROM events WHERE causation = '{msg_id}' AND event_type = 'PassageRecorded'");
    while try_query_i64(journal, &recorded) != Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the sentinel {msg_id} was never recorded; dead letters: {:?}",
            dump(
                &rusqlite::Connection::open(journal).unwrap(),
                "SELECT reason FROM dead_letters ORDER BY id DESC LIMIT 3"
            )
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The `name=value` of the session cookie a sign-in set.
pub fn session_cookie(response: &Response) -> String {
    let set = response.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token a page's form carries.
pub fn csrf_in(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form with a CSRF token")
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// Submits the sign-in form as a browser does: fetches it first (its CSRF cookie and field), then posts `fields`
/// (`name=…&password=…&next=…`, urlencoded) with them.
pub fn post_login(addr: SocketAddr, fields: &str) -> Response {
    let form = http(addr, "GET", "/login", &[], "");
    let cookie = session_cookie(&form);
    assert!(cookie.starts_with("gatehouse_login="), "{cookie}");
    let body = format!("{fields}&csrf={}", csrf_in(&form.body));
    http(
        addr,
        "POST",
        "/login",
        &[
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
}

/// A browser session: its cookie and the CSRF token its forms carry.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    /// Creates user `name` with `role` in `journal` and signs in through the real form. Blocking: call it off
    /// the actix thread (`spawn_blocking`), which must stay free to wake the projectors.
    pub fn sign_in(journal: &Path, addr: SocketAddr, name: &str, role: gatehouse::auth::Role) -> Session {
        let conn = gatehouse::auth::open(journal).unwrap();
        gatehouse::auth::add_user(&conn, name, role, "long enough password").unwrap();
        let response = post_login(addr, &format!("name={name}&password=long+enough+password&next=%2F"));
        assert_eq!(response.status, 303, "sign-in of {name}: {}", response.body);
        let cookie = session_cookie(&response);
        let form = http(addr, "GET", "/logout", &[("Cookie", &cookie)], "");
        let csrf = csrf_in(&form.body);
        Session { cookie, csrf }
    }

    pub fn get(&self, addr: SocketAddr, path: &str) -> Response {
        http(addr, "GET", path, &[("Cookie", &self.cookie)], "")
    }

    /// Submits a form (urlencoded `fields`) with this session's cookie and CSRF token.
    pub fn post(&self, addr: SocketAddr, path: &str, fields: &str) -> Response {
        let body = if fields.is_empty() {
            format!("csrf={}", self.csrf)
        } else {
            format!("csrf={}&{fields}", self.csrf)
        };
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        http(addr, "POST", path, &headers, &body)
    }
}

/// Every row of `sql` as `a|b|c` text, for comparing whole tables.
pub fn dump(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    stmt.query_map([], |row| {
        let cell = |i| match row.get_ref(i).unwrap() {
            rusqlite::types::ValueRef::Null => "NULL".to_owned(),
            rusqlite::types::ValueRef::Integer(n) => n.to_string(),
            rusqlite::types::ValueRef::Real(x) => x.to_string(),
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                String::from_utf8_lossy(t).into()
            }
        };
        Ok((0..columns).map(cell).collect::<Vec<_>>().join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Another connection's write lock on a SQLite file (`BEGIN IMMEDIATE`), held until released: the journal writer
/// cannot commit meanwhile.
pub struct WriteLock {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl WriteLock {
    /// Takes the lock on a thread of its own and returns once it is held.
    pub async fn hold(path: &Path) -> WriteLock {
        let path = path.to_owned();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            conn.execute_batch("ROLLBACK").unwrap();
        });
        tokio::task::spawn_blocking(move || locked_rx.recv().unwrap())
            .await
            .unwrap();
        WriteLock { release, holder }
    }

    pub async fn release(self) {
        self.release.send(()).unwrap();
        tokio::task::spawn_blocking(move || self.holder.join().unwrap())
            .await
            .unwrap();
    }
}
