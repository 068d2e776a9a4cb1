//! Certificate checks that replace the usual Web PKI rules, for a visible
//! opt-in ([`TlsClient::pinned`](super::TlsClient::pinned)), as rustls keeps
//! its own risky hooks under `danger`.
//!
//! [`PinnedServerCert`] accepts exactly one server certificate, named by its
//! SHA-256 fingerprint: the way to reach a server with a self-signed
//! certificate or only an IP address (tlspyo's relays, for example). It skips
//! what a CA would vouch for (chain, name, validity dates), since the pin
//! itself is the trust decision, as with an SSH host key; it still checks
//! that the server proves possession of the certificate's private key, by
//! verifying the handshake signature with the crypto provider's algorithms.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::security::pki::Fingerprint;

/// A server certificate verifier that accepts one certificate by its
/// SHA-256 fingerprint, and checks the handshake signature.
#[derive(Debug)]
pub struct PinnedServerCert {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServerCert {
    /// Pins `pin`, verifying handshake signatures with `algorithms`
    /// (normally the crypto provider's `signature_verification_algorithms`).
    pub fn new(pin: Fingerprint, algorithms: WebPkiSupportedAlgorithms) -> Self {
        PinnedServerCert { pin, algorithms }
    }
}

/// The error a pinned client reports when the server's certificate is
/// another one; carried inside `rustls::CertificateError::Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinMismatch {
    /// The fingerprint the client was told to expect.
    pub expected: Fingerprint,
    /// The fingerprint of the certificate the server presented.
    pub actual: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "its SHA-256 fingerprint is {}, but the pinned fingerprint is {} (pin mismatch)",
            self.actual, self.expected
        )
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = Fingerprint::of(end_entity.as_ref());
        if actual == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.pin,
                    actual,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
