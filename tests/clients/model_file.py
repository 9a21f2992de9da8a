"""What the client scripts share: a safetensors writer (no dependency beyond numpy)."""

import json
import struct

import numpy as np


def write_safetensors(path, tensors, metadata):
    """Writes `tensors` (name → array, stored as float32) with `metadata` to `path`."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
