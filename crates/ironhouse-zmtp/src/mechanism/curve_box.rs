//! The one place CURVE touches cryptography: NaCl's `crypto_box` (X25519 +
//! XSalsa20-Poly1305) with a precomputed shared key, and `crypto_secretbox`
//! for the server cookie. Nothing here is a primitive of our own; the
//! implementation is chosen by cargo feature:
//!
//! * `libsodium` (default): the audited reference library through FFI
//!   (`libsodium-sys-stable`, built from its bundled, signature-checked
//!   source). See the `sodium` module for why.
//! * `rustcrypto`: pure Rust, RustCrypto's `crypto_box` / `crypto_secretbox`,
//!   used when `libsodium` is off.
//!
//! Both produce the same bytes (checked against libsodium-generated vectors
//! in `tests/vectors/curve_boxes.json`, see `scripts/make_curve_vectors.py`)
//! and both refuse a peer public key of small order, as libsodium does.
//! Keeping this in one module lets the implementation be swapped on measured
//! evidence without touching the handshake.

use bytes::{BufMut, BytesMut};

#[cfg(not(any(feature = "libsodium", feature = "rustcrypto")))]
compile_error!(
    "ironhouse-zmtp needs a CURVE crypto backend: enable the `libsodium` feature (the default) \
     or, for pure Rust, `rustcrypto`"
);

#[cfg(feature = "libsodium")]
use sodium as backend;

#[cfg(all(feature = "rustcrypto", not(feature = "libsodium")))]
use rust_crypto as backend;

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
        backend::random(dst);
    }
}

/// Derives the X25519 public key of a secret key.
pub(crate) fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    backend::public_of(secret)
}

/// XSalsa20-Poly1305 under one 32-byte key with a detached tag: all that a
/// backend provides beyond key agreement.
trait Cipher {
    /// Encrypts `body` in place and returns its tag.
    fn seal_detached(&self, nonce: &[u8; 24], body: &mut [u8]) -> [u8; TAG];
    /// Decrypts `ct` into a new buffer if `tag` authenticates it.
    fn open_detached(&self, nonce: &[u8; 24], tag: &[u8; TAG], ct: &[u8]) -> Option<BytesMut>;
}

/// Appends `tag || ciphertext` of `plaintext` to `out`.
fn seal_into(key: Option<&impl Cipher>, nonce: &[u8; 24], plaintext: &[u8], out: &mut BytesMut) {
    out.reserve(TAG + plaintext.len());
    let tag_at = out.len();
    out.put_bytes(0, TAG);
    out.put_slice(plaintext);
    seal_tail(key, nonce, out, tag_at);
}

fn seal_tail(key: Option<&impl Cipher>, nonce: &[u8; 24], out: &mut BytesMut, tag_at: usize) {
    match key {
        Some(key) => {
            let (head, body) = out.split_at_mut(tag_at + TAG);
            head[tag_at..].copy_from_slice(&key.seal_detached(nonce, body));
        }
        // No key (the peer's public key has small order): what goes out is
        // random, a box nobody can open.
        None => backend::random(&mut out[tag_at..]),
    }
}

fn open(key: &impl Cipher, nonce: &[u8; 24], boxed: &[u8]) -> Option<BytesMut> {
    let (tag, ct) = boxed.split_at_checked(TAG)?;
    key.open_detached(nonce, tag.try_into().ok()?, ct)
}

/// A `crypto_box` with its shared key precomputed (libsodium's `beforenm`).
///
/// If the peer's public key has small order (the X25519 result would be all
/// zeros, a key anyone can compute) the box holds no key: it opens nothing and
/// seals random bytes, so the handshake fails at the first box, as with
/// libsodium's `crypto_box`, which refuses such keys.
pub(crate) struct SharedBox(Option<backend::SharedKey>);

impl std::fmt::Debug for SharedBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedBox(..)")
    }
}

impl SharedBox {
    pub(crate) fn new(their_public: &[u8; 32], our_secret: &[u8; 32]) -> Self {
        SharedBox(backend::shared_key(their_public, our_secret))
    }

