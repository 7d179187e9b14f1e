//! Archive files and their manifest: one gzip-compressed JSON-lines file per month of events (by when they were
//! recorded, UTC), and `manifest.jsonl` with one line per file: its positions, event count, SHA-256, and the
//! SHA-256 of the file before it, so a changed, missing or reordered file is found by [`verify`].

use anyhow::{Context, anyhow};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.jsonl";

/// One archive file as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub file: String,
    pub first_position: u64,
    pub last_position: u64,
    pub events: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// The SHA-256 of the file listed before this one ("" for the first).
    pub previous: String,
    pub created_at: String,
}

/// Cuts a torn last line (a write the power cut short) off the manifest, so the next entry starts on a line of
/// its own. The archive file it was about is written again by the next run.
pub fn repair_manifest(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(MANIFEST);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(());
    };
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(());
    }
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(manifest = %path.display(), "cutting off a torn last line of the archive manifest");
    let file = OpenOptions::new().write(true).open(&path)?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    Ok(())
}

/// The manifest's entries in order; none when there is no manifest yet.
pub fn entries(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = dir.join(MANIFEST);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot open", path.display())),
    };
    BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, line)| !matches!(line, Ok(l) if l.trim().is_empty()))
        .map(|(n, line)| {
            let line = line.with_context(|| format!("{}: cannot read", path.display()))?;
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not a manifest entry", path.display(), n + 1))
        })
        .collect()
}

/// Writes one month's events (JSON lines, in position order) as a new archive file and lists it in the
/// manifest, each made durable before the next step: the journal's rows go only after this returned.
pub struct MonthWriter {
    dir: PathBuf,
    month: String,
    part: PathBuf,
    /// Buffered in front of the compressor: flate2 readies (zeroes) its whole output buffer on every write, so a
    /// JSON line written in small pieces cost more in memset than in compression.
    encoder: std::io::BufWriter<GzEncoder<HashingWriter<File>>>,
    first: u64,
    last: u64,
    events: u64,
}

impl MonthWriter {
    pub fn create(dir: &Path, month: &str, first: u64) -> anyhow::Result<MonthWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the archive directory", dir.display()))?;
        let part = dir.join(format!("events-{month}-{first:012}.jsonl.gz.part"));
        let file = File::create(&part).with_context(|| format!("{}: cannot create", part.display()))?;
        Ok(MonthWriter {
            dir: dir.to_owned(),
            month: month.to_owned(),
            part,
            encoder: std::io::BufWriter::with_capacity(
                256 * 1024,
                GzEncoder::new(HashingWriter::new(file), Compression::default()),
            ),
            first,
            last: first,
            events: 0,
        })
    }

    pub fn month(&self) -> &str {
        &self.month
    }

    pub fn write(&mut self, position: u64, line: &serde_json::Value) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.encoder, line)?;
        self.encoder.write_all(b"\n")?;
        self.last = position;
        self.events += 1;
        Ok(())
    }

    /// Closes the file durably under its final name and appends it to the manifest.
    pub fn finish(self, previous: &str) -> anyhow::Result<Entry> {
        let hashing = self
            .encoder
            .into_inner()
            .map_err(|e| anyhow!("cannot write {}: {}", self.part.display(), e.error()))?
            .finish()?;
        let (file, sha256) = hashing.finish();
        file.sync_all()?;
        drop(file);
        let name = format!("events-{}-{:012}-{:012}.jsonl.gz", self.month, self.first, self.last);
        let path = self.dir.join(&name);
        std::fs::rename(&self.part, &path).with_context(|| format!("{}: cannot rename", path.display()))?;
        let entry = Entry {
            file: name,
            first_position: self.first,
            last_position: self.last,
            events: self.events,
            sha256,
            previous: previous.to_owned(),
            created_at: jiff::Timestamp::now().to_string(),
        };
        let manifest = self.dir.join(MANIFEST);
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&manifest)
            .with_context(|| format!("{}: cannot open", manifest.display()))?;
        // One write of the whole line: a process killed around it leaves the line whole or absent (a torn line
        // from a power cut is cut off by `repair_manifest`).
        out.write_all(format!("{}\n", serde_json::to_string(&entry)?).as_bytes())?;
        out.sync_all()?;
        sync_dir(&self.dir);
        Ok(entry)
    }
}

