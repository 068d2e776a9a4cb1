"""Make tlspyo TLS credentials (key.pem + certificate.pem for the name
"default") in a folder, without touching the user's default folder.

    python make_credentials.py DIR                    # tlspyo's own generator
    python make_credentials.py DIR --ironhouse BIN    # `ironhouse cert generate --tlspyo`

The first calls tlspyo.credentials.generate_tls_credentials (what
`python -m tlspyo --generate` does with XDG_DATA_HOME pointing elsewhere: an
RSA-4096 self-signed certificate, serial 0, subjectAltName DNS:default; needs
pyOpenSSL <= 26.1.0). The second runs ironhouse's generator, whose Ed25519
certificate tlspyo relays and endpoints accept too. Prints one JSON line
{"ok": true, "dir": DIR, "generator": ...}.
"""
import argparse
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--ironhouse", default=None, help="path of the ironhouse binary")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    os.makedirs(d, mode=0o700, exist_ok=True)
    if a.ironhouse:
        subprocess.run(
            [a.ironhouse, "cert", "generate", "--tlspyo", "--dir", d, "--force"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        gen = "ironhouse"
    else:
        from tlspyo.credentials import generate_tls_credentials

        generate_tls_credentials(d)
        os.chmod(os.path.join(d, "key.pem"), 0o600)
        gen = "tlspyo"
    for n in ("key.pem", "certificate.pem"):
        if os.path.getsize(os.path.join(d, n)) == 0:
            raise SystemExit(f"{n} is empty")
    sys.stdout.write(json.dumps({"ok": True, "dir": d, "generator": gen}) + "\n")


if __name__ == "__main__":
    main()
