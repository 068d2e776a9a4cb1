//! CURVE key material: X25519 key pairs, in raw bytes and Z85 text.
//!
//! Secret keys are wiped from memory when dropped and never printed by
//! `Debug`.

use std::fmt;

use crate::mechanism::curve_box::{public_of, OsRandom, Random};
use crate::z85::{self, Z85Error};

/// A CURVE public key (32 bytes; 40 characters in Z85).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurvePublicKey(pub [u8; 32]);

/// A CURVE secret key. Zeroed on drop; `Debug` shows only its public key.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveSecretKey([u8; 32]);

/// A public and secret key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    /// The public half, shared with peers.
    pub public: CurvePublicKey,
    /// The secret half.
    pub secret: CurveSecretKey,
}

impl CurvePublicKey {
    /// Parses 40 characters of Z85.
    ///
    /// # Errors
    /// [`Z85Error`] for anything but a valid 40-character key.
    pub fn from_z85(text: &str) -> Result<Self, Z85Error> {
        z85::decode_key(text).map(CurvePublicKey)
    }

    /// The Z85 text form.
    pub fn to_z85(&self) -> String {
        z85::encode(&self.0)
    }
}

impl fmt::Debug for CurvePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurvePublicKey({})", self.to_z85())
    }
}

impl fmt::Display for CurvePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

impl CurveSecretKey {
    /// Wraps raw secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CurveSecretKey(bytes)
    }

    /// Parses 40 characters of Z85.
    ///
    /// # Errors
    /// [`Z85Error`] for anything but a valid 40-character key.
    pub fn from_z85(text: &str) -> Result<Self, Z85Error> {
        z85::decode_key(text).map(CurveSecretKey)
    }

    /// The Z85 text form (handle with care: this is the secret).
    pub fn to_z85(&self) -> String {
        z85::encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> CurvePublicKey {
        CurvePublicKey(public_of(&self.0))
    }
}

impl Drop for CurveSecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for CurveSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurveSecretKey(for {})", self.public_key().to_z85())
    }
}

impl CurveKeyPair {
    /// A fresh key pair from the operating system's generator.
    pub fn generate() -> Self {
        Self::generate_with(&mut OsRandom)
    }

    /// A fresh key pair from `rng`.
    pub fn generate_with(rng: &mut dyn Random) -> Self {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Self::from_secret(CurveSecretKey(secret))
    }

    /// The pair for a known secret key.
    pub fn from_secret(secret: CurveSecretKey) -> Self {
        CurveKeyPair {
            public: secret.public_key(),
            secret,
        }
    }
}

impl fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurveKeyPair({})", self.public.to_z85())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc26_example_keys_derive() {
        // The key pairs printed in RFC 26 / libzmq's test suite.
        let secret = CurveSecretKey::from_z85("D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs").unwrap();
        assert_eq!(
            secret.public_key().to_z85(),
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
        );
        let secret = CurveSecretKey::from_z85("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
        assert_eq!(
            secret.public_key().to_z85(),
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let kp = CurveKeyPair::generate();
        let shown = format!("{:?} {:?}", kp, kp.secret);
        assert!(!shown.contains(&kp.secret.to_z85()));
        assert!(shown.contains(&kp.public.to_z85()));
    }
}
