//! Turns rustls errors and TLS alerts into sentences that say which side
//! refused the connection and why: unknown CA, certificate required, name
//! mismatch, pin mismatch, expired, no TLS version in common, not TLS at all.
//!
//! A refusal is seen twice: the side that checked a certificate has the
//! precise reason (a `rustls::Error`), the other side only the alert it was
//! sent. Both get a sentence naming who refused whom.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::{ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::danger::PinMismatch;

/// Which end of the TLS connection this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn me(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
    fn peer(self) -> &'static str {
        match self {
            Side::Client => "server",
            Side::Server => "client",
        }
    }
}

/// Replaces an I/O error carrying a rustls error with a plain explanation;
/// other errors pass through.
pub(crate) fn explain(e: io::Error, side: Side) -> io::Error {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let kind = match tls {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::AlertReceived(_) => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, describe(tls, side))
}

/// The sentence for one rustls error seen on `side`.
pub(crate) fn describe(e: &rustls::Error, side: Side) -> String {
    let (me, peer) = (side.me(), side.peer());
    match e {
        rustls::Error::InvalidCertificate(ce) => format!(
            "TLS: this {me} refused the {peer}'s certificate: {}",
            certificate(ce, side)
        ),
        rustls::Error::NoCertificatesPresented if side == Side::Server => {
            "TLS: this server refused the client: it requires a client certificate and none was presented (certificate required)".to_string()
        }
        rustls::Error::NoCertificatesPresented => {
            "TLS: this client refused the server: it presented no certificate".to_string()
        }
        rustls::Error::AlertReceived(alert) => alert_received(*alert, side),
        rustls::Error::PeerIncompatible(why) => format!(
            "TLS: the {peer} is incompatible with this {me} ({why:?}); by default only TLS 1.3 is allowed (see allow_tls12)"
        ),
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => format!(
            "TLS: the {peer} does not speak TLS or sent a malformed message ({e}); is one side using tcp:// and the other tls://?"
        ),
        other => format!("TLS: error with the {peer}: {other}"),
    }
}

fn certificate(ce: &CertificateError, side: Side) -> String {
    let trusted = match side {
        Side::Client => "a CA this client trusts",
        Side::Server => "a CA this server trusts",
    };
    match ce {
        CertificateError::UnknownIssuer => {
            format!("it is not signed by {trusted} (unknown CA)")
        }
        CertificateError::NotValidForName => {
            "it is not valid for the name this client asked for (name mismatch)".to_string()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "it is for {}, not {} (name mismatch); set TlsClient::server_name if the server is known by another name",
            if presented.is_empty() {
                "no name at all".to_string()
            } else {
                presented
                    .iter()
                    .map(|p| bare_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            server_name(expected)
        ),
        CertificateError::Expired => "it has expired (expired)".to_string(),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("it expired on {} (expired)", date(*not_after))
        }
        CertificateError::NotValidYet => {
            "it is not valid yet (not yet valid; check the clocks)".to_string()
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "it is not valid before {} (not yet valid; check the clocks)",
            date(*not_before)
        ),
        CertificateError::Revoked => "it has been revoked (revoked)".to_string(),
        CertificateError::BadSignature => {
            "its signature does not verify (bad signature)".to_string()
        }
        CertificateError::BadEncoding => "it is malformed (bad encoding)".to_string(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not meant for this use (extended key usage must allow serverAuth on a server certificate, clientAuth on a client certificate)".to_string()
        }
        CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
            Some(pin) => pin.to_string(),
            None => other.to_string(),
        },
        other => format!("{other}"),
    }
}

