//! `ironhouse demo`: the README's first command. A relay and its endpoints
//! in one process, on loopback, with fresh CURVE keys in a temporary
//! folder (IronHouse: the relay admits only the endpoint keys in its
//! allow-list folder). Shows broadcast with the kept last object for a late
//! joiner, a work queue with produce/notify, and an intruder refused; prints
//! what each endpoint received and exits 0. `--sockets` runs the tour of the
//! socket layer instead.

mod relay;
mod sockets;

use std::process::ExitCode;
use std::time::Duration;

use crate::BoxError;

/// Flags of `ironhouse demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tour the socket layer (REQ/REP, PUB/SUB, PUSH/PULL, IronHouse) instead.
    #[arg(long)]
    sockets: bool,
}

/// Runs the demo; everything stops by itself within a minute.
pub fn run(args: Args) -> Result<ExitCode, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let tour = async {
            if args.sockets {
                sockets::tour().await
            } else {
                relay::tour().await
            }
        };
        tokio::time::timeout(Duration::from_secs(60), tour)
            .await
            .map_err(|_| "demo did not finish within 60 s")?
    })?;
    Ok(ExitCode::SUCCESS)
}
