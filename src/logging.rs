//! Log lines on stderr (`warning: ...`), at a level set by `-v`, and optionally every line at
//! debug level appended to a log file. Records never carry secrets: connectors and the
//! applier log names, counts and target answers, never credentials.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    stderr_level: LevelFilter,
    file: Option<Mutex<File>>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("roster")
            && (metadata.level() <= self.stderr_level || self.file.is_some())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let label = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        if record.level() <= self.stderr_level {
            crate::progress::above_bars(|| eprintln!("{label}: {}", record.args()));
        }
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let _ = writeln!(file, "{now} {label} {}", record.args());
        }
    }

    fn flush(&self) {
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            let _ = file.flush();
        }
    }
}

/// Installs the logger: warnings by default, `-v` info, `-vv` debug.
pub fn init(verbose: u8, log_file: Option<&Path>) -> Result<(), String> {
    let stderr_level = match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let file = match log_file {
        Some(path) => Some(Mutex::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let max = if file.is_some() {
        LevelFilter::Debug.max(stderr_level)
    } else {
        stderr_level
    };
    log::set_boxed_logger(Box::new(Logger { stderr_level, file })).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    Ok(())
}
