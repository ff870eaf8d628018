//! Log lines on stderr (`warning: ...`), at a level set by `-v`, and optionally every line at
//! debug level appended to a log file. Records never carry secrets: connectors and the
//! applier log names, counts and target answers, never credentials.
//!
//! Log lines quote directory values and target answers, so every line is passed through
//! `text::escape_controls` (human form) or JSON-escaped (`--log-format json`, one object per
//! line with `time`, `level` and `message`, for log shippers): one record is always one line,
//! and no value can rewrite the terminal or forge a line of a log file.
//!
//! Progress lines (`progress::PROGRESS`, logged at info level) are shown at the default
//! verbosity unless `-q`: a CI job that runs for minutes says that it is alive.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::cli::LogFormat;

struct Logger {
    stderr_level: LevelFilter,
    /// Whether progress lines reach stderr at the default verbosity.
    progress: bool,
    format: LogFormat,
    file: Option<Mutex<File>>,
}

impl Logger {
    fn on_stderr(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.stderr_level
            || (self.progress
                && metadata.target() == crate::progress::PROGRESS
                && metadata.level() <= Level::Info)
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("roster") && (self.on_stderr(metadata) || self.file.is_some())
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
        let message = record.args().to_string();
        let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if self.on_stderr(record.metadata()) {
            let line = match self.format {
                LogFormat::Human => {
                    format!("{label}: {}", crate::text::escape_controls(&message))
                }
                LogFormat::Json => json_line(&now(), label, &message),
            };
            crate::progress::above_bars(|| eprintln!("{line}"));
        }
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            let line = match self.format {
                LogFormat::Human => format!(
                    "{} {label} {}",
                    now(),
                    crate::text::escape_controls(&message)
                ),
                LogFormat::Json => json_line(&now(), label, &message),
            };
            let _ = writeln!(file, "{line}");
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

/// `{"time":"...","level":"warning","message":"..."}`: serde_json escapes every control
/// character, so the object stays on one line.
pub fn json_line(time: &str, level: &str, message: &str) -> String {
    serde_json::json!({ "time": time, "level": level, "message": message }).to_string()
}

/// How the logger is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions<'a> {
    /// `-v` count: warnings by default, `-v` info, `-vv` debug.
    pub verbose: u8,
    /// `-q`: no progress lines.
    pub quiet: bool,
    pub format: LogFormat,
    pub file: Option<&'a Path>,
}

/// Installs the logger.
pub fn init(options: LogOptions<'_>) -> Result<(), String> {
    let stderr_level = match options.verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let file = match options.file {
        Some(path) => Some(Mutex::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let mut max = stderr_level;
    if file.is_some() {
        max = max.max(LevelFilter::Debug);
    }
    if !options.quiet {
        max = max.max(LevelFilter::Info);
    }
    let logger = Logger {
        stderr_level,
        progress: !options.quiet,
        format: options.format,
        file,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(format: LogFormat, message: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("roster.log");
        let logger = Logger {
            stderr_level: LevelFilter::Off,
            progress: false,
            format,
            file: Some(Mutex::new(File::create(&path).expect("log file"))),
        };
        logger.log(
            &Record::builder()
                .target("roster::pipeline")
                .level(Level::Info)
                .args(format_args!("rejected {message}: no email"))
                .build(),
        );
        logger.flush();
        std::fs::read_to_string(&path).expect("read the log")
    }

    #[test]
    fn a_log_line_holds_no_raw_control_character_and_stays_one_line() {
        let hostile = "uid=eve\u{1b}[2K\r\ninfo: forged line\u{202e}";
        let line = logged(LogFormat::Human, hostile);
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(
            line.ends_with(
                " info rejected uid=eve\\u{1b}[2K\\r\\ninfo: forged line\\u{202e}: no email\n"
            ),
            "{line:?}"
        );
        let json = logged(LogFormat::Json, hostile);
        assert_eq!(json.lines().count(), 1, "{json:?}");
        let object: serde_json::Value = serde_json::from_str(&json).expect("a JSON line");
        assert_eq!(object["level"], "info");
        assert_eq!(
            object["message"],
            format!("rejected {hostile}: no email"),
            "JSON keeps the message exact"
        );
        assert!(!json.contains('\u{1b}') && !json.contains('\r'), "{json:?}");
    }

    #[test]
    fn progress_lines_show_at_the_default_verbosity_unless_quiet() {
        let logger = |progress| Logger {
            stderr_level: LevelFilter::Warn,
            progress,
            format: LogFormat::Human,
            file: None,
        };
        let meta = |target| {
            Metadata::builder()
                .target(target)
                .level(Level::Info)
                .build()
        };
        assert!(logger(true).on_stderr(&meta(crate::progress::PROGRESS)));
        assert!(!logger(false).on_stderr(&meta(crate::progress::PROGRESS)));
        assert!(!logger(true).on_stderr(&meta("roster::pipeline")));
        assert!(!logger(true).on_stderr(&meta("roster::progress::done")));
    }
}
