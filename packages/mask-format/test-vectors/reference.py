#!/usr/bin/env python3
"""An independent reader and writer of .umask files, written from SPEC.md alone (standard library
only). Running it checks both directions against the test vectors beside it:

    python3 packages/mask-format/test-vectors/reference.py

Not used by the TypeScript package; it exists to prove the specification is complete.
"""
import hashlib
import json
import math
import struct
import sys
import zlib
from pathlib import Path

MAGIC = b"\x89UMASK\r\n"
VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024


class UmaskError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


# ---- bit helpers (SPEC 1) ---------------------------------------------------------------------


def get_bit(bits, k):
    return (bits[k >> 3] >> (7 - (k & 7))) & 1


def ones_bitset(numel):
    out = bytearray(b"\xff" * ((numel + 7) // 8))
    if numel % 8:
        out[-1] &= (0xFF << (8 - numel % 8)) & 0xFF
    return out


# ---- golomb (SPEC 5.2) ------------------------------------------------------------------------


def remainder_width(m):
    return 0 if m == 1 else (m - 1).bit_length()  # ceil(log2 m)


def golomb_encode(positions, m):
    b = remainder_width(m)
    u = (1 << b) - m if b else 0
    out = []
    prev = -1
    for p in positions:
        g = p - prev - 1
        prev = p
        q, r = divmod(g, m)
        out.append("1" * q + "0")
        if b:
            out.append(format(r, f"0{b - 1}b") if r < u and b > 1 else "" if r < u else format(r + u, f"0{b}b"))
    stream = "".join(out)
    stream += "0" * (-len(stream) % 8)
    return bytes(int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)), len("".join(out))


def golomb_decode(payload, numel, minority, count, m):
    bits = "".join(format(byte, "08b") for byte in payload)
    b = remainder_width(m)
    u = (1 << b) - m if b else 0
    out = ones_bitset(numel) if minority == 0 else bytearray((numel + 7) // 8)
    j = 0
    prev = -1

    def take(n):
        nonlocal j
        if j + n > len(bits):
            raise UmaskError("BAD_PAYLOAD", "stream ends early")
        value = int(bits[j : j + n], 2) if n else 0
        j += n
        return value

    for _ in range(count):
        q = 0
        while take(1) == 1:
            q += 1
        r = 0
        if b:
            r = take(b - 1)
            if r >= u:
                r = ((r << 1) | take(1)) - u
        p = prev + 1 + q * m + r
        if p >= numel:
            raise UmaskError("BAD_PAYLOAD", "position past numel")
        prev = p
        if minority == 0:
            out[p >> 3] &= ~(0x80 >> (p & 7)) & 0xFF
        else:
            out[p >> 3] |= 0x80 >> (p & 7)
    if (j + 7) // 8 != len(payload) or any(c != "0" for c in bits[j:]):
        raise UmaskError("BAD_PAYLOAD", "bytes or nonzero padding after the last code")
    return bytes(out)


def choose_m(positions, numel):
    count = len(positions)
    if count == 0:
        return 1
    p = count / numel
    m0 = 1 if p >= 1 else max(1, math.ceil(math.log(2 - p) / -math.log1p(-p)))
    best = None
    for m in sorted({min(1 << 24, max(1, c)) for c in (m0 - 1, m0, m0 + 1, round(m0 / 2), 2 * m0)}):
        length = golomb_encode(positions, m)[1]
        if best is None or length < best[1]:
            best = (m, length)
    return best[0]


# ---- header JSON with ECMAScript number form (SPEC 3) ----------------------------------------


def js_number(x):
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int) and abs(x) < 2**53:
        return str(x)
    x = float(x)
    if x == 0:
        return "0"
    digits, exponent = _shortest(x)
    n = exponent + 1  # position of the decimal point after the first digit
    sign = "-" if x < 0 else ""
    if -6 < n <= 21:  # ECMAScript: fixed notation for 1e-6 <= |x| < 1e21
        if n <= 0:
            return f"{sign}0.{'0' * -n}{digits}"
        if n >= len(digits):
            return sign + digits + "0" * (n - len(digits))
        return f"{sign}{digits[:n]}.{digits[n:]}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _shortest(x):
    mantissa, exponent = f"{abs(x):.17e}".split("e")
    for precision in range(1, 18):  # shortest repr that round-trips, as repr() finds
        candidate = f"{abs(x):.{precision - 1}e}"
        if float(candidate) == abs(x):
            mantissa, exponent = candidate.split("e")
            break
    return mantissa.replace(".", "").rstrip("0") or "0", int(exponent)


def js_json(value):
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return js_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(js_json(v) for v in value) + "]"
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + js_json(v) for k, v in value.items()) + "}"


