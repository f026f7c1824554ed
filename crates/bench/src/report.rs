//! One run's results: printed for a person, appended as a JSON line for the script, and
//! rendered from those lines into the tables of docs/BENCHMARKS.md.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::procstat::Usage;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The system under test, e.g. `natter`, `inspircd`, `inspircd+nodelay`.
    pub label: String,
    /// Workload name and variant, e.g. `1a fanout closed`.
    pub workload: String,
    pub params: String,
    /// The driver's command line.
    pub command: String,
    pub persistence: String,
    pub server_cpus: String,
    pub driver_cpus: String,
    /// Length of the measured window, seconds.
    pub secs: f64,
    pub sent: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub server_cpu_s: f64,
    pub deliveries_per_server_cpu_s: Option<f64>,
    pub server_peak_rss_kb: u64,
    pub server_rss_kb: u64,
    pub driver_cpu_s: f64,
    pub driver_cpu_pct: f64,
    /// Which side saturated its core: `server`, `driver`, `both` or `neither`.
    pub bound: String,
    /// Workload-specific figures (connects per second, KiB per connection, ...).
    pub extra: BTreeMap<String, f64>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn set_usage(&mut self, u: &Usage) {
        self.secs = u.secs;
        self.server_cpu_s = u.server_cpu_s;
        self.server_peak_rss_kb = u.server_peak_rss_kb;
        self.server_rss_kb = u.server_rss_kb;
        self.driver_cpu_s = u.driver_cpu_s;
        self.driver_cpu_pct = if u.secs > 0.0 {
            100.0 * u.driver_cpu_s / u.secs
        } else {
            0.0
        };
        let server_pct = if u.secs > 0.0 {
            100.0 * u.server_cpu_s / u.secs
        } else {
            0.0
        };
        self.extra
            .insert("server_cpu_pct".into(), round(server_pct, 1));
        self.bound = match (server_pct >= 85.0, self.driver_cpu_pct >= 85.0) {
            (true, true) => "both",
            (true, false) => "server",
            (false, true) => "driver",
            (false, false) => "neither",
        }
        .into();
    }

    pub fn set_deliveries(&mut self, deliveries: u64) {
        self.deliveries = deliveries;
        if self.secs > 0.0 {
            self.deliveries_per_sec = deliveries as f64 / self.secs;
        }
        if self.server_cpu_s > 0.0 {
            self.deliveries_per_server_cpu_s = Some(deliveries as f64 / self.server_cpu_s);
        }
    }

    /// Latency figures from a histogram in microseconds.
    pub fn set_latency(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let ms = |us: u64| round(us as f64 / 1000.0, 3);
        self.p50_ms = Some(ms(h.value_at_quantile(0.50)));
        self.p99_ms = Some(ms(h.value_at_quantile(0.99)));
        self.p999_ms = Some(ms(h.value_at_quantile(0.999)));
        self.max_ms = Some(ms(h.max()));
        self.extra.insert("latency_samples".into(), h.len() as f64);
    }

    pub fn print(&self) {
        println!("== {} | {} | {}", self.label, self.workload, self.params);
        println!(
            "   persistence: {} | server cpus {} | driver cpus {}",
            self.persistence, self.server_cpus, self.driver_cpus
        );
        println!(
            "   window {:.1}s  sent {}  deliveries {} ({:.0}/s)",
            self.secs, self.sent, self.deliveries, self.deliveries_per_sec
        );
        if let (Some(p50), Some(p99), Some(p999), Some(max)) =
            (self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms)
        {
            println!("   latency ms: p50 {p50}  p99 {p99}  p99.9 {p999}  max {max}");
        }
        println!(
            "   server: {:.2} CPU-s ({:.0}%), peak RSS {} KiB, RSS {} KiB; deliveries/CPU-s {}",
            self.server_cpu_s,
            self.extra.get("server_cpu_pct").copied().unwrap_or(0.0),
            self.server_peak_rss_kb,
            self.server_rss_kb,
            self.deliveries_per_server_cpu_s
                .map_or("-".into(), |v| format!("{v:.0}"))
        );
        println!(
            "   driver: {:.2} CPU-s ({:.0}%); bound: {}",
            self.driver_cpu_s, self.driver_cpu_pct, self.bound
        );
        for (k, v) in &self.extra {
            if k != "server_cpu_pct" {
                println!("   {k}: {v}");
            }
        }
        for n in &self.notes {
            println!("   note: {n}");
        }
    }
}

