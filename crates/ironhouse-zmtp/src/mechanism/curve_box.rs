//! The one place CURVE touches cryptography: NaCl's `crypto_box` (X25519 +
//! XSalsa20-Poly1305) with a precomputed shared key, and `crypto_secretbox`
//! for the server cookie. Implementations come from audited crates
//! (RustCrypto's `crypto_box` / `crypto_secretbox`); nothing here is a
//! primitive of our own. Keeping it in one module lets the implementation be
//! swapped on measured evidence without touching the handshake.

use bytes::{BufMut, BytesMut};
use crypto_box::aead::{AeadCore, AeadInPlace, KeyInit};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use crypto_secretbox::XSalsa20Poly1305;

/// Length of a box's authentication tag.
pub(crate) const TAG: usize = 16;

/// A source of randomness for keys and long nonces (injectable so tests can be
/// byte-exact).
pub trait Random: Send + std::fmt::Debug {
    /// Fills `dst` with cryptographically secure random bytes.
    fn fill(&mut self, dst: &mut [u8]);
}

/// The operating system's generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, dst: &mut [u8]) {
        use crypto_box::aead::rand_core::RngCore;
        crypto_box::aead::OsRng.fill_bytes(dst);
    }
}

/// Derives the X25519 public key of a secret key.
pub(crate) fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    *SecretKey::from(*secret).public_key().as_bytes()
}

/// A `crypto_box` with its shared key precomputed (libsodium's `beforenm`).
pub(crate) struct SharedBox(SalsaBox);

impl std::fmt::Debug for SharedBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedBox(..)")
    }
}

impl SharedBox {
    pub(crate) fn new(their_public: &[u8; 32], our_secret: &[u8; 32]) -> Self {
        SharedBox(SalsaBox::new(
            &PublicKey::from(*their_public),
            &SecretKey::from(*our_secret),
        ))
    }

    /// Appends `tag || ciphertext` of `plaintext` to `out`.
    pub(crate) fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut BytesMut) {
        out.reserve(TAG + plaintext.len());
        let tag_at = out.len();
        out.put_bytes(0, TAG);
        out.put_slice(plaintext);
        self.seal_tail(nonce, out, tag_at);
    }

    /// Encrypts in place everything after `tag_at + TAG` in `out`, writing the
    /// tag at `tag_at` (the caller reserved those 16 bytes).
    pub(crate) fn seal_tail(&self, nonce: &[u8; 24], out: &mut BytesMut, tag_at: usize) {
        let (head, body) = out.split_at_mut(tag_at + TAG);
        let tag = self
            .0
            .encrypt_in_place_detached(nonce.into(), b"", body)
            .expect("XSalsa20-Poly1305 encryption cannot fail for in-memory lengths");
        head[tag_at..].copy_from_slice(&tag);
    }

    /// Opens `tag || ciphertext`; `None` if it was forged or damaged.
    pub(crate) fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<BytesMut> {
        let (tag, ct) = boxed.split_at_checked(TAG)?;
        let mut buf = BytesMut::from(ct);
        self.0
            .decrypt_in_place_detached(nonce.into(), b"", &mut buf, tag.into())
            .ok()?;
        Some(buf)
    }
}

/// `crypto_secretbox` under a symmetric key (the server's cookie key).
pub(crate) struct SecretBox(XSalsa20Poly1305);

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        SecretBox(XSalsa20Poly1305::new(key.into()))
    }

    pub(crate) fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut BytesMut) {
        let tag_at = out.len();
        out.put_bytes(0, TAG);
        out.put_slice(plaintext);
        let (head, body) = out.split_at_mut(tag_at + TAG);
        let tag = self
            .0
            .encrypt_in_place_detached(nonce.into(), b"", body)
            .expect("XSalsa20-Poly1305 encryption cannot fail for in-memory lengths");
        head[tag_at..].copy_from_slice(&tag);
    }

    pub(crate) fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<BytesMut> {
        let (tag, ct) = boxed.split_at_checked(TAG)?;
        let mut buf = BytesMut::from(ct);
        self.0
            .decrypt_in_place_detached(nonce.into(), b"", &mut buf, tag.into())
            .ok()?;
        Some(buf)
    }
}

// Both ciphers use 24-byte nonces; checked at compile time.
const _: () = {
    assert!(<SalsaBox as AeadCore>::NonceSize::USIZE == 24);
};
use crypto_box::aead::generic_array::typenum::Unsigned;