    /// Appends `tag || ciphertext` of `plaintext` to `out`.
    pub(crate) fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut BytesMut) {
        seal_into(self.0.as_ref(), nonce, plaintext, out);
    }

    /// Encrypts in place everything after `tag_at + TAG` in `out`, writing the
    /// tag at `tag_at` (the caller reserved those 16 bytes).
    pub(crate) fn seal_tail(&self, nonce: &[u8; 24], out: &mut BytesMut, tag_at: usize) {
        seal_tail(self.0.as_ref(), nonce, out, tag_at);
    }

    /// Opens `tag || ciphertext`; `None` if it was forged or damaged.
    pub(crate) fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<BytesMut> {
        open(self.0.as_ref()?, nonce, boxed)
    }
}

/// `crypto_secretbox` under a symmetric key (the server's cookie key).
pub(crate) struct SecretBox(backend::SecretKey);

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        SecretBox(backend::secret_key(key))
    }

    pub(crate) fn seal_into(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut BytesMut) {
        seal_into(Some(&self.0), nonce, plaintext, out);
    }

    pub(crate) fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Option<BytesMut> {
        open(&self.0, nonce, boxed)
    }
}

/// libsodium through FFI: the only `unsafe` code in this crate.
///
/// Why FFI rather than pure Rust: CURVE boxes every message, so this is the
/// data path's cost. Measured on one core (seal through [`SharedBox`]),
/// libsodium 1.0.22 takes 0.50 µs per 64-byte message and runs at
/// ~1970 MB/s on 1 MiB, against 1.83 µs and ~476 MB/s for RustCrypto's
/// `crypto_box` 0.9; libzmq 4.3.4 with libsodium 1.0.18 moves ~1.37 GB/s
/// here, which the pure-Rust path cannot reach. libsodium is the audited
/// reference implementation of these NaCl constructions and the one libzmq
/// itself uses.
///
/// The `unsafe` blocks are single calls whose pointers all come from Rust
/// arrays or slices of the lengths libsodium documents for that call
/// (`crypto_box_*BYTES`, `crypto_secretbox_*BYTES`); each says which.
/// `sodium_init` runs once, before the first call of any kind.
#[cfg(feature = "libsodium")]
#[allow(unsafe_code)]
mod sodium {
    use std::ffi::c_ulonglong;
    use std::sync::Once;

    use bytes::BytesMut;
    use libsodium_sys as ffi;
    use zeroize::Zeroize;

    use super::{Cipher, TAG};

