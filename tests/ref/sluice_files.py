"""The file formats the reference scripts read, written from their
descriptions (docs/artifacts.md), not from sluice's C code."""
import json
import struct

import numpy as np


def read_safetensors(path):
    """{name: float64 array} of a safetensors file of F32 tensors."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", name
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return out


def read_matrix(path):
    """The float32 matrix of an SLMX file (32-byte header, then rows x cols)."""
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:4] == b"SLMX", path
    rows, cols = struct.unpack("<QQ", raw[16:32])
    return np.frombuffer(raw[32:], dtype="<f4").reshape(rows, cols)
