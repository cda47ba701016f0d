#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus: small valid files of each format, made here (nothing
downloaded). Usage: make_corpus.py OUT_DIR  (creates OUT_DIR/<target>/...)"""
import gzip
import struct
import sys
import zlib
from pathlib import Path


def idx(sizes, payload):
    return bytes([0, 0, 8, len(sizes)]) + b"".join(struct.pack(">I", s) for s in sizes) + payload


def cifar_records(n, label_bytes):
    out = b""
    for r in range(n):
        labels = bytes([r % 10] * label_bytes)
        out += labels + bytes((r * 7 + p) % 256 for p in range(3 * 32 * 32))
    return out


def frame(archive):
    return b"ANGCKPT1" + struct.pack("<QI", len(archive), zlib.crc32(archive)) + archive


METRICS_HEADER = b"epoch,lr,train_loss,train_acc,test_acc,wc_intra,w_inter,c_inter,seconds,p_at_1,r_precision,map_at_r\n"


def corpus():
    images = idx([2, 28, 28], bytes(range(256)) * 6 + bytes(2 * 784 - 1536))
    labels = idx([5], bytes([0, 9, 3, 3, 1]))
    yield "fashion_mnist", "images.gz", gzip.compress(images, mtime=0)
    yield "fashion_mnist", "labels.gz", gzip.compress(labels, mtime=0)
    yield "fashion_mnist", "labels.idx", labels
    yield "fashion_mnist", "two-members.gz", gzip.compress(labels[:7], mtime=0) + gzip.compress(labels[7:], mtime=0)
    yield "cifar", "cifar10-2.bin", cifar_records(2, 1)
    yield "cifar", "cifar100-1.bin", cifar_records(1, 2)
    yield "checkpoint", "empty-archive.pt", frame(b"")
    yield "checkpoint", "zip-like.pt", frame(b"PK\x03\x04" + bytes(60))
    rows = b"1,0.1,2.3,0.1,0.1,0.5,1.5,1.4,3.2,0.1,0.1,0.05\n2,0.05,1.9,0.3,0.3,0.4,1.5,1.4,3.1,nan,nan,nan\n"
    old_rows = b"1,0.1,2.3,0.1,0.1,0.5,1.5,1.4,3.2\n"
    yield "run_csv", "metrics-2.csv", bytes([2]) + METRICS_HEADER + rows
    old_header = b"epoch,lr,train_loss,train_acc,test_acc,wc_intra,w_inter,c_inter,seconds\n"
    yield "run_csv", "metrics-old.csv", bytes([1]) + old_header + old_rows
    yield "run_csv", "steps.csv", bytes([1]) + b"epoch,step,loss,accuracy\n1,1,2.3,0.1\n1,2,2.2,0.2\n2,1,2.0,0.3\n"


def main():
    out = Path(sys.argv[1])
    for target, name, data in corpus():
        (out / target).mkdir(parents=True, exist_ok=True)
        (out / target / name).write_bytes(data)


if __name__ == "__main__":
    main()