    fn init() {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            // SAFETY: no arguments; libsodium documents sodium_init as safe to
            // call more than once and from any thread.
            let rc = unsafe { ffi::sodium_init() };
            assert!(
                rc >= 0,
                "sodium_init() failed (returned {rc}): libsodium cannot be used, so CURVE is unavailable"
            );
        });
    }

    /// A 32-byte XSalsa20-Poly1305 key: the `crypto_box_beforenm` result or
    /// the cookie key. Wiped on drop.
    pub(super) struct Key([u8; 32]);

    pub(super) type SharedKey = Key;
    pub(super) type SecretKey = Key;

    impl Drop for Key {
        fn drop(&mut self) {
            self.0.zeroize();
        }
    }

    /// `None` when libsodium refuses `their_public` (small order).
    pub(super) fn shared_key(their_public: &[u8; 32], our_secret: &[u8; 32]) -> Option<Key> {
        init();
        let mut key = Key([0; 32]);
        // SAFETY: writes crypto_box_BEFORENMBYTES (32) bytes to `key.0` and
        // reads crypto_box_PUBLICKEYBYTES (32) from `their_public` and
        // crypto_box_SECRETKEYBYTES (32) from `our_secret`: three [u8; 32].
        let rc = unsafe {
            ffi::crypto_box_beforenm(
                key.0.as_mut_ptr(),
                their_public.as_ptr(),
                our_secret.as_ptr(),
            )
        };
        (rc == 0).then_some(key)
    }

    pub(super) fn secret_key(key: &[u8; 32]) -> Key {
        init();
        Key(*key)
    }

    pub(super) fn public_of(secret: &[u8; 32]) -> [u8; 32] {
        init();
        let mut public = [0u8; 32];
        // SAFETY: writes crypto_scalarmult_BYTES (32) bytes to `public` and
        // reads crypto_scalarmult_SCALARBYTES (32) from `secret`: two [u8; 32].
        let rc = unsafe { ffi::crypto_scalarmult_base(public.as_mut_ptr(), secret.as_ptr()) };
        // A clamped scalar times the base point is never the identity.
        assert_eq!(rc, 0, "crypto_scalarmult_base failed");
        public
    }

    pub(super) fn random(dst: &mut [u8]) {
        init();
        // SAFETY: writes exactly `dst.len()` bytes to `dst`.
        unsafe { ffi::randombytes_buf(dst.as_mut_ptr().cast(), dst.len()) };
    }

    impl Cipher for Key {
        fn seal_detached(&self, nonce: &[u8; 24], body: &mut [u8]) -> [u8; TAG] {
            let mut tag = [0u8; TAG];
            let len = body.len();
            let body = body.as_mut_ptr();
            // SAFETY: reads and writes `len` bytes at `body` (message and
            // ciphertext are the same buffer; libsodium supports in-place
            // operation), writes crypto_secretbox_MACBYTES (16) to `tag`
            // ([u8; 16], disjoint from `body`), reads
            // crypto_secretbox_NONCEBYTES (24) from `nonce` and
            // crypto_secretbox_KEYBYTES (32) from the key.
            let rc = unsafe {
                ffi::crypto_secretbox_detached(
                    body,
                    tag.as_mut_ptr(),
                    body,
                    len as c_ulonglong,
                    nonce.as_ptr(),
                    self.0.as_ptr(),
                )
            };
            // It fails only above crypto_secretbox_MESSAGEBYTES_MAX (~SIZE_MAX).
            assert_eq!(rc, 0, "crypto_secretbox_detached refused {len} bytes");
            tag
        }

        fn open_detached(&self, nonce: &[u8; 24], tag: &[u8; TAG], ct: &[u8]) -> Option<BytesMut> {
            let mut plain = BytesMut::with_capacity(ct.len());
            let dst = plain.spare_capacity_mut();
            debug_assert!(dst.len() >= ct.len());
            // SAFETY: writes `ct.len()` bytes to `dst` (spare capacity of at
            // least that size, a fresh allocation disjoint from `ct`), reads
            // `ct.len()` bytes from `ct`, crypto_secretbox_MACBYTES (16) from
            // `tag` ([u8; 16]), crypto_secretbox_NONCEBYTES (24) from `nonce`
            // and crypto_secretbox_KEYBYTES (32) from the key.
            let rc = unsafe {
                ffi::crypto_secretbox_open_detached(
                    dst.as_mut_ptr().cast(),
                    ct.as_ptr(),
                    tag.as_ptr(),
                    ct.len() as c_ulonglong,
                    nonce.as_ptr(),
                    self.0.as_ptr(),
                )
            };
            if rc != 0 {
                return None;
            }
            // SAFETY: on success libsodium wrote all `ct.len()` plaintext
            // bytes, within the capacity.
            unsafe { plain.set_len(ct.len()) };
            Some(plain)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// `crypto_box_detached_afternm` is `crypto_secretbox_detached` with
        /// the beforenm key: what lets CURVE use the secretbox calls.
        #[test]
        fn afternm_is_secretbox_with_the_beforenm_key() {
            let (a, b) = ([7u8; 32], [9u8; 32]);
            let key = shared_key(&public_of(&b), &a).unwrap();
            let nonce = *b"CurveZMQMESSAGEC\0\0\0\0\0\0\0\x01";
            for len in [0usize, 1, 31, 32, 33, 64, 1000, 65_537] {
                let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut ours = plain.clone();
                let tag = key.seal_detached(&nonce, &mut ours);
                let (mut theirs, mut mac) = (vec![0u8; len], [0u8; TAG]);
                // SAFETY: `theirs` and `plain` are `len` bytes, `mac` 16, the
                // nonce 24 and the key 32.
                let rc = unsafe {
                    ffi::crypto_box_detached_afternm(
                        theirs.as_mut_ptr(),
                        mac.as_mut_ptr(),
                        plain.as_ptr(),
                        len as c_ulonglong,
                        nonce.as_ptr(),
                        key.0.as_ptr(),
                    )
                };
                assert_eq!(rc, 0);
                assert_eq!((tag, &ours), (mac, &theirs), "{len} bytes");
            }
        }
    }
}

