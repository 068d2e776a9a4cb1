#!/usr/bin/env python3
"""Generate crates/ironhouse-zmtp/tests/vectors/curve_boxes.json.

Known-answer vectors for the CurveZMQ boxes, computed with PyNaCl (that is,
libsodium): the X25519 public keys of the RFC 26 example secrets, the
crypto_box_beforenm shared key, crypto_box outputs (MAC || ciphertext) under
the CurveZMQ nonces of every handshake command and of MESSAGE, a
crypto_secretbox cookie, and the small-order public keys libsodium refuses.

The JSON is checked in; the Rust tests read it and never need Python.
Regenerate with (PyNaCl is a generator-only dependency, not an interop one):

    python3 -m venv /tmp/nacl-venv && /tmp/nacl-venv/bin/pip install pynacl==1.6.2
    /tmp/nacl-venv/bin/python scripts/make_curve_vectors.py
"""

import json
import os
import sys

import nacl
import nacl.bindings as sodium
from nacl.exceptions import CryptoError, RuntimeError as NaclRuntimeError

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "ironhouse-zmtp", "tests", "vectors", "curve_boxes.json",
)

# RFC 26 / libzmq test-suite key pairs (Z85).
SERVER_SECRET = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
SERVER_PUBLIC = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
CLIENT_SECRET = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
CLIENT_PUBLIC = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

Z85 = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
       ".-:+=^!/*?&<>()[]{}@%$#")


def z85_decode(text):
    """Z85 (RFC 32) text to bytes."""
    assert len(text) % 5 == 0
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for ch in text[i:i + 5]:
            value = value * 85 + Z85.index(ch)
        out += value.to_bytes(4, "big")
    return bytes(out)


def pattern(n, mul=7, add=3):
    """A deterministic, non-trivial plaintext of n bytes."""
    return bytes((i * mul + add) & 0xFF for i in range(n))


# --- small-order points, found rather than transcribed -------------------
P = 2**255 - 19
A24 = 121665
ORDER = 2**252 + 27742317777372353535851937790883648493  # prime subgroup


def ladder(k, u):
    """x-only Montgomery ladder, k*u on Curve25519 (or its twist); no clamping.

    Used only here, to find points of small order: for any u, ORDER*u lies in
    the torsion subgroup. Never used to produce an expected box.
    """
    x1, x2, z2, x3, z3 = u, 1, 0, u, 1
    swap = 0
    for t in reversed(range(k.bit_length())):
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + A24 * e) % P
    if swap:
        x2, z2 = x3, z3
    return x2 * pow(z2, P - 2, P) % P


def small_order_us():
    """u-coordinates of the points of order dividing 8 (curve and twist).

    ORDER*u lands in the curve's 8-torsion for curve points; +-1 are the
    points whose double is (0, 0) (u(2Q) = (u^2 - 1)^2 / ..., zero iff
    u = +-1), which covers the twist's 4-torsion. Each candidate is checked:
    8*u must be the identity or (0, 0), both u = 0 in x-only form.
    """
    found = {1, P - 1}
    for u in range(9, 200):
        found.add(ladder(ORDER, u))
    return sorted(u for u in found if ladder(8, u) == 0)


def prefix(nonce):
    """The nonce's text prefix: 16 characters, or 8 before a long nonce."""
    text = all(0x21 <= b < 0x7F for b in nonce[:16])
    return (nonce[:16] if text else nonce[:8]).decode()


def le32(n):
    return n.to_bytes(32, "little")


def main():
    ss, cs = z85_decode(SERVER_SECRET), z85_decode(CLIENT_SECRET)
    sp, cp = sodium.crypto_scalarmult_base(ss), sodium.crypto_scalarmult_base(cs)
    assert sp == z85_decode(SERVER_PUBLIC) and cp == z85_decode(CLIENT_PUBLIC)

    shared = sodium.crypto_box_beforenm(sp, cs)
    assert shared == sodium.crypto_box_beforenm(cp, ss)

    plaintexts = {
        "empty": b"",
        "flags": b"\x01",
        "64": pattern(64),
        "1000": pattern(1000, 13, 5),
        "4099": pattern(4099, 31, 11),
    }
    nonces = [
        b"CurveZMQHELLO---" + (1).to_bytes(8, "big"),
        b"WELCOME-" + pattern(16, 3, 1),
        b"CurveZMQINITIATE" + (2).to_bytes(8, "big"),
        b"VOUCH---" + pattern(16, 5, 2),
        b"CurveZMQREADY---" + (1).to_bytes(8, "big"),
        b"CurveZMQMESSAGEC" + (3).to_bytes(8, "big"),
        b"CurveZMQMESSAGES" + (0x0102030405060708).to_bytes(8, "big"),
    ]

    boxes = []
    for nonce in nonces:
        for name, plain in plaintexts.items():
            easy = sodium.crypto_box_easy(plain, nonce, sp, cs)  # MAC || ct
            # The identities the Rust code relies on: crypto_box with the
            # beforenm key *is* crypto_secretbox under that key, both ways.
            assert easy == sodium.crypto_box_easy_afternm(plain, nonce, shared)
            assert easy == sodium.crypto_secretbox_easy(plain, nonce, shared)
            assert sodium.crypto_box_open_easy(easy, nonce, cp, ss) == plain
            boxes.append({
                "label": f"{prefix(nonce)} {name}",
                "nonce": nonce.hex(),
                "plaintext": plain.hex(),
                "boxed": easy.hex(),
            })

    cookie_key = pattern(32, 11, 7)
    secretboxes = []
    for name, plain in [("cookie", cp + ss), ("empty", b""), ("1000", plaintexts["1000"])]:
        nonce = b"COOKIE--" + pattern(16, 17, 9)
        secretboxes.append({
            "label": f"COOKIE-- {name}",
            "nonce": nonce.hex(),
            "plaintext": plain.hex(),
            "boxed": sodium.crypto_secretbox_easy(plain, nonce, cookie_key).hex(),
        })

    # Public keys libsodium's crypto_box refuses (the DH result would be all
    # zeros): the torsion points, their non-canonical encodings and the same
    # with the ignored top bit set.
    low = set()
    for u in small_order_us():
        low.add(le32(u))
        if u + P < 2**255:
            low.add(le32(u + P))
    low |= {bytes(k[:31]) + bytes([k[31] | 0x80]) for k in list(low)}
    low_order = []
    for key in sorted(low):
        try:
            sodium.crypto_box_beforenm(key, cs)
        except (CryptoError, NaclRuntimeError):
            low_order.append(key.hex())
        else:
            sys.exit(f"libsodium accepted supposedly small-order key {key.hex()}")

    doc = {
        "generator": "scripts/make_curve_vectors.py",
        "pynacl": nacl.__version__,
        "server_secret_z85": SERVER_SECRET,
        "server_public": sp.hex(),
        "client_secret_z85": CLIENT_SECRET,
        "client_public": cp.hex(),
        "shared_key": shared.hex(),
        "boxes": boxes,
        "secretbox_key": cookie_key.hex(),
        "secretboxes": secretboxes,
        "low_order_publics": low_order,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(boxes)} boxes, {len(secretboxes)} secretboxes, "
          f"{len(low_order)} small-order keys to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
