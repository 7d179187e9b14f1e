//! Real receivers for notifications: an HTTP server that checks every webhook's Standard Webhooks signature (its
//! own HMAC code, not Gatehouse's) and answers what the test tells it (200, 500, 410, or hangs up), and a real
//! SMTP server (`aiosmtpd` from PyPI, which scripts/test installs) writing each mail to a maildir.

use crate::helpers::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The secret the test channels are configured with, and its key.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the webhook receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Status(u16),
    /// Closes the connection without an answer (a receiver that is down).
    HangUp,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub timestamp: i64,
    pub signature_valid: bool,
    pub body: serde_json::Value,
    pub answered: Answer,
}

pub struct WebhookReceiver {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    hooks: Arc<Mutex<Vec<Hook>>>,
    stop: Arc<AtomicBool>,
}

impl WebhookReceiver {
    pub fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = WebhookReceiver {
            addr,
            answer: Arc::new(Mutex::new(Answer::Status(200))),
            hooks: Default::default(),
            stop: Default::default(),
        };
        let (answer, hooks, stop) = (receiver.answer.clone(), receiver.hooks.clone(), receiver.stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (answer, hooks) = (answer.clone(), hooks.clone());
                std::thread::spawn(move || serve(stream, answer, hooks));
            }
        });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/gatehouse", self.addr)
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// The hooks it answered with 2xx.
    pub fn delivered(&self) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| matches!(h.answered, Answer::Status(200..=299)))
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, answer: Arc<Mutex<Answer>>, hooks: Arc<Mutex<Vec<Hook>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = std::collections::HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8(body).unwrap();
        let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        let answered = *answer.lock().unwrap();
        hooks.lock().unwrap().push(Hook {
            signature_valid: verify(&id, &timestamp, &body, &header("webhook-signature")),
            timestamp: timestamp.parse().unwrap_or(0),
            id,
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
            answered,
        });
        let mut stream = reader.get_ref();
        match answered {
            Answer::HangUp => return,
            Answer::Status(status) => {
                let response = format!("HTTP/1.1 {status} Test\r\ncontent-length: 0\r\n\r\n");
                if stream.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// The Standard Webhooks check: any `v1,` signature in the header that is the HMAC of `id.timestamp.body`.
fn verify(id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .any(|s| s.strip_prefix("v1,").is_some_and(|sig| sig == expected))
}

/// `aiosmtpd` on a free port, keeping every mail it gets in a maildir. Killed on drop.
pub struct SmtpReceiver {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: std::process::Child,
}

/// How an [`SmtpReceiver`] speaks: in the clear, offering STARTTLS, or TLS from the first byte (SMTPS), with the
/// certificate and key files given.
pub enum SmtpTls<'a> {
    None,
    StartTls { cert: &'a Path, key: &'a Path },
    Implicit { cert: &'a Path, key: &'a Path },
}

/// A test CA and a certificate it signed for `localhost` and 127.0.0.1, in `dir`: (CA certificate, server
/// certificate, server key). A client told to trust the CA verifies the server as it would a real one (webpki
/// refuses a self-signed CA certificate used as the server's own).
pub fn test_ca_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let file = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed (scripts/test installs it)");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=Gatehouse test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        file("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    (file("ca.crt"), file("server.crt"), file("server.key"))
}

impl SmtpReceiver {
    pub fn start() -> SmtpReceiver {
        SmtpReceiver::start_with(SmtpTls::None)
    }

    pub fn start_with(tls: SmtpTls) -> SmtpReceiver {
        let maildir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new("python3");
        command.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        match tls {
            SmtpTls::None => {}
            SmtpTls::StartTls { cert, key } => {
                command.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
            }
            SmtpTls::Implicit { cert, key } => {
                command.arg("--smtpscert").arg(cert).arg("--smtpskey").arg(key);
            }
        }
        let child = command
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is installed (scripts/test installs aiosmtpd)");
        wait_for_port(port);
        SmtpReceiver { port, maildir, child }
    }

    /// Every mail received so far, as raw text.
    pub fn mails(&self) -> Vec<String> {
        let mut mails = Vec::new();
        for dir in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail").join(dir)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            mails.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
        }
        mails
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
