//! Progress of long reads and applies. On a terminal: indicatif bars (count, rate, ETA).
//! Elsewhere (CI, cron): a plain log line every 10 seconds, and one at the end of a count
//! that took that long, never control characters. These lines are logged under the
//! `PROGRESS` target, which the logger shows at the default verbosity (not with `-q`): a
//! run over a few seconds says it is alive, a quick one stays silent (its end is an info
//! line, for `-v`).

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a non-terminal run logs progress.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The log target of progress lines.
pub const PROGRESS: &str = "roster::progress";

/// The one set of bars of the process, so that log lines can be printed above them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Runs `print` (a log line on stderr) with the bars cleared, so that the line does not
/// land in the middle of a bar; the bars are redrawn below it.
pub fn above_bars<R>(print: impl FnOnce() -> R) -> R {
    match BARS.get() {
        Some(bars) => bars.suspend(print),
        None => print(),
    }
}

pub struct Progress {
    bars: Option<&'static MultiProgress>,
}

impl Progress {
    /// Bars on stderr when it is a terminal and `enabled`; log lines otherwise.
    pub fn new(enabled: bool) -> Progress {
        let bars = (enabled && std::io::stderr().is_terminal()).then(|| {
            BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        });
        Progress { bars }
    }

    /// A counter of unknown total (a read).
    pub fn counter(&self, label: &str, place: &str) -> Counter {
        self.make(label, place, None)
    }

    /// A counter towards a known total (an apply).
    pub fn bar(&self, label: &str, place: &str, total: u64) -> Counter {
        self.make(label, place, Some(total))
    }

    fn make(&self, label: &str, place: &str, total: Option<u64>) -> Counter {
        let bar = self.bars.as_ref().map(|multi| {
            let bar = match total {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} [{bar:30}] {pos}/{len} ({rate}, ETA {eta}) {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .with_key("rate", rate)
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} {spinner} {pos} records ({rate}) {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner())
                    .with_key("rate", rate),
                ),
            };
            let bar = multi.add(
                bar.with_prefix(label.to_string())
                    .with_message(place.to_string()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Counter {
            bar,
            label: format!("{label} {place}"),
            total,
            state: Mutex::new(CounterState {
                count: 0,
                started: Instant::now(),
                logged: Instant::now(),
                lines: 0,
            }),
        }
    }
}

/// Whole records per second: indicatif's own `{per_sec}` prints four decimals.
fn rate(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{:.0}/s", state.per_sec());
}

struct CounterState {
    count: u64,
    started: Instant,
    logged: Instant,
    /// Progress lines logged so far.
    lines: u64,
}

pub struct Counter {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    state: Mutex<CounterState>,
}

impl Counter {
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.count += n;
        if state.logged.elapsed() >= LOG_EVERY {
            state.logged = Instant::now();
            state.lines += 1;
            let rate = state.count as f64 / state.started.elapsed().as_secs_f64().max(0.001);
            match self.total {
                Some(total) => log::info!(
                    target: PROGRESS,
                    "{}: {}/{} ({rate:.0}/s)",
                    self.label,
                    state.count,
                    total
                ),
                None => log::info!(
                    target: PROGRESS,
                    "{}: {} records ({rate:.0}/s)",
                    self.label,
                    state.count
                ),
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            return;
        }
        if let Ok(state) = self.state.lock() {
            // The end of a count that was reported as it went is reported too.
            let target = if state.lines > 0 {
                PROGRESS
            } else {
                "roster::progress::done"
            };
            log::info!(
                target: target,
                "{}: {} records in {:.1}s",
                self.label,
                state.count,
                state.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
