//! Command-line arguments as clap sees them. These are raw: `commands` resolves them against
//! the config into the settings of a run.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store::{Outcome, RunKind};

#[derive(Debug, Parser)]
#[command(
    name = "roster",
    version,
    about = "Keep a user-management target in line with a source directory: plan, review, apply"
)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "roster.kdl",
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// State store (SQLite); overrides `state` in the config.
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// More output: -v for progress and per-record warnings, -vv for debugging.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress bars or progress lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Also append every log line (at debug level) to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// How log lines are written, on stderr and in the log file: `human` (`warning: ...`),
    /// or `json`, one object per line (`time`, `level`, `message`) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// No colour in the plan, even on a terminal (as the NO_COLOR variable does).
    #[arg(long, global = true)]
    pub no_color: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config and its policies; print every problem at once.
    Validate,
    /// Read both sides and show what apply would change.
    Plan(PlanArgs),
    /// Apply a saved plan, or plan, show and apply after confirmation.
    Apply(ApplyArgs),
    /// Plan and apply in one run, for schedules (every cap still applies).
    Sync(SyncArgs),
    /// Show a saved plan or a past run, with per-action outcomes and rejects.
    Show(ShowArgs),
    /// The history of runs.
    Runs(RunsArgs),
    /// Write a commented starter config (the -c file, roster.kdl by default); never overwrites.
    Init(InitArgs),
    /// Print a shell completion script, e.g. `roster completions bash > /etc/bash_completion.d/roster`.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the manual page (roff), as `make man` writes it.
    #[command(hide = true)]
    Man,
    /// Release the state lock left by a run that died.
    Unlock {
        /// The lock id named in the "state is locked" message.
        lock_id: String,
        /// Release a lock held by a run on another host, which roster cannot see: only when
        /// you know that run is over.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of source directory.
    #[arg(long, value_enum, default_value = "ldap")]
    pub source: InitSource,
    /// The kind of target.
    #[arg(long, value_enum, default_value = "scim")]
    pub target: InitTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitSource {
    Ldap,
    Csv,
    Servicenow,
    Freshservice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitTarget {
    Scim,
}

/// Per-run overrides of the policy.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyOverrides {
    /// Sync mode for this run.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Remove cap for this run.
    #[arg(long, value_name = "N")]
    pub max_removes: Option<u64>,
    /// Read only what changed in the source since the last good read (as `read "incremental"`);
    /// falls back to a complete read, and says why, when that is not safe.
    #[arg(long)]
    pub incremental: bool,
    /// A first load into a target that holds no account of this config's owner: no cap
    /// counts the adds, and no shrink check applies. Refused when the target has any.
    #[arg(long)]
    pub initial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    AddOnly,
    Remove,
    Delete,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Markdown,
}

/// `roster show` also writes CSV: a report people open in a spreadsheet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    #[default]
    Human,
    Json,
    Markdown,
    Csv,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Save the plan to this file, for `roster apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit 0 with no changes, 2 with changes, 3 with changes some of which are held.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan even when the source looks incomplete (empty, or shrunk past the limit).
    #[arg(long)]
    pub force: bool,
    /// Also show which actions were added, dropped or changed since this saved plan.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: PolicyOverrides,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `roster plan --out`. Without it, plans, shows and asks.
    pub plan_file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub allow: Allowances,
    /// Release everything held (and, when planning, plan on an incomplete-looking source).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub overrides: PolicyOverrides,
}

/// `--allow-<kind> N`, on `apply` and `sync`: releases what the plan holds of that kind.
#[derive(Debug, Args)]
pub struct Allowances {
    /// Release held removes and deactivations (and deletes, when no max-deletes caps them
    /// apart); N must be at least the number held.
    #[arg(long, value_name = "N")]
    pub allow_removes: Option<u64>,
    /// Release held adds; N must be at least the number held.
    #[arg(long, value_name = "N")]
    pub allow_adds: Option<u64>,
    /// Release held updates; N must be at least the number held.
    #[arg(long, value_name = "N")]
    pub allow_updates: Option<u64>,
    /// Release held deletes; N must be at least the number held.
    #[arg(long, value_name = "N")]
    pub allow_deletes: Option<u64>,
}

impl Allowances {
    /// What apply releases: these, and everything with `force`.
    pub fn release(&self, force: bool) -> crate::apply::Release {
        crate::apply::Release {
            allow_adds: self.allow_adds,
            allow_updates: self.allow_updates,
            allow_removes: self.allow_removes,
            allow_deletes: self.allow_deletes,
            force,
        }
    }
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Do not ask for confirmation (what schedules use).
    #[arg(long)]
    pub auto_approve: bool,
    /// Exit 2 when changes were applied (0 then means there was nothing to do).
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    pub allow: Allowances,
    #[command(flatten)]
    pub overrides: PolicyOverrides,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan file or a run id (see `roster runs`).
    pub what: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: ShowFormat,
    /// CSV export of the records: every action with its outcome and error. To stdout, or
    /// to FILE with `--records=FILE`.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub records: Option<PathBuf>,
    /// CSV export of the errors: rejected source records and failed actions. To stdout, or
    /// to FILE with `--errors=FILE`.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub errors: Option<PathBuf>,
}

/// `roster runs` prints a table, or the same rows for programs and spreadsheets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RunsFormat {
    #[default]
    Human,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// How many of the latest matching runs to list (0: all of them).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Runs started at or after this date (`2024-05-01`, midnight UTC) or time (RFC 3339,
    /// `2024-05-01T08:00:00+02:00`).
    #[arg(long, value_name = "DATE|TIME")]
    pub since: Option<String>,
    /// Runs started before this time, or on or before this date (a date includes its day).
    #[arg(long, value_name = "DATE|TIME")]
    pub until: Option<String>,
    /// Only runs that ended so (several: `--status failed,error`).
    #[arg(long, value_name = "OUTCOME", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(Outcome::ALL.iter().map(|o| o.as_str())))]
    pub status: Vec<String>,
    /// Only runs of these commands (several: `--kind apply,sync`).
    #[arg(long, value_name = "KIND", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(RunKind::ALL.iter().map(|k| k.as_str())))]
    pub kind: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: RunsFormat,
}
