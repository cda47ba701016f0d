"""Fashion-MNIST's gzip IDX files (Debian's dataset-fashion-mnist) as tensors."""

import gzip
import math
import os
import struct

import numpy as np
import torch

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file of unsigned bytes (gzip) as a numpy array of its shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{data[3]}I", data[4:4 + 4 * data[3]])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * data[3])
    if array.size != math.prod(shape):
        raise ValueError(f"{path}: {array.size} bytes for the shape {shape} (truncated?)")
    return array.reshape(shape)


def load_split(folder, prefix, limit):
    """Images [N, 1, 28, 28] in [0, 1] and labels [N] of the split's first `limit` (0: all)."""
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))[:limit or None]
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))[:limit or None]
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} {prefix} images but {len(labels)} labels")
    return torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
