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
//! - `notify.rs`: the notifications after a run, recorded on it;
//! - `error.rs`: `Error`, what a command can end with (only `main` turns it into a report).

mod error;
mod notify;
mod plan_file;
mod run;
mod runs;
mod show;

use std::io::Write;
use std::path::PathBuf;

use chrono::Utc;

use crate::cli::{Cli, Command, ModeArg, PolicyOverrides};
use crate::config::{Config, Mode};
use crate::store::{LockGuard, RunKind, Store};

pub use error::Error;

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
    };
    match cli.command {
        Command::Validate => validate(&global),
        Command::Plan(args) => run::plan(&global, args),
        Command::Apply(args) => run::apply(&global, args),
        Command::Sync(args) => run::sync(&global, args),
        Command::Show(args) => show::show(&global, args),
        Command::Runs(args) => runs::runs(&global, args),
        Command::Unlock { lock_id, force } => unlock(&global, &lock_id, force),
    }
}

/// Options every subcommand shares.
struct Global {
    config: PathBuf,
    state: Option<PathBuf>,
    progress: bool,
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
