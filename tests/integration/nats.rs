//! A real three-node NATS JetStream cluster on loopback (Debian's `nats-server`), with nodes that tests kill and
//! restart, and a reader of what the stream holds.

use crate::helpers::*;
use async_nats::jetstream;
use futures_util::StreamExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsNode {
    pub name: String,
    pub port: u16,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server is installed (scripts/test installs it)");
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// Three nodes, one cluster, JetStream on each; killed on drop.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    pub fn start() -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, c))| format!("nats-route://127.0.0.1:{c}"))
                .collect();
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
                     jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n\
                     cluster {{\n  name: gatehouse-test\n  listen: 127.0.0.1:{cluster_port}\n  routes: [{}]\n}}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            let mut node = NatsNode {
                log: dir.path().join(format!("{name}.log")),
                name,
                port: *port,
                config,
                child: None,
            };
            node.spawn();
            nodes.push(node);
        }
        for node in &nodes {
            wait_for_port(node.port);
        }
        let cluster = NatsCluster { nodes, dir };
        cluster.wait_until_jetstream_answers();
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsNode::url).collect()
    }

    /// `nats = [...]` for a config file.
    pub fn toml_servers(&self) -> String {
        let quoted: Vec<String> = self.urls().iter().map(|u| format!("\"{u}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }

    pub fn kill(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn restart(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("a node of this cluster");
        assert!(node.child.is_none(), "{name} still runs");
        node.spawn();
        wait_for_port(node.port);
    }

    /// A client connected to whichever nodes run.
    pub async fn client(&self) -> async_nats::Client {
        let servers: Vec<async_nats::ServerAddr> = self.urls().iter().map(|u| u.parse().unwrap()).collect();
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .unwrap()
    }

    /// The meta leader is elected a moment after the nodes start: until then JetStream requests fail.
    fn wait_until_jetstream_answers(&self) {
        block_on(async {
            let js = jetstream::new(self.client().await);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                // "stream not found" is an answer from the meta leader: JetStream is up.
                match js.get_stream("GATEHOUSE_READINESS_PROBE").await {
                    Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(_)) => return,
                    Ok(_) => return,
                    Err(e) => assert!(
                        Instant::now() < deadline,
                        "JetStream never answered ({e}): {}",
                        self.logs()
                    ),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    /// The node that leads `stream` now.
    pub fn stream_leader(&self, stream: &str) -> String {
        block_on(async {
            let js = jetstream::new(self.client().await);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(mut s) = js.get_stream(stream).await
                    && let Ok(info) = s.info().await
                    && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
                {
                    return leader;
                }
                assert!(Instant::now() < deadline, "stream {stream} has no leader");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    /// Every document `subject` holds in `stream`, in stream order (waits until `until` says it is all there).
    pub fn documents(
        &self,
        stream: &str,
        subject: &str,
        until: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        block_on(async {
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let documents = read_subject(&self.client().await, stream, subject).await;
                if until(&documents) {
                    return documents;
                }
                assert!(
                    Instant::now() < deadline,
                    "the stream never held what was expected: {} documents on {subject}, last {:?}",
                    documents.len(),
                    documents.last()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    pub fn logs(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            text.push_str(&format!("\n--- {} ---\n", node.name));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = &self.dir;
    }
}

/// Reads every message of `subject` with an ordered consumer of its own, as a consumer downstream would.
async fn read_subject(client: &async_nats::Client, stream: &str, subject: &str) -> Vec<serde_json::Value> {
    let js = jetstream::new(client.clone());
    let Ok(stream) = js.get_stream(stream).await else {
        return Vec::new();
    };
    let Ok(consumer) = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
    else {
        return Vec::new();
    };
    let Ok(mut messages) = consumer.messages().await else {
        return Vec::new();
    };
    let mut documents = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
            Ok(Some(Ok(message))) => {
                let pending = message.info().map(|i| i.pending).unwrap_or(1);
                documents.push(serde_json::from_slice(&message.payload).unwrap());
                if pending == 0 {
                    return documents;
                }
            }
            Ok(Some(Err(_))) | Ok(None) | Err(_) => return documents,
        }
    }
}

/// Runs a future to completion on a runtime of its own (the tests are synchronous).
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The positions of the events (not the heartbeats) among `documents`, in stream order.
pub fn event_positions(documents: &[serde_json::Value]) -> Vec<u64> {
    documents
        .iter()
        .filter(|d| d["type"] != "gatehouse.site.heartbeat.v1")
        .map(|d| d["gatehouseposition"].as_u64().unwrap())
        .collect()
}
