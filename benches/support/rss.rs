//! glint's memory: VmRSS every 100 ms, and VmHWM (reset through clear_refs at each run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub struct RssSampler {
    pub pid: u32,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    hwm_reset: bool,
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, stopped) = (peak_kib.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            pid,
            peak_kib,
            stop,
            hwm_reset: false,
        }
    }

    /// Starts a new measurement.
    pub fn reset(&mut self) {
        self.peak_kib.store(0, Ordering::Relaxed);
        // "5" resets the peak RSS the kernel keeps (VmHWM) to the current RSS.
        self.hwm_reset = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok();
    }

    /// The peak since the last reset, in MiB.
    pub fn peak_mib(&self) -> f64 {
        let sampled = self.peak_kib.load(Ordering::Relaxed);
        let hwm = if self.hwm_reset {
            proc_status_kib(self.pid, "VmHWM:").unwrap_or(0)
        } else {
            0
        };
        sampled.max(hwm) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
