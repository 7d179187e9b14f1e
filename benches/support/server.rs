//! A release `gatehouse serve` for benchmarks: built from the code being measured, started in a directory of
//! its own, timed until healthy, queried with plain HTTP/1.1, stopped with SIGTERM.

use anyhow::{Context, anyhow, bail, ensure};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on waiting for the server to start (it recovers every device from the journal first).
const BOOT_DEADLINE: Duration = Duration::from_secs(600);

/// `target/`, where benchmarks keep their cached data (a bench runs as `target/release/deps/NAME-…`).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .context("the bench binary lives under target/<profile>/deps")
}

/// `cargo build --release --bin gatehouse`, so the server measured is the code being benchmarked.
pub fn build_server() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "gatehouse"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("cannot run cargo build")?;
    ensure!(
        status.success(),
        "cargo build --release --bin gatehouse failed: {status}"
    );
    let binary = target_dir()?.join("release").join("gatehouse");
    ensure!(binary.exists(), "{}: no such binary", binary.display());
    Ok(binary)
}

/// A release `gatehouse serve` in a directory of its own, started and timed until `/healthz` answers 200.
pub struct Server {
    child: Child,
    pub port: u16,
    /// From spawning the process to the first `200` from `/healthz`.
    pub boot: Duration,
    pub log: PathBuf,
}

impl Server {
    /// Writes `config(port)` to `root/config.toml` and starts the server there.
    pub fn start(binary: &Path, root: &Path, config: &dyn Fn(u16) -> String) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config_path = root.join("config.toml");
        std::fs::write(&config_path, config(port))?;
        let log = root.join("server.log");
        let out = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Server {
            child,
            port,
            boot: Duration::ZERO,
            log,
        };
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited during boot ({status}); its log: {}",
                    server.log.display()
                );
            }
            if started.elapsed() > BOOT_DEADLINE {
                bail!("the server did not answer /healthz within {BOOT_DEADLINE:?}");
            }
            if matches!(server.get("/healthz", ""), Ok((200, _))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server.boot = started.elapsed();
        Ok(server)
    }

    /// One plain HTTP/1.1 GET; the status and the body's length.
    pub fn get(&self, path: &str, token: &str) -> anyhow::Result<(u16, usize)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if !token.is_empty() {
            let _ = write!(request, "Authorization: Bearer {token}\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("GET {path}: no complete response"))?;
        let head = String::from_utf8_lossy(&raw[..head_end]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("GET {path}: no status line"))?;
        Ok((status, raw.len() - head_end - 4))
    }

    pub fn peak_rss(&self) -> String {
        super::peak_rss_of(&self.child.id().to_string())
    }

    /// SIGTERM (actix-web stops gracefully), then waits; killed if it takes over 30 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the server did not stop within 30 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
