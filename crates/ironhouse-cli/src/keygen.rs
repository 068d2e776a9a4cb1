//! `ironhouse keygen`: makes a CURVE key pair and writes it as czmq/pyzmq
//! certificates (`.key` public, `.key_secret` secret, mode 0600) in the
//! folder layout of sqlite_rx (default), vidgear, or a plain folder.
//!
//! Output on stdout, one `<what> <value>` line each: `secret-file <path>`,
//! `public-file <path>`, `authorized-clients <path>` (sqlite-rx servers) and
//! `public-key <Z85>`.
//!
//! The default mode is `server`: sqlite_rx's own `curve-keygen` documents
//! `--mode` without stating a default, and the server's pair (with its
//! `authorized_clients/` folder) is the one every setup needs first.

use std::path::PathBuf;
use std::process::ExitCode;

use ironhouse::security::certs::{self, CertError, Layout, Mode};
use ironhouse::CurveKeyPair;

/// Flags of `ironhouse keygen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which side the pair is for; names the files. Servers also get an
    /// `authorized_clients/` folder (sqlite-rx layout).
    #[arg(long, value_enum, default_value_t = ModeArg::Server)]
    mode: ModeArg,
    /// Base folder [default: ~/.curve (sqlite-rx), ~/.vidgear (vidgear), . (plain)].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// File name of the pair, `<id>.key` / `<id>.key_secret` (plain layout only)
    /// [default: ironhouse].
    #[arg(long)]
    id: Option<String>,
    /// Whose naming to follow: sqlite-rx (`id_<mode>_<hostname>_curve.key`),
    /// vidgear (`keys/public_keys/<mode>.key`, `keys/private_keys/<mode>.key_secret`)
    /// or plain (`<id>.key`).
    #[arg(long, value_enum, default_value_t = LayoutArg::SqliteRx)]
    layout: LayoutArg,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Server,
    Client,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LayoutArg {
    SqliteRx,
    Vidgear,
    Plain,
}

pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    let mode = match args.mode {
        ModeArg::Server => Mode::Server,
        ModeArg::Client => Mode::Client,
    };
    let layout = match args.layout {
        LayoutArg::SqliteRx => Layout::SqliteRx,
        LayoutArg::Vidgear => Layout::Vidgear,
        LayoutArg::Plain => Layout::Plain,
    };
    if args.id.is_some() && layout != Layout::Plain {
        return Err(
            "--id names the files of --layout plain only; sqlite-rx and vidgear name them by --mode"
                .into(),
        );
    }
    let id = args.id.as_deref().unwrap_or("ironhouse");
    let files = layout.key_files(args.dir.as_deref(), mode, id)?;
    let keys = CurveKeyPair::generate();
    files.write(&keys, &[], args.force).map_err(|e| match e {
        CertError::AlreadyExists { path } => format!(
            "{} already exists; not overwriting it (pass --force to replace the key pair)",
            path.display()
        )
        .into(),
        other => crate::BoxError::from(other),
    })?;
    println!("secret-file {}", files.secret.display());
    println!("public-file {}", files.public.display());
    if let Some(dir) = &files.authorized_clients {
        println!("authorized-clients {}", dir.display());
    }
    println!("public-key {}", keys.public.to_z85());
    // A last check that what was written loads back.
    certs::load_keypair(&files.secret)?;
    Ok(ExitCode::SUCCESS)
}
