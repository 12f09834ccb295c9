use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    canvass::telemetry::init();
    let cli = canvass::cli::Cli::parse();
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("canvass: {error:#}");
            ExitCode::FAILURE
        }
    }
}
