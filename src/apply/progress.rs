//! How `glint apply` shows running transfers: a progress bar per transfer (indicatif) in a
//! terminal, and a line per tenth of the way in a log, where bars would be noise.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::crd::TransferStatus;

pub struct TransferDisplay {
    bars: Option<Bars>,
    /// For plain lines: the last tenth printed per image.
    printed: HashMap<String, Option<u8>>,
}

struct Bars {
    group: MultiProgress,
    by_image: HashMap<String, ProgressBar>,
}

impl TransferDisplay {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| Bars {
            group: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            by_image: HashMap::new(),
        });
        Self {
            bars,
            printed: HashMap::new(),
        }
    }

    /// Shows where the transfer into `key`'s image stands.
    pub fn update(&mut self, key: &str, status: &TransferStatus) {
        match &mut self.bars {
            Some(bars) => {
                let bar = bars.by_image.entry(key.to_string()).or_insert_with(|| {
                    let bar = bars.group.add(ProgressBar::no_length());
                    bar.set_style(style());
                    bar.set_prefix(key.to_string());
                    bar
                });
                if let Some(total) = status.bytes_total {
                    bar.set_length(total);
                }
                bar.set_position(status.bytes_done);
            }
            None => {
                if let Some(line) = line_for(&mut self.printed, key, status) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// Ends every bar (the table follows on stdout).
    pub fn finish(self) {
        if let Some(bars) = self.bars {
            for bar in bars.by_image.values() {
                bar.finish();
            }
        }
    }
}

impl Default for TransferDisplay {
    fn default() -> Self {
        Self::new()
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:24} [{bar:30}] {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// The plain line for this update, when it reaches a tenth not printed yet.
fn line_for(
    printed: &mut HashMap<String, Option<u8>>,
    key: &str,
    status: &TransferStatus,
) -> Option<String> {
    // Nothing moved yet: no line to say so (a small image is done before the next look).
    if status.bytes_done == 0 {
        return None;
    }
    let tenth = status.percent.map(|percent| percent / 10);
    if printed.insert(key.to_string(), tenth) == Some(tenth) {
        return None;
    }
    let or_unknown = |value: Option<String>| value.unwrap_or_else(|| "?".to_string());
    Some(format!(
        "  {key}: {} of {} bytes ({}%)",
        status.bytes_done,
        or_unknown(status.bytes_total.map(|total| total.to_string())),
        or_unknown(status.percent.map(|percent| percent.to_string())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64, percent: Option<u8>) -> TransferStatus {
        TransferStatus {
            bytes_done: done,
            bytes_total: percent.map(|_| 1000),
            percent,
            ..TransferStatus::default()
        }
    }

    #[test]
    fn a_log_gets_one_line_per_tenth_of_the_way() {
        let mut printed = HashMap::new();
        let updates = [
            (0, Some(0)),
            (10, Some(1)),
            (50, Some(5)),
            (120, Some(12)),
            (150, Some(15)),
            (1000, Some(100)),
        ];
        let lines: Vec<String> = updates
            .iter()
            .filter_map(|(done, percent)| line_for(&mut printed, "ns/a", &at(*done, *percent)))
            .collect();
        assert_eq!(
            lines,
            [
                "  ns/a: 10 of 1000 bytes (1%)",
                "  ns/a: 120 of 1000 bytes (12%)",
                "  ns/a: 1000 of 1000 bytes (100%)"
            ]
        );
        assert_eq!(
            line_for(&mut printed, "ns/b", &at(7, None)).as_deref(),
            Some("  ns/b: 7 of ? bytes (?%)"),
            "each image has its own lines, and an unknown size says so"
        );
    }
}
