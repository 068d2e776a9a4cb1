"""Print the pickle bodies used as test vectors by
crates/ironhouse-relay/src/tlspyo/wire_tests.rs (`python3 gen_wire_vectors.py`).

Each body is what CPython's pickle.dumps writes for a tlspyo 0.3.0 frame tuple
(client.py / server.py build them the same way), in pickle protocols 2 to 5.
Standard library only.
"""
import pickle

G = "grp"  # one str object used twice -> the second use is a memo reference (BINGET)
CASES = [
    ("hello_tuple", (1, "HELLO", None, ("g1", "g2"))),
    ("hello_list", (2, "HELLO", None, ["g1", "g2", "g3"])),
    ("hello_memo", (3, "HELLO", None, (G, G))),
    ("obj_dict", (4, "OBJ", {"a": 3, "b": -1, "c": 0}, pickle.dumps(1))),
    ("obj_long1_stamp", (2**31 + 5, "OBJ", {"g": 1}, b"\x01\x02")),
    ("obj_big_stamp", (2**63 + 7, "OBJ", {"g": 1}, b"")),
    ("obj_neg_big", (9, "OBJ", {"g": -(2**40)}, b"x" * 300)),
    ("ntf", (5, "NTF", {"g1": -1, "g2": 5}, pickle.dumps(None))),
    ("ack", (7, "ACK", None, None)),
    ("relay_obj", (11, "OBJ", b"\x80\x04K\x2a.")),
]
# Protocol 2 has no bytes opcodes: it writes bytes as
# _codecs.encode(str, 'latin1') (GLOBAL + REDUCE), which the codec refuses.
print("const VECTORS: &[(&str, &str)] = &[")
for proto in (2, 3, 4, 5):
    for name, tup in CASES:
        if proto == 2 and name not in ("hello_tuple", "hello_memo", "ack", "obj_dict"):
            continue
        print(f'    ("{name}_p{proto}", "{pickle.dumps(tup, protocol=proto).hex()}"),')
print("];")


class Evil:
    """What an attacker would send: unpickling it calls os.system."""

    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


print("const EVIL: &[(&str, &str)] = &[")
for proto in (2, 4):
    print(f'    ("evil_obj_p{proto}", "{pickle.dumps((1, "OBJ", {"g": 1}, Evil()), protocol=proto).hex()}"),')
    print(f'    ("evil_dest_p{proto}", "{pickle.dumps((1, "NTF", Evil(), None), protocol=proto).hex()}"),')
print("];")
