//! `cert serve` and `cert fetch`: tlspyo's `--broadcast`/`--retrieve`,
//! made safe. A certificate is public, so it travels over plain TCP; what
//! makes it trustworthy is that the fetching side accepts it only if its
//! SHA-256 fingerprint is the one the user got out of band (`--pin`), or,
//! on a terminal, after the user has compared it and typed `y`. Without a
//! terminal and without `--pin`, fetch refuses before connecting.
//!
//! Bounds: serve stops after `--count` connections or `--seconds`, and sends
//! only the certificates of the file (re-encoded from DER, so a key that
//! happens to be in the file never leaves); fetch reads at most 64 KiB,
//! within `--timeout`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ironhouse::security::pki::{self, Fingerprint};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::{der, files, MAX_FILE};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The certificate (PEM) to hand out. Only its CERTIFICATE blocks are sent.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// TCP port to listen on (0: any free port, printed on stderr).
    #[arg(long, value_name = "P")]
    port: u16,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    bind: String,
    /// Stop after this many connections.
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: u32,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    seconds: u64,
}

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Where `ironhouse cert serve` listens.
    #[arg(value_name = "HOST:PORT")]
    addr: String,
    /// The SHA-256 fingerprint the certificate must have, obtained out of
    /// band (`ironhouse cert show` on the serving machine).
    #[arg(long, value_name = "FINGERPRINT")]
    pin: Option<String>,
    /// Write the certificate here (PEM) instead of to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
}

pub fn serve(a: ServeArgs) -> Result<ExitCode, crate::BoxError> {
    let bytes = files::read_bounded(&a.cert, MAX_FILE, "certificate file")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", a.cert.display()))?;
    let Some(first) = certs.first() else {
        return Err(format!("{}: no CERTIFICATE block found", a.cert.display()).into());
    };
    let pem: String = certs.iter().map(|c| der::cert_pem(c.as_ref())).collect();
    let fingerprint = Fingerprint::of(first.as_ref());
    let listener = TcpListener::bind((a.bind.as_str(), a.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", a.bind, a.port))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    eprintln!("serving {local} fingerprint {fingerprint}");
    eprintln!(
        "fetch it with: ironhouse cert fetch {local} --pin {fingerprint}   (give the pin by another channel)"
    );
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut served = 0u32;
    while served < a.count {
        if Instant::now() >= deadline {
            eprintln!("stopping: {} seconds elapsed, served {served}", a.seconds);
            return Ok(ExitCode::SUCCESS);
        }
        match listener.accept() {
            Ok((mut stream, peer)) => {
                served += 1;
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                match stream
                    .write_all(pem.as_bytes())
                    .and_then(|()| stream.flush())
                {
                    Ok(()) => eprintln!("sent certificate to {peer}"),
                    Err(e) => eprintln!("could not send to {peer}: {e}"),
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accept failed: {e}").into()),
        }
    }
    eprintln!("stopping: served {served}");
    Ok(ExitCode::SUCCESS)
}

fn receive(addr: &str, timeout: Duration) -> Result<Vec<u8>, crate::BoxError> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e} (expected HOST:PORT)"))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for sa in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&sa, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(stream) = stream else {
        return Err(match last {
            Some(e) => format!("cannot connect to {addr}: {e}"),
            None => format!("cannot connect to {addr}: no address or timed out"),
        }
        .into());
    };
    let mut data = Vec::new();
    let mut reader = stream.take(MAX_FILE + 1);
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(
                format!("{addr}: timed out after {timeout:?} receiving the certificate").into(),
            );
        }
        reader.get_ref().set_read_timeout(Some(left))?;
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "{addr}: timed out after {timeout:?} receiving the certificate"
                )
                .into());
            }
            Err(e) => return Err(format!("{addr}: {e}").into()),
        }
    }
    if data.len() as u64 > MAX_FILE {
        return Err(format!("{addr} sent more than {} KiB; refusing it", MAX_FILE / 1024).into());
    }
    Ok(data)
}

pub fn fetch(a: FetchArgs) -> Result<ExitCode, crate::BoxError> {
    let pin: Option<Fingerprint> = match &a.pin {
        Some(p) => Some(p.parse().map_err(|e| format!("--pin: {e}"))?),
        None => None,
    };
    if pin.is_none() && !std::io::stdin().is_terminal() {
        return Err(
            "refusing to fetch without --pin: stdin is not a terminal, so nobody can compare the \
             certificate's fingerprint; get the fingerprint out of band (`ironhouse cert show FILE` \
             on the serving machine) and pass --pin FINGERPRINT"
                .into(),
        );
    }
    if let Some(out) = &a.out {
        files::refuse_overwrite(&[out], a.force)?;
    }
    let timeout = Duration::from_secs_f64(a.timeout.clamp(0.1, 3600.0));
    let data = receive(&a.addr, timeout)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e}", a.addr))?;
    let Some(first) = certs.first() else {
        return Err(format!("{}: sent no certificate", a.addr).into());
    };
    let got = Fingerprint::of(first.as_ref());
    match pin {
        Some(p) if p == got => eprintln!("fingerprint {got} matches --pin"),
        Some(p) => {
            return Err(format!(
                "REFUSED: the certificate from {} has fingerprint {got}, but --pin is {p} \
                 (pin mismatch); nothing written",
                a.addr
            )
            .into())
        }
        None => {
            let peer = pki::PeerCertificate::from_der(first);
            eprintln!("certificate from {}:", a.addr);
            eprintln!("  subject     {}", peer.subject);
            eprintln!("  fingerprint {got}");
            eprint!("Is this the fingerprint shown on the serving machine? [y/N] ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                return Err("not confirmed; nothing written".into());
            }
        }
    }
    let pem: String = certs.iter().map(|c| der::cert_pem(c.as_ref())).collect();
    match &a.out {
        Some(out) => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                files::make_dir(dir)?;
            }
            files::write_file(out, pem.as_bytes(), 0o644)?;
            println!("certificate {}", out.display());
            println!("fingerprint {got}");
        }
        None => print!("{pem}"),
    }
    Ok(ExitCode::SUCCESS)
}