/// RustCrypto's pure-Rust `crypto_box` and `crypto_secretbox`.
#[cfg(feature = "rustcrypto")]
#[cfg_attr(feature = "libsodium", allow(dead_code))]
mod rust_crypto {
    use std::sync::OnceLock;

    use bytes::BytesMut;
    use crypto_box::aead::generic_array::typenum::{U16, U24};
    use crypto_box::aead::{AeadInPlace, KeyInit};
    use crypto_box::{PublicKey, SalsaBox, SecretKey as BoxSecret};
    use crypto_secretbox::XSalsa20Poly1305;

    use super::{Cipher, TAG};

    /// An XSalsa20-Poly1305 AEAD: `SalsaBox` (whose key is the `beforenm`
    /// result) or `XSalsa20Poly1305` (the cookie key).
    pub(super) struct Aead<A>(A);

    pub(super) type SharedKey = Aead<SalsaBox>;
    pub(super) type SecretKey = Aead<XSalsa20Poly1305>;

    /// `None` for a small-order `their_public`, like libsodium.
    pub(super) fn shared_key(their_public: &[u8; 32], our_secret: &[u8; 32]) -> Option<SharedKey> {
        let salsa = SalsaBox::new(
            &PublicKey::from(*their_public),
            &BoxSecret::from(*our_secret),
        );
        (probe(&salsa) != *zero_dh_probe()).then_some(Aead(salsa))
    }

    /// The box's key is HSalsa20 of the X25519 result, which is all zeros
    /// exactly when the peer's key has small order; RustCrypto does not
    /// refuse that, so it is recognised by its tag on an empty message under
    /// the zero nonce (equal tags for different keys: probability 2^-128).
    fn probe(salsa: &SalsaBox) -> [u8; TAG] {
        salsa
            .encrypt_in_place_detached(&[0u8; 24].into(), b"", &mut [])
            .expect("XSalsa20-Poly1305 encryption cannot fail for in-memory lengths")
            .into()
    }

