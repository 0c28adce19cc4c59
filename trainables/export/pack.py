"""Bit packing of integer codes and of the sparse index (numpy only, no torch).

The packed form is what a deployed model stores, so its size is the size the search
priced (``hardware.size``):

* integer weights as ``bits``-wide two's-complement codes (unsigned codes for the index),
  laid end to end with ``numpy.packbits`` (most significant bit first; the last byte is
  padded with zeros);
* the positions of the kept weights of an unstructured layer either as a bitmask (one bit
  per slot) or as a relative index (the gap to the previous kept weight), whichever
  ``hardware.size.sparse_index_bits`` counts as cheaper.

Relative index entries are ``relative_index_gap_bits`` wide and hold gaps 1..2^g-1; the
entry 0 is a filler that advances 2^g-1 slots without a weight (Deep Compression,
Han et al. 2016, stores a zero weight instead; a filler costs index bits only here).
The priced size leaves fillers out: they are rare at gaps this wide.
"""

from __future__ import annotations

import numpy as np

from hardware.size import relative_index_gap_bits, sparse_index_bits

MAX_CODE_BITS = 16
INDEX_KINDS = ("dense", "empty", "bitmask", "relative")


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_CODE_BITS:
        raise ValueError(f"bits={bits!r} must be an integer in 1..{MAX_CODE_BITS}")
    return bits


def pack_codes(codes: np.ndarray, bits: int, *, signed: bool = True) -> np.ndarray:
    """Pack integers (any shape, flattened in C order) into ``bits``-wide fields; returns uint8.

    Signed codes must lie in [-2^(b-1), 2^(b-1)-1], unsigned ones in [0, 2^b-1]."""
    bits = _check_bits(bits)
    codes = np.asarray(codes).reshape(-1).astype(np.int64)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if codes.size and (codes.min() < low or codes.max() > high):
        raise ValueError(f"codes span [{codes.min()}, {codes.max()}], outside the {bits}-bit "
                         f"{'signed' if signed else 'unsigned'} range [{low}, {high}]")
    fields = (codes & (2**bits - 1)).astype(">u2")  # two's complement, big-endian bytes
    planes = np.unpackbits(fields.view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - bits:]
    return np.packbits(planes.reshape(-1))


def unpack_codes(packed: np.ndarray, bits: int, count: int, *, signed: bool = True) -> np.ndarray:
    """Inverse of ``pack_codes``: the first ``count`` codes as int64."""
    bits = _check_bits(bits)
    planes = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=count * bits).reshape(count, bits)
    codes = planes.astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    if signed:
        codes = np.where(codes >= 2 ** (bits - 1), codes - 2**bits, codes)
    return codes


def index_kind(slots: int, nnz: int) -> str:
    """Which index form the priced size counts for ``nnz`` kept weights among ``slots``."""
    if nnz >= slots:
        return "dense"
    if nnz <= 0:
        return "empty"
    return "bitmask" if sparse_index_bits(slots, nnz) >= slots else "relative"


def encode_sparse_index(kept: np.ndarray) -> dict:
    """The index of a flat boolean ``kept`` vector: {"kind", "data" (uint8), "gap_bits"}."""
    kept = np.asarray(kept, dtype=bool).reshape(-1)
    slots, nnz = kept.size, int(kept.sum())
    kind = index_kind(slots, nnz)
    if kind in ("dense", "empty"):
        return {"kind": kind, "data": np.zeros(0, np.uint8), "gap_bits": 0}
    if kind == "bitmask":
        return {"kind": kind, "data": np.packbits(kept), "gap_bits": 0}
    gap_bits = relative_index_gap_bits(slots, nnz)
    longest = 2**gap_bits - 1
    gaps = np.diff(np.flatnonzero(kept), prepend=-1)
    fillers = (gaps - 1) // longest  # each advances `longest` slots; the last entry holds the rest
    entries = np.zeros(int(gaps.size + fillers.sum()), dtype=np.int64)
    entries[np.cumsum(fillers + 1) - 1] = gaps - fillers * longest
    return {"kind": kind, "data": pack_codes(entries, gap_bits, signed=False), "gap_bits": gap_bits}


def decode_sparse_index(index: dict, slots: int) -> np.ndarray:
    """Inverse of ``encode_sparse_index``: a flat boolean vector of ``slots``. The zero bits
    padding a relative index's last byte decode as fillers, which add no position."""
    kind = index["kind"]
    if kind not in INDEX_KINDS:
        raise ValueError(f"sparse index kind={kind!r}; valid choices: {list(INDEX_KINDS)}")
    if kind in ("dense", "empty"):
        return np.full(slots, kind == "dense")
    data = np.asarray(index["data"], dtype=np.uint8)
    if kind == "bitmask":
        return np.unpackbits(data, count=slots).astype(bool)
    gap_bits = int(index["gap_bits"])
    codes = unpack_codes(data, gap_bits, data.size * 8 // gap_bits, signed=False)
    positions = np.cumsum(np.where(codes == 0, 2**gap_bits - 1, codes)) - 1
    kept = np.zeros(slots, dtype=bool)
    kept[positions[(codes != 0) & (positions < slots)]] = True
    return kept
