"""Read a .safetensors file with torch alone (the format: an 8-byte little-endian header length, a
JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes), so that
importing needs neither transformers nor the safetensors package."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import torch

from ..errors import UserError

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER = 100 * 2**20  # the format's own limit


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """{name: tensor} of a .safetensors file; a damaged file is one line (UserError)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None

    def damaged(why: str) -> UserError:
        return UserError(f"{path} is not a readable safetensors file ({why})")

    if len(data) < 8:
        raise damaged("shorter than its header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(MAX_HEADER, len(data) - 8):
        raise damaged("its header length is past the end of the file")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError):
        raise damaged("its header is not JSON") from None
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    body = memoryview(data)[8 + size :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = [int(n) for n in entry["shape"]]
            begin, end = (int(n) for n in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise damaged(f"the entry of {name!r} is malformed") from None
        width = torch.empty((), dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(body) or end - begin != math.prod(shape) * width:
            raise damaged(f"the bytes of {name!r} do not match its shape {shape}")
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        if sys.byteorder == "big" and width > 1:  # pragma: no cover - the file is little-endian
            flat = flat.view(torch.uint8).view(-1, width).flip(-1).reshape(-1).view(dtype)
        tensors[name] = flat.reshape(shape)
    return tensors
