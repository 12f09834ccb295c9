use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    canvass::telemetry::init();
    let cli = canvass::cli::Cli::parse();
    // `canvass campaign preview 1 | head`: a command that prints and exits stops quietly when
    // its reader goes, as other Unix tools do, instead of panicking on the closed pipe. Not the
    // service and the worker, whose logs must not end them.
    if !cli.runs_until_stopped() {
        sigpipe::reset();
    }
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("canvass: {error:#}");
            ExitCode::FAILURE
        }
    }
}
