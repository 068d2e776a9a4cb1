//! `ironhouse bench rawtls SIZE COUNT` and `ironhouse bench rawtls-hs COUNT`:
//! the anchors for the `tls://` scenarios. A raw tokio-rustls stream (no
//! ZMTP) with the configuration `tls://` uses: the aws-lc-rs provider,
//! TLS 1.3 only, the same in-memory self-signed certificate and the client
//! pinning its fingerprint with ironhouse's own verifier. Same thread layout
//! as the ZMTP side (see [`super::runtime`]).

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironhouse::security::pki::Fingerprint;
use ironhouse::transport::tls::danger::PinnedServerCert;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{percentile, runtime, SelfSigned};
use crate::BoxError;

/// Server and client configurations for one run, as `tls://` builds them.
fn configs(cert: &SelfSigned) -> Result<(TlsAcceptor, TlsConnector), BoxError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())?;
    let verifier = PinnedServerCert::new(
        Fingerprint::of(cert.cert.as_ref()),
        provider.signature_verification_algorithms,
    );
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}

fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
}

/// Binds 127.0.0.1 on a free port, on the calling runtime.
async fn listen() -> Result<(TcpListener, std::net::SocketAddr), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The client `write_all()`s COUNT messages of SIZE bytes (a fresh, filled
/// buffer each, as the ZMTP side sends), the server reads them; the time
/// runs at the receiver from the first byte to the last.
pub fn thr(size: usize, count: u64) -> Result<String, BoxError> {
    let cert = SelfSigned::generate()?;
    let (acceptor, connector) = configs(&cert)?;
    let total = size as u64 * count;
    let (addr_tx, addr_rx) = std_mpsc::channel();
    let receiver = std::thread::spawn(move || -> Result<f64, BoxError> {
        runtime().block_on(async move {
            let (listener, addr) = listen().await?;
            addr_tx.send(addr)?;
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = tls.read(&mut buf).await? as u64;
            if got == 0 {
                return Err("rawtls: the client sent nothing".into());
            }
            let start = Instant::now();
            while got < total {
                let n = tls.read(&mut buf).await?;
                if n == 0 {
                    return Err(format!("rawtls: stream ended after {got} of {total} bytes").into());
                }
                got += n as u64;
            }
            let elapsed = start.elapsed().as_secs_f64();
            if got != total {
                return Err(format!("rawtls: got {got} bytes, expected {total}").into());
            }
            // Tell the sender we are done, so its close never races the reads.
            tls.write_all(b"k").await?;
            tls.shutdown().await?;
            Ok(elapsed)
        })
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30))?;
    let sender = std::thread::spawn(move || -> Result<(), BoxError> {
        runtime().block_on(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let mut tls = connector.connect(server_name(), tcp).await?;
            for _ in 0..count {
                tls.write_all(&vec![b'x'; size]).await?;
            }
            tls.flush().await?;
            let mut ack = [0u8; 1];
            tls.read_exact(&mut ack).await?;
            Ok(())
        })
    });
    sender.join().map_err(|_| "sender thread panicked")??;
    let elapsed = receiver.join().map_err(|_| "receiver thread panicked")??;
    let rate = count as f64 / elapsed.max(1e-9);
    Ok(format!(
        "{{\"impl\":\"rustls\",\"mode\":\"thr\",\"size\":{size},\"count\":{count},\"curve\":false,\"tls\":true,\"msgs_per_sec\":{rate:.1},\"mb_per_sec\":{:.1}}}",
        rate * size as f64 / 1e6
    ))
}

/// COUNT times: TCP connect + TLS handshake + one 64 B round trip, on a
/// fresh stream each time; the server echoes on its own thread. One client
/// configuration for the whole run, as one `TlsClient` is for `hs --tls`, so
/// both resume sessions alike.
pub fn hs(count: u64) -> Result<String, BoxError> {
    let cert = SelfSigned::generate()?;
    let (acceptor, connector) = configs(&cert)?;
    let (addr_tx, addr_rx) = std_mpsc::channel();
    let server = std::thread::spawn(move || -> Result<(), BoxError> {
        runtime().block_on(async move {
            let (listener, addr) = listen().await?;
            addr_tx.send(addr)?;
            let mut buf = [0u8; 64];
            for _ in 0..count {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let mut tls = acceptor.accept(tcp).await?;
                tls.read_exact(&mut buf).await?;
                tls.write_all(&buf).await?;
                tls.flush().await?;
                // The client closes first; wait for it (read returns 0).
                let _ = tls.read(&mut buf).await;
            }
            Ok(())
        })
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30))?;
    let mut times = runtime().block_on(async move {
        let payload = [b'x'; 64];
        let mut reply = [0u8; 64];
        let mut times = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let t = Instant::now();
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let mut tls = connector.connect(server_name(), tcp).await?;
            tls.write_all(&payload).await?;
            tls.flush().await?;
            tls.read_exact(&mut reply).await?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            tls.shutdown().await?;
        }
        Ok::<_, BoxError>(times)
    })?;
    server.join().map_err(|_| "server thread panicked")??;
    times.sort_by(f64::total_cmp);
    Ok(format!(
        "{{\"impl\":\"rustls\",\"mode\":\"hs\",\"count\":{count},\"curve\":false,\"tls\":true,\"median_us\":{:.1},\"p99_us\":{:.1}}}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    ))
}
