//! One function per subcommand, each reading like what it does: load the config, take the
//! lock, run the pipeline or the applier, show, save. The work itself lives in the modules
//! below (`pipeline`, `apply`, `render`, `store`); this is where they are put in order and
//! where a run's outcome is recorded.
//!
//! - `run.rs`: `plan`, `apply`, `sync`, the three commands that take the lock and make or
//!   apply a plan;
//! - `show.rs`: `show` (a plan file or a run, with its journal and rejects; CSV exports);
//! - `runs.rs`: `runs` (the history, filtered; as a table, JSON or CSV);
//! - `plan_file.rs`: reading and writing plan files;
//! - `init.rs`: `init`, a starter config;
//! - `notify.rs`: the notifications after a run, recorded on it;
//! - `error.rs`: `Error`, what a command can end with (only `main` turns it into a report).

mod error;
mod init;
mod notify;
mod plan_file;
mod run;
mod runs;
mod show;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chrono::Utc;

use clap::CommandFactory;

use crate::cli::{Cli, Command, CompletionShell, ModeArg, PolicyOverrides};
use crate::config::{Config, Mode};
use crate::render::Colour;
use crate::store::{LockGuard, RunKind, Store};

pub use error::Error;
pub use init::starter;

/// Exit codes of the contract.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const CHANGES: u8 = 2;
    pub const HELD: u8 = 3;
}

pub fn run(cli: Cli) -> Result<u8, Error> {
    let global = Global {
        config: cli.config.clone(),
        state: cli.state.clone(),
        progress: !cli.quiet,
        colour: colour(cli.no_color, std::env::var_os("NO_COLOR").as_deref()),
    };
    match cli.command {
        Command::Validate => validate(&global),
        Command::Plan(args) => run::plan(&global, args),
        Command::Apply(args) => run::apply(&global, args),
        Command::Sync(args) => run::sync(&global, args),
        Command::Show(args) => show::show(&global, args),
        Command::Runs(args) => runs::runs(&global, args),
        Command::Init(args) => init::init(&global, args),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
        Command::Unlock { lock_id, force } => unlock(&global, &lock_id, force),
    }
}

/// The completion script of `shell`, generated from the same clap definition as the parser.
fn completions(shell: CompletionShell) -> Result<u8, Error> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "roster", &mut out);
    emit(&String::from_utf8_lossy(&out));
    Ok(exit::OK)
}

/// The man page, roff, generated from the clap definition: `make man` writes `roster.1`.
fn man() -> Result<u8, Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::Usage(format!("cannot render the man page: {e}")))?;
    emit(&String::from_utf8_lossy(&out));
    Ok(exit::OK)
}

/// Options every subcommand shares.
struct Global {
    config: PathBuf,
    state: Option<PathBuf>,
    progress: bool,
    /// Whether the human plan on stdout is coloured.
    colour: Colour,
}

/// Colour only on a terminal, and never with `--no-color`, a non-empty `NO_COLOR`
/// (no-color.org) or `TERM=dumb`: a plan in a file, a pipe or a CI log stays plain text.
fn colour(no_color_flag: bool, no_color_env: Option<&std::ffi::OsStr>) -> Colour {
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    colour_for(
        std::io::stdout().is_terminal(),
        no_color_flag || dumb || no_color_env.is_some_and(|v| !v.is_empty()),
    )
}

fn colour_for(terminal: bool, refused: bool) -> Colour {
    if terminal && !refused {
        Colour::Always
    } else {
        Colour::Never
    }
}

impl Global {
    /// The config, with the command line's overrides of the state path and the policy.
    fn load(&self, overrides: &PolicyOverrides) -> Result<Config, Error> {
        let mut config = Config::load(&self.config)?;
        if let Some(state) = &self.state {
            config.state = state.clone();
        }
        if let Some(mode) = overrides.mode {
            config.policy.override_mode(match mode {
                ModeArg::AddOnly => Mode::AddOnly,
                ModeArg::Remove => Mode::Remove,
                ModeArg::Delete => Mode::Delete,
            });
        }
        if let Some(n) = overrides.max_removes {
            config.policy.override_max_removes(n);
        }
        if overrides.incremental {
            config.policy.override_incremental();
        }
        Ok(config)
    }

    /// The state store of a config, for the commands that only read history.
    fn store(&self) -> Result<Store, Error> {
        let path = match &self.state {
            Some(state) => state.clone(),
            None => Config::load(&self.config)?.state,
        };
        Ok(Store::open(&path)?)
    }

    /// The config and its state store, locked for a run of `kind`.
    fn session(&self, kind: RunKind, overrides: &PolicyOverrides) -> Result<Session, Error> {
        let config = self.load(overrides)?;
        let store = Store::open(&config.state)?;
        let lock = store.lock(kind.as_str(), Utc::now())?;
        Ok(Session {
            config,
            store,
            _lock: lock,
        })
    }
}

/// A locked session on the state store.
struct Session {
    config: Config,
    store: Store,
    _lock: LockGuard,
}

fn validate(global: &Global) -> Result<u8, Error> {
    let config = Config::load(&global.config)?;
    // Secrets belong to the environment a run has, which need not be this one (a pull
    // request check validates without them): a missing one is worth a warning, not a failure.
    for (node, secret) in config.secrets() {
        if let Err(e) = secret.resolve() {
            log::warn!("{node}: {e}; plan and apply will need it");
        }
    }
    emit(&format!(
        "{}: the configuration is valid (mode {}).\n",
        global.config.display(),
        config.policy.mode.as_str()
    ));
    Ok(exit::OK)
}

/// Prints `text` on stdout. A reader that went away (`roster show plan.json | head -1`) is
/// not an error: what it did not read, it did not want.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn unlock(global: &Global, lock_id: &str, force: bool) -> Result<u8, Error> {
    let store = global.store()?;
    match store.unlock(lock_id, force)? {
        Some(holder) => {
            emit(&format!(
                "Released the lock {} held by `roster {}` (pid {} on {}).\n",
                holder.lock_id, holder.command, holder.pid, holder.host
            ));
            Ok(exit::OK)
        }
        None => Err(Error::Usage(format!("no lock with id {lock_id} is held"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_nobody_refused_it_on() {
        assert_eq!(colour_for(true, false), Colour::Always);
        assert_eq!(colour_for(false, false), Colour::Never);
        assert_eq!(colour_for(true, true), Colour::Never);
        assert_eq!(colour_for(false, true), Colour::Never);
    }
}