fn alert_received(alert: AlertDescription, side: Side) -> String {
    let (me, peer) = (side.me(), side.peer());
    let refused_cert = |why: &str| format!("TLS: the {peer} refused this {me}'s certificate{why}");
    let refused = |why: &str| format!("TLS: the {peer} refused this {me}: {why}");
    match alert {
        AlertDescription::CertificateRequired => refused(&format!(
            "it requires a client certificate and this {me} sent none (certificate required)"
        )),
        AlertDescription::UnknownCA => refused_cert(&format!(
            ": it is not signed by a CA the {peer} trusts (unknown CA)"
        )),
        AlertDescription::BadCertificate => {
            refused_cert(" (bad certificate; clients send this on a name mismatch)")
        }
        AlertDescription::CertificateUnknown => {
            refused_cert(" (certificate unknown; clients send this on a pin mismatch)")
        }
        AlertDescription::CertificateExpired => {
            refused_cert(": it has expired or is not valid yet (expired)")
        }
        AlertDescription::CertificateRevoked => refused_cert(": it is revoked (revoked)"),
        AlertDescription::UnsupportedCertificate => {
            refused_cert(": it is not meant for this use (unsupported certificate)")
        }
        AlertDescription::DecryptError => {
            refused("a handshake signature did not verify (decrypt error)")
        }
        AlertDescription::AccessDenied => refused("access denied (access denied)"),
        AlertDescription::ProtocolVersion => refused(
            "no TLS version in common (protocol version); only TLS 1.3 is allowed unless allow_tls12()",
        ),
        AlertDescription::HandshakeFailure => {
            refused("no cipher suite or key exchange in common (handshake failure)")
        }
        other => refused(&format!("alert {other:?}")),
    }
}

/// A name as rustls lists it (`DnsName("x")`, `IpAddress(1.2.3.4)`), bare.
fn bare_name(presented: &str) -> &str {
    for (open, close) in [("DnsName(\"", "\")"), ("IpAddress(", ")")] {
        if let Some(inner) = presented
            .strip_prefix(open)
            .and_then(|r| r.strip_suffix(close))
        {
            return inner;
        }
    }
    presented
}

fn server_name(n: &ServerName<'_>) -> String {
    n.to_str().into_owned()
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time.
fn date(t: UnixTime) -> String {
    let secs = t.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = crate::security::certs::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A stream half whose errors are explained as above.
pub(crate) struct Explained<T> {
    pub(crate) inner: T,
    pub(crate) side: Side,
}

impl<T: AsyncRead + Unpin> AsyncRead for Explained<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let side = self.side;
        Pin::new(&mut self.inner)
            .poll_read(cx, buf)
            .map_err(|e| explain(e, side))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Explained<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let side = self.side;
        Pin::new(&mut self.inner)
            .poll_write(cx, buf)
            .map_err(|e| explain(e, side))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let side = self.side;
        Pin::new(&mut self.inner)
            .poll_write_vectored(cx, bufs)
            .map_err(|e| explain(e, side))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let side = self.side;
        Pin::new(&mut self.inner)
            .poll_flush(cx)
            .map_err(|e| explain(e, side))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let side = self.side;
        Pin::new(&mut self.inner)
            .poll_shutdown(cx)
            .map_err(|e| explain(e, side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            date(UnixTime::since_unix_epoch(std::time::Duration::ZERO)),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            date(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                951_782_400 + 3661
            ))),
            "2000-02-29 01:01:01 UTC"
        );
    }

    #[test]
    fn sentences_name_side_and_cause() {
        let e = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let s = describe(&e, Side::Client);
        assert!(s.contains("the server refused this client") && s.contains("certificate required"));
        let e = rustls::Error::NoCertificatesPresented;
        let s = describe(&e, Side::Server);
        assert!(s.contains("this server refused the client") && s.contains("certificate required"));
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let s = describe(&e, Side::Client);
        assert!(
            s.contains("this client refused the server's certificate") && s.contains("unknown CA")
        );
        let io = explain(io::Error::new(io::ErrorKind::InvalidData, e), Side::Client);
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
        assert!(io.to_string().contains("unknown CA"));
        let plain = explain(io::Error::other("x"), Side::Client);
        assert_eq!(plain.to_string(), "x");
    }
}