    /// The probe of the all-zero X25519 result, which the all-zero public key
    /// (u = 0, order 2) gives for any secret.
    fn zero_dh_probe() -> &'static [u8; TAG] {
        static ZERO: OnceLock<[u8; TAG]> = OnceLock::new();
        ZERO.get_or_init(|| {
            probe(&SalsaBox::new(
                &PublicKey::from([0u8; 32]),
                &BoxSecret::from([1u8; 32]),
            ))
        })
    }

    pub(super) fn secret_key(key: &[u8; 32]) -> SecretKey {
        Aead(XSalsa20Poly1305::new(key.into()))
    }

    pub(super) fn public_of(secret: &[u8; 32]) -> [u8; 32] {
        *BoxSecret::from(*secret).public_key().as_bytes()
    }

    pub(super) fn random(dst: &mut [u8]) {
        use crypto_box::aead::rand_core::RngCore;
        crypto_box::aead::OsRng.fill_bytes(dst);
    }

    impl<A: AeadInPlace<NonceSize = U24, TagSize = U16>> Cipher for Aead<A> {
        fn seal_detached(&self, nonce: &[u8; 24], body: &mut [u8]) -> [u8; TAG] {
            self.0
                .encrypt_in_place_detached(nonce.into(), b"", body)
                .expect("XSalsa20-Poly1305 encryption cannot fail for in-memory lengths")
                .into()
        }

        fn open_detached(&self, nonce: &[u8; 24], tag: &[u8; TAG], ct: &[u8]) -> Option<BytesMut> {
            let mut buf = BytesMut::from(ct);
            self.0
                .decrypt_in_place_detached(nonce.into(), b"", &mut buf, tag.into())
                .ok()?;
            Some(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libsodium-generated known answers (scripts/make_curve_vectors.py).
    const VECTORS: &str = include_str!("../../tests/vectors/curve_boxes.json");

    /// Just enough JSON for the vectors file: objects, arrays, strings
    /// without escapes.
    #[derive(Debug)]
    enum Json {
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn parse(text: &str) -> Json {
            let mut rest = text.trim_start();
            let value = Self::value(&mut rest);
            assert!(rest.trim().is_empty(), "trailing text in the vectors");
            value
        }

        fn value(s: &mut &str) -> Json {
            let skip = |s: &mut &str, n: usize| *s = s[n..].trim_start();
            match s.as_bytes()[0] {
                b'"' => {
                    let end = s[1..].find('"').expect("unterminated string") + 1;
                    let text = &s[1..end];
                    assert!(!text.contains('\\'), "escapes are not supported");
                    skip(s, end + 1);
                    Json::Str(text.to_owned())
                }
                open @ (b'[' | b'{') => {
                    let close = if open == b'[' { b']' } else { b'}' };
                    skip(s, 1);
                    let mut items = Vec::new();
                    while s.as_bytes()[0] != close {
                        let key = (open == b'{').then(|| {
                            let Json::Str(key) = Self::value(s) else {
                                panic!("object key is not a string")
                            };
                            assert!(s.starts_with(':'));
                            skip(s, 1);
                            key
                        });
                        items.push((key.unwrap_or_default(), Self::value(s)));
                        if s.starts_with(',') {
                            skip(s, 1);
                        }
                    }
                    skip(s, 1);
                    if open == b'[' {
                        Json::Arr(items.into_iter().map(|(_, v)| v).collect())
                    } else {
                        Json::Obj(items)
                    }
                }
                other => panic!("unsupported JSON at {:?}", other as char),
            }
        }

        fn get(&self, key: &str) -> &Json {
            match self {
                Json::Obj(items) => &items.iter().find(|(k, _)| k == key).expect(key).1,
                _ => panic!("not an object"),
            }
        }

        fn str(&self) -> &str {
            match self {
                Json::Str(s) => s,
                _ => panic!("not a string"),
            }
        }

        fn arr(&self) -> &[Json] {
            match self {
                Json::Arr(items) => items,
                _ => panic!("not an array"),
            }
        }

        fn hex(&self) -> Vec<u8> {
            let s = self.str();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }

        fn hex32(&self) -> [u8; 32] {
            self.hex().try_into().unwrap()
        }

        fn hex24(&self) -> [u8; 24] {
            self.hex().try_into().unwrap()
        }
    }

    struct Keys {
        server_secret: [u8; 32],
        server_public: [u8; 32],
        client_secret: [u8; 32],
        client_public: [u8; 32],
    }

    fn vectors() -> (Json, Keys) {
        let v = Json::parse(VECTORS);
        let keys = Keys {
            server_secret: crate::z85::decode_key(v.get("server_secret_z85").str()).unwrap(),
            server_public: v.get("server_public").hex32(),
            client_secret: crate::z85::decode_key(v.get("client_secret_z85").str()).unwrap(),
            client_public: v.get("client_public").hex32(),
        };
        (v, keys)
    }

    /// Checks a seal/open pair against one vector, `seal_into` after a
    /// prefix that must be left alone, and that any flipped bit is refused.
    fn check(
        label: &str,
        seal: impl Fn(&[u8; 24], &[u8], &mut BytesMut),
        open: impl Fn(&[u8; 24], &[u8]) -> Option<BytesMut>,
        vector: &Json,
    ) {
        let nonce = vector.get("nonce").hex24();
        let plain = vector.get("plaintext").hex();
        let boxed = vector.get("boxed").hex();
        let mut out = BytesMut::from(&b"prefix"[..]);
        seal(&nonce, &plain, &mut out);
        assert_eq!(&out[..6], b"prefix", "{label}");
        assert_eq!(
            out[6..],
            boxed[..],
            "{label}: sealed bytes differ from libsodium's"
        );
        assert_eq!(open(&nonce, &boxed).as_deref(), Some(&plain[..]), "{label}");
        for bit in [0, 8 * TAG - 1, 8 * boxed.len() - 1] {
            let mut bad = boxed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&nonce, &bad).is_none(), "{label}: bit {bit} flipped");
        }
        let mut other = nonce;
        other[23] ^= 1;
        assert!(open(&other, &boxed).is_none(), "{label}: wrong nonce");
        assert!(
            open(&nonce, &boxed[..TAG - 1]).is_none(),
            "{label}: truncated"
        );
    }

    #[test]
    fn public_keys_match_libsodium() {
        let (_, k) = vectors();
        assert_eq!(public_of(&k.server_secret), k.server_public);
        assert_eq!(public_of(&k.client_secret), k.client_public);
    }

    #[test]
    fn boxes_match_libsodium_both_ways() {
        let (v, k) = vectors();
        let client = SharedBox::new(&k.server_public, &k.client_secret);
        let server = SharedBox::new(&k.client_public, &k.server_secret);
        let boxes = v.get("boxes").arr();
        assert!(boxes.len() >= 20);
        for vector in boxes {
            let label = vector.get("label").str();
            for (this, that) in [(&client, &server), (&server, &client)] {
                check(
                    label,
                    |n, p, o| this.seal_into(n, p, o),
                    |n, b| that.open(n, b),
                    vector,
                );
            }
            // seal_tail, as Traffic::seal uses it: header, reserved tag, body.
            let (nonce, plain) = (vector.get("nonce").hex24(), vector.get("plaintext").hex());
            let mut out = BytesMut::from(&b"MESSAGE"[..]);
            out.put_bytes(0, TAG);
            out.put_slice(&plain);
            client.seal_tail(&nonce, &mut out, 7);
            assert_eq!(
                out[7..],
                vector.get("boxed").hex()[..],
                "{label}: seal_tail"
            );
        }
    }

    #[test]
    fn secretboxes_match_libsodium() {
        let (v, _) = vectors();
        let cookie = SecretBox::new(&v.get("secretbox_key").hex32());
        for vector in v.get("secretboxes").arr() {
            let label = vector.get("label").str();
            check(
                label,
                |n, p, o| cookie.seal_into(n, p, o),
                |n, b| cookie.open(n, b),
                vector,
            );
        }
    }

    #[test]
    fn small_order_public_keys_are_refused() {
        let (v, k) = vectors();
        let keys = v.get("low_order_publics").arr();
        assert!(keys.len() >= 12);
        let nonce = [3u8; 24];
        for key in keys {
            let weak = SharedBox::new(&key.hex32(), &k.client_secret);
            assert!(weak.0.is_none(), "{} accepted", key.str());
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            weak.seal_into(&nonce, &[0u8; 64], &mut a);
            weak.seal_into(&nonce, &[0u8; 64], &mut b);
            assert_eq!(a.len(), TAG + 64);
            assert_ne!(a, b, "a keyless box must seal random bytes");
            assert!(weak.open(&nonce, &a).is_none());
        }
    }

    #[test]
    fn os_random_fills() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, b);
        OsRandom.fill(&mut []);
    }

    /// With both features on, the two implementations agree on random input.
    #[cfg(all(feature = "libsodium", feature = "rustcrypto"))]
    #[test]
    fn backends_agree() {
        for len in [0usize, 1, 17, 64, 255, 256, 257, 4096, 100_003] {
            let mut r = [0u8; 32 + 32 + 24];
            OsRandom.fill(&mut r);
            let (sk, pk_sk) = (r[..32].try_into().unwrap(), r[32..64].try_into().unwrap());
            let nonce: [u8; 24] = r[64..].try_into().unwrap();
            let mut plain = vec![0u8; len];
            OsRandom.fill(&mut plain);
            assert_eq!(sodium::public_of(&sk), rust_crypto::public_of(&sk));
            let pk = sodium::public_of(&pk_sk);
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            seal_into(
                sodium::shared_key(&pk, &sk).as_ref(),
                &nonce,
                &plain,
                &mut a,
            );
            seal_into(
                rust_crypto::shared_key(&pk, &sk).as_ref(),
                &nonce,
                &plain,
                &mut b,
            );
            assert_eq!(a, b, "{len} bytes");
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            seal_into(Some(&sodium::secret_key(&sk)), &nonce, &plain, &mut a);
            seal_into(Some(&rust_crypto::secret_key(&sk)), &nonce, &plain, &mut b);
            assert_eq!(a, b, "{len} bytes, secretbox");
        }
    }
}
