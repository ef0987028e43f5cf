//! How a benchmark binary ends: the figures it printed, then whether its targets were met, as
//! the exit code (0 met, 1 missed or failed), after the time it took.

use std::process::ExitCode;
use std::time::Instant;

/// Runs `run` on a multi-threaded runtime and turns its verdict into the exit code.
pub fn finish(run: impl std::future::Future<Output = Result<bool, String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let outcome = runtime.block_on(run);
    println!("(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    match outcome {
        Ok(true) => {
            println!("targets met");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("targets MISSED");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}