/// Makes a rename in `dir` durable (best effort: not every file system lets a directory be opened).
fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Counts the SHA-256 of everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (W, String) {
        (self.inner, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of a file's bytes.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    pub files: usize,
    pub events: u64,
    /// Each problem in words, naming the file.
    pub problems: Vec<String>,
}

/// Checks every file the manifest lists: present, the SHA-256 it was written with, chained to the one before,
/// and holding the events the manifest says, in position order. Also names archive files the manifest does not
/// list.
pub fn verify(dir: &Path) -> anyhow::Result<Verified> {
    let entries = entries(dir)?;
    let mut verified = Verified::default();
    let mut previous = String::new();
    let mut last_position = 0;
    for entry in &entries {
        verified.files += 1;
        let path = dir.join(&entry.file);
        if entry.previous != previous {
            verified.problems.push(format!(
                "{}: the manifest chain is broken (it names {:?} as the file before it, which has {:?})",
                entry.file, entry.previous, previous
            ));
        }
        previous = entry.sha256.clone();
        if entry.first_position <= last_position {
            verified
                .problems
                .push(format!("{}: positions overlap the file before it", entry.file));
        }
        last_position = entry.last_position;
        if !path.exists() {
            verified.problems.push(format!("{}: missing", entry.file));
            continue;
        }
        let actual = sha256_of(&path)?;
        if actual != entry.sha256 {
            verified.problems.push(format!(
                "{}: its SHA-256 is {actual}, the manifest says {} (changed since it was written)",
                entry.file, entry.sha256
            ));
            continue;
        }
        match read_positions(&path) {
            Ok(positions) => {
                verified.events += positions.len() as u64;
                let in_order = positions.windows(2).all(|w| w[0] < w[1]);
                if positions.len() as u64 != entry.events
                    || positions.first() != Some(&entry.first_position)
                    || positions.last() != Some(&entry.last_position)
                    || !in_order
                {
                    verified.problems.push(format!(
                        "{}: holds {} events from {:?} to {:?}, the manifest says {} from {} to {}",
                        entry.file,
                        positions.len(),
                        positions.first(),
                        positions.last(),
                        entry.events,
                        entry.first_position,
                        entry.last_position
                    ));
                }
            }
            Err(error) => verified.problems.push(format!("{}: {error:#}", entry.file)),
        }
    }
    if let Ok(listing) = std::fs::read_dir(dir) {
        for file in listing.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl.gz") && !entries.iter().any(|e| e.file == name) {
                verified
                    .problems
                    .push(format!("{name}: an archive file the manifest does not list"));
            }
        }
    }
    Ok(verified)
}

/// Calls `each` with every event line of an archive file, decompressed, as JSON, one at a time (a month of a
/// busy site does not fit in memory as JSON values).
pub fn for_each_line(path: &Path, mut each: impl FnMut(serde_json::Value) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    for (n, line) in BufReader::new(GzDecoder::new(file)).lines().enumerate() {
        let line = line.map_err(|e| anyhow!("line {}: cannot decompress: {e}", n + 1))?;
        each(serde_json::from_str(&line).map_err(|e| anyhow!("line {}: not JSON: {e}", n + 1))?)?;
    }
    Ok(())
}

/// Every event line of an archive file (small files: tests, tools).
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut lines = Vec::new();
    for_each_line(path, |line| {
        lines.push(line);
        Ok(())
    })?;
    Ok(lines)
}

/// The positions an archive file holds, in file order.
fn read_positions(path: &Path) -> anyhow::Result<Vec<u64>> {
    let mut positions = Vec::new();
    for_each_line(path, |line| {
        let position = line["position"]
            .as_u64()
            .ok_or_else(|| anyhow!("line {}: no position", positions.len() + 1))?;
        positions.push(position);
        Ok(())
    })?;
    Ok(positions)
}