pub fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), fmt_num)
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{:.0}", v)
    } else if v >= 1.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    }
}

/// A workload's name, in the order people read the numbers in it: the ladder's
/// "@ 2000 msg/s" comes before its "@ 10000 msg/s".
#[derive(Debug, PartialEq, Eq)]
struct Workload(String);

impl Ord for Workload {
    fn cmp(&self, other: &Self) -> Ordering {
        natural_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for Workload {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compares runs of digits by their value and everything else character by character.
/// Equal only for equal strings ("01" and "1" differ), so it agrees with `Eq`.
fn natural_cmp(mut a: &str, mut b: &str) -> Ordering {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, db) = (digits(a), digits(b));
                let (na, nb) = (
                    a[..da].trim_start_matches('0'),
                    b[..db].trim_start_matches('0'),
                );
                let order = na
                    .len()
                    .cmp(&nb.len())
                    .then_with(|| na.cmp(nb))
                    .then_with(|| da.cmp(&db));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

/// Renders JSON lines into markdown: one table per workload, one row per system.
pub fn markdown(lines: &str) -> anyhow::Result<String> {
    let mut by_workload: BTreeMap<Workload, Vec<Report>> = BTreeMap::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let r: Report = serde_json::from_str(line)?;
        by_workload
            .entry(Workload(r.workload.clone()))
            .or_default()
            .push(r);
    }
    let mut out = String::new();
    out.push_str(&targets(&by_workload));
    for (workload, runs) in &by_workload {
        let _ = writeln!(out, "\n#### {workload}\n");
        let params = runs[0]
            .params
            .split_once(' ')
            .filter(|(first, _)| first.starts_with("proto="))
            .map_or(runs[0].params.as_str(), |(_, rest)| rest);
        let _ = writeln!(out, "Parameters: `{params}`\n");
        let _ = writeln!(
            out,
            "| system | persistence | deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU-s | deliveries per server CPU-s | server peak RSS MiB | driver CPU % | bound |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for r in runs {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {:.2} | {} | {:.1} | {:.0} | {} |",
                r.label,
                r.persistence,
                r.deliveries_per_sec,
                opt(r.p50_ms),
                opt(r.p99_ms),
                opt(r.p999_ms),
                r.server_cpu_s,
                opt(r.deliveries_per_server_cpu_s),
                r.server_peak_rss_kb as f64 / 1024.0,
                r.driver_cpu_pct,
                r.bound
            );
        }
        let keys: std::collections::BTreeSet<&String> = runs
            .iter()
            .flat_map(|r| r.extra.keys())
            .filter(|k| k.as_str() != "server_cpu_pct" && k.as_str() != "latency_samples")
            .collect();
        if !keys.is_empty() {
            let _ = writeln!(out);
            let _ = write!(out, "| system |");
            for k in &keys {
                let _ = write!(out, " {k} |");
            }
            let _ = writeln!(out);
            let _ = write!(out, "|---|");
            for _ in &keys {
                let _ = write!(out, "---|");
            }
            let _ = writeln!(out);
            for r in runs {
                let _ = write!(out, "| {} |", r.label);
                for k in &keys {
                    let _ = write!(out, " {} |", opt(r.extra.get(*k).copied()));
                }
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(
            out,
            "\nCPUs: server `{}`, driver `{}`. Commands:\n",
            runs[0].server_cpus, runs[0].driver_cpus
        );
        for r in runs {
            let _ = writeln!(out, "- {}: `{}`", r.label, r.command);
            for n in &r.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
    }
    Ok(out)
}

/// The median of what `of` gives for `runs` (the mean of the middle two for an even
/// count), over the runs that have a value.
fn median(runs: &[&Report], of: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| of(r)).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Natter against InspIRCd with TCP_NODELAY (the reference), as ratios. Where a
/// workload ran more than once (scripts/bench-peers.sh repeats the noisiest ones in
/// alternating rounds), the ratio is of the two medians.
fn targets(by_workload: &BTreeMap<Workload, Vec<Report>>) -> String {
    let mut rows = String::new();
    for (workload, runs) in by_workload {
        let all =
            |label: &str| -> Vec<&Report> { runs.iter().filter(|r| r.label == label).collect() };
        let (n, i) = (all("natter"), all("inspircd+nodelay"));
        if n.is_empty() || i.is_empty() {
            continue;
        }
        let ratio = |of: &dyn Fn(&Report) -> Option<f64>| match (median(&n, of), median(&i, of)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let per_cpu = ratio(&|r| r.deliveries_per_server_cpu_s);
        let p99 = ratio(&|r| r.p99_ms);
        let mem = ratio(&|r| r.extra.get("kib_per_idle_conn").copied());
        let _ = writeln!(
            rows,
            "| {workload} | {per_cpu} | {p99} | {mem} | {} + {} |",
            n.len(),
            i.len()
        );
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\n#### Natter relative to InspIRCd with TCP_NODELAY\n\n\
         Targets from issue 7: deliveries per server CPU-second at least 0.5x (aim 1x); p99 at \
         fixed rates at most 2x; memory per idle connection at most 2x. Where a workload ran \
         more than once (`runs`: Natter + InspIRCd), each figure is the ratio of the two \
         medians; every run is listed in the workload's table below.\n\n\
         | workload | deliveries per server CPU-s | p99 latency | memory per idle connection | runs |\n\
         |---|---|---|---|---|\n{rows}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_in_the_order_of_the_numbers_in_their_names() {
        let mut names = [
            "2 ladder @ 10000 msg/s",
            "2 closed",
            "2 ladder @ 2000 msg/s",
            "10 idle",
            "2 ladder @ 1000 msg/s",
            "1b",
            "2 ladder @ 05000 msg/s",
            "1a",
        ]
        .map(|n| Workload(n.into()));
        names.sort();
        let names = names.map(|n| n.0);
        assert_eq!(
            names,
            [
                "1a",
                "1b",
                "2 closed",
                "2 ladder @ 1000 msg/s",
                "2 ladder @ 2000 msg/s",
                "2 ladder @ 05000 msg/s",
                "2 ladder @ 10000 msg/s",
                "10 idle",
            ]
        );
        assert_eq!(
            natural_cmp("01", "1"),
            Ordering::Greater,
            "only equal strings are equal"
        );
        assert_eq!(natural_cmp("x9", "x9"), Ordering::Equal);
    }

    #[test]
    fn renders_one_table_per_workload() {
        let mut a = Report {
            label: "natter".into(),
            workload: "1a".into(),
            params: "members=100".into(),
            command: "natter-bench fanout".into(),
            persistence: "sqlite synchronous=FULL".into(),
            ..Report::default()
        };
        a.set_usage(&Usage {
            secs: 10.0,
            server_cpu_s: 5.0,
            driver_cpu_s: 9.5,
            ..Usage::default()
        });
        a.set_deliveries(1000);
        let mut b = a.clone();
        b.label = "inspircd".into();
        let text = [a, b]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let md = markdown(&text).unwrap();
        assert_eq!(md.matches("#### 1a").count(), 1);
        assert!(
            md.contains("| natter | sqlite synchronous=FULL | 100 |"),
            "{md}"
        );
        assert!(md.contains("| 200 |"), "{md}");
        assert!(md.contains("| driver |"), "{md}");
    }

    #[test]
    fn ratios_to_inspircd_are_of_medians_over_repeated_runs() {
        let run = |label: &str, per_cpu: f64, p99: f64| Report {
            label: label.into(),
            workload: "2 closed".into(),
            deliveries_per_server_cpu_s: Some(per_cpu),
            p99_ms: Some(p99),
            ..Report::default()
        };
        let runs = [
            run("natter", 300.0, 9.0),
            run("inspircd+nodelay", 1000.0, 2.0),
            run("natter", 500.0, 3.0),
            run("inspircd+nodelay", 800.0, 4.0),
            run("natter", 450.0, 100.0),
            run("inspircd+nodelay", 600.0, 3.0),
            run("ngircd+nodelay", 1.0, 1.0),
        ];
        let text = runs
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let md = markdown(&text).unwrap();
        // Medians: natter 450 and 9 ms, InspIRCd 800 and 3 ms.
        assert!(
            md.contains("| 2 closed | 0.56x | 3.00x | - | 3 + 3 |"),
            "{md}"
        );
        assert_eq!(median(&[], |r| r.p99_ms), None);
        let two = [run("a", 1.0, 1.0), run("a", 2.0, 4.0)];
        assert_eq!(
            median(&two.iter().collect::<Vec<_>>(), |r| r.p99_ms),
            Some(2.5)
        );
    }
}
