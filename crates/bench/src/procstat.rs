//! What a process costs, from `/proc`: CPU seconds, resident memory and its peak, the CPUs
//! it may run on, and (for natterd) the durability mode from its environment.

use std::fs;

/// Linux reports utime/stime in USER_HZ ticks, 100 per second on every mainstream arch.
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of `pid` in seconds (`None` when the process is gone or unreadable).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields are counted after the closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are at 11 and 12 after "(comm) ".
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

fn status_field(pid: u32, key: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim().to_string())
}

fn kb(pid: u32, key: &str) -> Option<u64> {
    status_field(pid, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Current resident set, KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    kb(pid, "VmRSS")
}

/// Peak resident set since start or since [`reset_peak`], KiB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    kb(pid, "VmHWM")
}

/// Resets VmHWM to the current RSS (needs permission to write the process's clear_refs),
/// so a peak can be measured per workload without restarting the server.
pub fn reset_peak(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The CPUs the process may run on, e.g. `1` when pinned with `taskset -c 1`.
pub fn cpus_allowed(pid: u32) -> String {
    status_field(pid, "Cpus_allowed_list").unwrap_or_else(|| "?".into())
}

/// A `NAME=value` from the process's environment.
pub fn env_var(pid: u32, name: &str) -> Option<String> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        kv.strip_prefix(name)?.strip_prefix('=').map(str::to_string)
    })
}

/// A window over which a server's and the driver's CPU use is measured.
#[derive(Debug, Clone)]
pub struct Window {
    server: Option<u32>,
    server_cpu0: f64,
    driver_cpu0: f64,
    started: std::time::Instant,
}

#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub secs: f64,
    pub server_cpu_s: f64,
    pub server_peak_rss_kb: u64,
    pub server_rss_kb: u64,
    pub driver_cpu_s: f64,
}

impl Window {
    /// Starts measuring; also resets the server's peak RSS.
    pub fn start(server: Option<u32>) -> Window {
        if let Some(pid) = server {
            reset_peak(pid);
        }
        Window {
            server,
            server_cpu0: server.and_then(cpu_secs).unwrap_or(0.0),
            driver_cpu0: cpu_secs(std::process::id()).unwrap_or(0.0),
            started: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) -> Usage {
        let secs = self.started.elapsed().as_secs_f64();
        let driver_cpu_s = cpu_secs(std::process::id()).unwrap_or(0.0) - self.driver_cpu0;
        let Some(pid) = self.server else {
            return Usage {
                secs,
                driver_cpu_s,
                ..Usage::default()
            };
        };
        Usage {
            secs,
            server_cpu_s: cpu_secs(pid).unwrap_or(0.0) - self.server_cpu0,
            server_peak_rss_kb: peak_rss_kb(pid).unwrap_or(0),
            server_rss_kb: rss_kb(pid).unwrap_or(0),
            driver_cpu_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(cpu_secs(me).is_some());
        assert!(rss_kb(me).unwrap() > 0);
        assert!(peak_rss_kb(me).unwrap() >= rss_kb(me).unwrap() / 2);
        assert!(!cpus_allowed(me).is_empty());
    }
}