# ---- half floats (SPEC 7) ---------------------------------------------------------------------


def f16_bytes(values):
    return b"".join(struct.pack("<e", v) for v in values)  # struct rounds to nearest even


# ---- writer -----------------------------------------------------------------------------------


def encode(base_model, tensors, recipe=None, metrics=None, head=None):
    """tensors: list of (name, shape, packed bits bytes); head: (class_names, template, features)."""
    records, sections, offset = [], [], 0
    for name, shape, bits in tensors:
        numel = math.prod(shape)
        zeros = numel - sum(get_bit(bits, k) for k in range(numel))
        minority = 0 if 2 * zeros <= numel else 1
        positions = [k for k in range(numel) if get_bit(bits, k) == minority]
        m = choose_m(positions, numel)
        golomb, _ = golomb_encode(positions, m)
        bitmap = bytearray(bits[: (numel + 7) // 8])
        if numel % 8:
            bitmap[-1] &= (0xFF << (8 - numel % 8)) & 0xFF
        if len(golomb) < len(bitmap):
            payload, extra = golomb, {"encoding": "golomb", "m": m}
        else:
            payload, extra = bytes(bitmap), {"encoding": "bitmap"}
        record = {"name": name, "shape": list(shape), "numel": numel, "zeros": zeros, **extra}
        record.update({"offset": offset, "length": len(payload), "crc32": zlib.crc32(payload)})
        records.append(record)
        sections.append(payload)
        offset += len(payload)
    header = {"baseModel": {"name": base_model["name"], "fingerprint": base_model["fingerprint"]}, "tensors": records}
    if recipe is not None:
        header["recipe"] = recipe
    if metrics is not None:
        header["metrics"] = metrics
    if head is not None:
        class_names, template, features = head
        payload = f16_bytes(features)
        header["head"] = {
            "classNames": class_names,
            "template": template,
            "dim": len(features) // len(class_names),
            "dtype": "F16",
            "offset": offset,
            "length": len(payload),
            "crc32": zlib.crc32(payload),
        }
        sections.append(payload)
    text = js_json(header).encode("utf-8")
    start = MAGIC + struct.pack("<II", VERSION, len(text)) + text
    return start + struct.pack("<I", zlib.crc32(start)) + b"".join(sections)


# ---- reader -----------------------------------------------------------------------------------


def decode(data):
    """Returns (header dict, {name: packed bits}, head features list or None)."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise UmaskError("BAD_MAGIC", "not a .umask file")
    if len(data) < 16:
        raise UmaskError("TRUNCATED", "preamble")
    version, h = struct.unpack_from("<II", data, 8)
    if version != VERSION:
        raise UmaskError("BAD_VERSION", str(version))
    if h > MAX_HEADER_BYTES:
        raise UmaskError("LIMIT_EXCEEDED", "header")
    if 20 + h > len(data):
        raise UmaskError("TRUNCATED", "header")
    if struct.unpack_from("<I", data, 16 + h)[0] != zlib.crc32(data[: 16 + h]):
        raise UmaskError("CHECKSUM_MISMATCH", "header")
    header = json.loads(data[16 : 16 + h].decode("utf-8"))
    start = 20 + h
    expected = 0
    sections = header["tensors"] + ([header["head"]] if "head" in header else [])
    for s in sections:
        if s["offset"] != expected:
            raise UmaskError("BAD_LAYOUT", "sections are not contiguous")
        expected += s["length"]
    if start + expected > len(data):
        raise UmaskError("TRUNCATED", "payload")
    if start + expected < len(data):
        raise UmaskError("TRAILING_BYTES", "payload")
    masks = {}
    for t in header["tensors"]:
        payload = data[start + t["offset"] : start + t["offset"] + t["length"]]
        if zlib.crc32(payload) != t["crc32"]:
            raise UmaskError("CHECKSUM_MISMATCH", t["name"])
        numel, zeros = math.prod(t["shape"]), t["zeros"]
        if t["encoding"] == "bitmap":
            bits = payload
        elif t["encoding"] == "golomb":
            minority = 0 if 2 * zeros <= numel else 1
            bits = golomb_decode(payload, numel, minority, zeros if minority == 0 else numel - zeros, t["m"])
        else:
            raise UmaskError("UNSUPPORTED_ENCODING", t["encoding"])
        if numel - sum(get_bit(bits, k) for k in range(numel)) != zeros:
            raise UmaskError("BAD_PAYLOAD", "zero count")
        masks[t["name"]] = bytes(bits)
    features = None
    if "head" in header:
        hd = header["head"]
        payload = data[start + hd["offset"] : start + hd["offset"] + hd["length"]]
        if zlib.crc32(payload) != hd["crc32"]:
            raise UmaskError("CHECKSUM_MISMATCH", "head")
        features = [v for (v,) in struct.iter_unpack("<e", payload)]
    return header, masks, features


# ---- fingerprint (SPEC 6) ---------------------------------------------------------------------


def fingerprint(tensors):
    """tensors: list of (name, shape, float values in row-major order)."""
    h = hashlib.sha256(b"umask-fingerprint-v1\n")
    for name, shape, values in tensors:
        encoded = name.encode("utf-8")
        h.update(struct.pack("<I", len(encoded)) + encoded + struct.pack(f"<I{len(shape)}I", len(shape), *shape))
        h.update(hashlib.sha256(struct.pack(f"<{len(values)}f", *values)).digest())
    return h.hexdigest()


# ---- self-check against the vectors ----------------------------------------------------------


def main():
    here = Path(__file__).parent
    for description_path in sorted(here.glob("*.json")):
        d = json.loads(description_path.read_text())
        data = (here / d["file"]).read_bytes()
        assert len(data) == d["byteLength"] and hashlib.sha256(data).hexdigest() == d["sha256"]
        header, masks, features = decode(data)
        for t, rec in zip(d["tensors"], header["tensors"]):
            bits = masks[t["name"]]
            assert bits.hex() == t["bitsHex"], t["name"]
            assert [k for k in range(t["numel"]) if get_bit(bits, k) == 0] == t["zeroPositions"]
            assert rec["encoding"] == t["encoding"] and rec.get("m") == t.get("m") and rec["zeros"] == t["zeros"]
            start = t["payloadOffset"]
            assert data[start : start + rec["length"]].hex() == t["payloadHex"]
        if "head" in d:
            assert features == d["head"]["textFeatures"]
        head = d.get("head")
        rebuilt = encode(
            d["baseModel"],
            [(t["name"], t["shape"], bytes.fromhex(t["bitsHex"])) for t in d["tensors"]],
            d.get("recipe"),
            d.get("metrics"),
            (head["classNames"], head["template"], head["textFeatures"]) if head else None,
        )
        assert rebuilt == data, f"{d['file']}: re-encoding differs"
        for cut in range(len(data)):
            try:
                decode(data[:cut])
                raise AssertionError(f"{d['file']} cut at {cut} decoded")
            except UmaskError as e:
                assert e.code == "TRUNCATED", (cut, e.code)
        print(f"{d['file']}: decoded and re-encoded byte for byte")
    assert js_number(0.00008) == "0.00008" and js_number(1e-7) == "1e-7" and js_number(1.5e21) == "1.5e+21"
    assert js_number(2.0**60) == "1152921504606847000" and js_number(-0.5) == "-0.5" and js_number(1e-6) == "0.000001"
    w = [0.5, -1.25, 3.0]
    print("fingerprint of a toy tensor:", fingerprint([("w", [3], w)]))


if __name__ == "__main__":
    sys.exit(main())
