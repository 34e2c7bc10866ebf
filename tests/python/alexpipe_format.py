"""An independent reader of the alexpipe dataset format, written from docs/FORMAT.md alone.

It uses only the standard library and numpy, so the tests compare the Rust writer against a
second implementation of the specification rather than against itself.
"""

import json
import struct
import zlib
from pathlib import Path

import numpy as np

HEADER = struct.Struct("<8sIIQIIQQQII")  # 64 bytes
ENTRY = struct.Struct("<QQIIQ")  # 32 bytes
MODES = {0: "raw", 1: "jpeg", 2: "original"}

def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) from the third-party `crc32c` package: an independent implementation."""
    import crc32c as _crc

    return _crc.crc32c(data)


def unescape_tsv(cell: str) -> str:
    out, i = [], 0
    while i < len(cell):
        c = cell[i]
        if c == "\\" and i + 1 < len(cell):
            n = cell[i + 1]
            if n in "tnr\\":
                out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[n])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def check_manifest_seal(raw: bytes) -> None:
    """The manifest's own checksum: the digits after the last "manifest_crc32c" key, read as zeros."""
    key = b'"manifest_crc32c"'
    at = raw.rindex(key) + len(key)
    rest = raw[at:]
    stripped = rest.lstrip()
    assert stripped[:1] == b":", "checksum key not followed by ':'"
    value = stripped[1:].lstrip()
    assert value[:1] == b'"' and value[9:10] == b'"', "checksum value is not a string"
    digits = value[1:9]
    assert all(c in b"0123456789abcdef" for c in digits), digits
    start = len(raw) - len(value) + 1
    zeroed = raw[:start] + b"00000000" + raw[start + 8 :]
    assert crc32c(zeroed) == int(digits, 16), "manifest.json fails its own checksum"


class Dataset:
    def __init__(self, path, check_crc=True):
        self.dir = Path(path)
        raw = (self.dir / "manifest.json").read_bytes()
        check_manifest_seal(raw)
        self.manifest = json.loads(raw)
        m = self.manifest
        assert m["format"] == "alexpipe-dataset" and m["format_version"] == 1
        self.size = m["size"]
        self.mode = m["mode"]
        self.records = []  # (label, bytes)
        for info in m["shards"]:
            data = (self.dir / info["file"]).read_bytes()
            assert len(data) == info["bytes"], info
            if check_crc:
                assert crc32c(data) == info["crc32c"], f"{info['file']} checksum"
            (magic, version, mode, count, size, channels, table_off, data_off, file_len, table_crc, hcrc) = HEADER.unpack(
                data[:64]
            )
            assert magic == b"ALXSHARD" and version == 1 and channels == 3 and table_off == 64
            assert crc32c(data[:60]) == hcrc
            assert MODES[mode] == self.mode and size == self.size and count == info["num_records"]
            assert file_len == len(data)
            table = data[64 : 64 + 32 * count]
            assert crc32c(table) == table_crc
            for i in range(count):
                off, length, label, crc, gidx = ENTRY.unpack_from(table, 32 * i)
                assert gidx == info["first_record"] + i
                rec = data[off : off + length]
                if check_crc:
                    assert crc32c(rec) == crc
                self.records.append((label, rec))
        assert len(self.records) == m["num_records"]
        self.mean_image = np.load(self.dir / "mean_image.npy")

    def __len__(self):
        return len(self.records)

    def pixels(self, i):
        label, rec = self.records[i]
        assert self.mode == "raw"
        return np.frombuffer(rec, dtype=np.uint8).reshape(self.size, self.size, 3), label

    def index(self):
        lines = (self.dir / "index.tsv").read_text(encoding="utf-8").splitlines()
        assert lines[0] == "record\tlabel\tclass\tshard\tpath"
        rows = [line.split("\t") for line in lines[1:]]
        return [(int(r[0]), int(r[1]), unescape_tsv(r[2]), r[3], unescape_tsv(r[4])) for r in rows]

    def rejects(self):
        lines = (self.dir / "rejects.tsv").read_text(encoding="utf-8").splitlines()
        assert lines[0] == "path\treason\tdetail"
        return [(unescape_tsv(r[0]), r[1], unescape_tsv(r[2])) for r in (line.split("\t") for line in lines[1:])]
