//! The `gatehouse` binary: parses the command line and reports failures; everything else lives in the library.

use clap::Parser;
use gatehouse::cli::{Cli, Failure, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    gatehouse::telemetry::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (error, code) = match failure {
                Failure::Usage(e) => (e, 2),
                Failure::Runtime(e) => (e, 1),
            };
            // One line per cause, outermost first.
            for cause in error.chain() {
                eprintln!("gatehouse: {cause}");
            }
            ExitCode::from(code)
        }
    }
}
