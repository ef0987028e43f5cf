//! Who used the machine's CPU during a phase of a benchmark: every process's user + system
//! time from /proc, summed by role (Glance, Keystone, PostgreSQL, the apiserver, etcd, glint,
//! the benchmark itself). On a 2-core machine that runs all of them, a ratio against a baseline
//! that ran alone is bounded by this split, so the benchmark prints it beside the ratio.

use std::collections::BTreeMap;
use std::time::Instant;

/// Cumulative CPU seconds per role at one moment.
pub struct CpuSnapshot {
    taken: Instant,
    seconds: BTreeMap<&'static str, f64>,
}

/// CPU seconds per role between two snapshots, and the wall time between them.
pub struct CpuShare {
    pub wall: f64,
    pub seconds: BTreeMap<&'static str, f64>,
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The role of one process, from its name and command line.
fn role(pid: u32, comm: &str, cmdline: &str, glint: Option<u32>) -> &'static str {
    if Some(pid) == glint {
        "glint"
    } else if pid == std::process::id() {
        "benchmark"
    } else if comm == "uwsgi" && cmdline.contains("/glance-") {
        "Glance"
    } else if comm == "uwsgi" && cmdline.contains("/keystone/") {
        "Keystone"
    } else if comm.starts_with("postgres") {
        "PostgreSQL"
    } else if comm == "kube-apiserver" {
        "kube-apiserver"
    } else if comm == "etcd" {
        "etcd"
    } else {
        "other"
    }
}

impl CpuSnapshot {
    /// Reads every process's CPU time now; `glint` names glint's process, when one runs.
    pub fn take(glint: Option<u32>) -> Self {
        let per_tick = 1.0 / ticks_per_second();
        let mut seconds = BTreeMap::new();
        let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        for entry in entries {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The name sits in parentheses and may hold spaces; the fields after it are plain.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = &stat[open + 1..close];
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
            let ticks: u64 = [11, 12]
                .iter()
                .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
                .sum();
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
                .unwrap_or_default();
            *seconds.entry(role(pid, comm, &cmdline, glint)).or_default() +=
                ticks as f64 * per_tick;
            // Children this process has waited for (the baseline's curl pipeline) have left
            // /proc; their time is kept in its cutime and cstime.
            if pid == std::process::id() {
                let children: u64 = [13, 14]
                    .iter()
                    .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
                    .sum();
                *seconds.entry("other").or_default() += children as f64 * per_tick;
            }
        }
        Self {
            taken: Instant::now(),
            seconds,
        }
    }

    /// What each role used since `earlier`.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuShare {
        let seconds = self
            .seconds
            .iter()
            .map(|(role, now)| {
                let before = earlier.seconds.get(role).copied().unwrap_or(0.0);
                (*role, (now - before).max(0.0))
            })
            .collect();
        CpuShare {
            wall: self.taken.duration_since(earlier.taken).as_secs_f64(),
            seconds,
        }
    }
}

impl CpuShare {
    pub fn of(&self, role: &str) -> f64 {
        self.seconds.get(role).copied().unwrap_or(0.0)
    }

    pub fn total(&self) -> f64 {
        self.seconds.values().sum()
    }

    /// Cores in use on average, by role, largest first: "Glance 1.02, kube-apiserver 0.58, ...".
    pub fn cores(&self) -> String {
        let mut roles: Vec<(&str, f64)> = self
            .seconds
            .iter()
            .map(|(role, seconds)| (*role, seconds / self.wall.max(1e-9)))
            .filter(|(_, cores)| *cores >= 0.005)
            .collect();
        roles.sort_by(|a, b| b.1.total_cmp(&a.1));
        roles
            .iter()
            .map(|(role, cores)| format!("{role} {cores:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// CPU milliseconds per item by role, for `items` items done in the phase.
    pub fn per_item_ms(&self, role: &str, items: usize) -> f64 {
        self.of(role) * 1e3 / items.max(1) as f64
    }
}
