//! `roster`: parses the command line, installs logging, runs the subcommand and turns its
//! outcome into an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use roster::cli::Cli;
use roster::commands::{self, exit};

// Reads and plans allocate many small strings on several threads at once; mimalloc keeps
// that fast where glibc's allocator spent a fifth of a large plan's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unwrapped lines: error messages are grepped in CI logs and must not be cut mid-phrase.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    if let Err(e) = roster::logging::init(cli.verbose, cli.log_file.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::ERROR);
    }
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            log::debug!("error: {error}");
            let report = miette::Report::new(error);
            eprintln!("{report:?}");
            ExitCode::from(exit::ERROR)
        }
    }
}
