//! Helpers every benchmark shares: reading sizes from the environment, peak memory, and number formatting for
//! the printed tables. Included by each bench with `mod support;`.
#![allow(dead_code)] // each bench uses the helpers it needs

pub mod server;

use anyhow::Context;
use std::time::Duration;

pub fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={text:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// The process's high-water resident set, as the kernel counts it.
pub fn peak_rss() -> String {
    peak_rss_of("self")
}

/// The same for process `pid` (a number, or `self`).
pub fn peak_rss_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// 1234567.8 → "1,234,568"
pub fn rate(per_second: f64) -> String {
    let digits = format!("{:.0}", per_second);
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
