//! `roster`: parses the command line, installs logging, runs the subcommand and turns its
//! outcome into an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use roster::cli::{Cli, LogFormat};
use roster::commands::{self, exit};
use roster::logging::LogOptions;

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
    let format = cli.log_format;
    let options = LogOptions {
        verbose: cli.verbose,
        quiet: cli.quiet,
        format,
        file: cli.log_file.as_deref(),
    };
    if let Err(e) = roster::logging::init(options) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::ERROR);
    }
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        // A log shipper reads the error as one more JSON line.
        Err(error) if format == LogFormat::Json => {
            log::error!("{error}");
            ExitCode::from(exit::ERROR)
        }
        Err(error) => {
            log::debug!("error: {error}");
            let report = miette::Report::new(error);
            eprintln!("{report:?}");
            ExitCode::from(exit::ERROR)
        }
    }
}
