"""Random numbers as a function: Philox4x32-10 of a key and a counter.

Every uniform a virtual patient uses is a pure function of (seed, replicate, patient,
purpose, occurrence, offset): the key is (seed, replicate), the counter is (patient,
purpose, occurrence, offset // 2), and each Philox block of four 32-bit words gives two
doubles (offset % 2 picks which). Nothing is drawn in sequence, so a patient's numbers
do not depend on chunking, on workers, or on how many numbers another rule drew: a new
rule takes a new purpose code and moves nothing else, and an occurrence (the k-th
episode of a drug, the k-th flare) needs no overflow stream.

Philox4x32-10 is the counter-based generator of Salmon, Moraes, Dror and Shaw,
"Parallel random numbers: as easy as 1, 2, 3" (SC'11), as in their Random123 library;
`tests/test_random_numbers.py` checks it against Random123's known-answer vectors.
There is one scalar version (compiled with Numba, or plain Python under
`NUMBA_DISABLE_JIT=1`) and one for NumPy arrays; they give the same bits.
"""

from __future__ import annotations

import numba
import numpy as np

GENERATOR = "philox4x32-10"

#: Seeds are one 32-bit word of the key (the other is the replicate).
MAX_SEED = 2**32 - 1

_MASK = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_S32 = np.uint64(32)
_S5 = np.uint64(5)
_S6 = np.uint64(6)
_TWO26 = np.uint64(67108864)
_ONE = np.uint64(1)
_TWO_POW_MINUS_53 = 2.0 ** -53
ROUNDS = 10


@numba.njit(cache=True, inline="always")
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Return the Philox4x32-10 block (four 32-bit words, as uint64) of counter
    (c0, c1, c2, c3) under key (k0, k1); every argument is a 32-bit unsigned word."""
    c0, c1, c2, c3 = np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3)
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(ROUNDS):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK)
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@numba.njit(cache=True, inline="always")
def uniform(seed, replicate, patient, purpose, occurrence, offset):
    """Return the uniform in (0, 1) of one patient's `purpose` (a rule's code), its
    `occurrence` (0, 1, ...) and `offset` (the how-many-th number of that occurrence)."""
    block = np.uint64(offset) >> _ONE
    x0, x1, x2, x3 = philox4x32_10(patient, purpose, occurrence, block, seed, replicate)
    if np.uint64(offset) & _ONE:
        x0, x1 = x2, x3
    return _double(x0, x1)


@numba.njit(cache=True)
def uniform_pair(seed, replicate, patient, purpose, occurrence, offset):
    """The uniforms at `offset` and `offset + 1` for an even `offset`, from one Philox block:
    `(uniform(..., offset), uniform(..., offset + 1))` at half the cost."""
    x0, x1, x2, x3 = philox4x32_10(patient, purpose, occurrence, np.uint64(offset) >> _ONE, seed, replicate)
    return _double(x0, x1), _double(x2, x3)


@numba.njit(cache=True)
def decides(probability):
    """Whether `u < probability` (or `u >= probability`) depends on the uniform `u`: not when
    `probability` is 0 or less, 1 or more, or NaN, since every uniform lies strictly inside (0, 1).
    An engine may then skip drawing `u` and compare any number in (0, 1), such as `ANY_UNIFORM`."""
    return 0.0 < probability < 1.0


#: A stand-in uniform for a comparison that `decides` says no uniform can change.
ANY_UNIFORM = 0.5


@numba.njit(cache=True, inline="always")
def _double(high, low):
    # 27 + 26 bits make the 53 of a double; the half step keeps 0 and 1 out, so an
    # inverse CDF never sees either end of its domain.
    n = (high >> _S5) * _TWO26 + (low >> _S6)
    return (np.float64(n) + 0.5) * _TWO_POW_MINUS_53


def philox_blocks(counter: tuple, key: tuple) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 on arrays: `counter` is four arrays (or ints) of 32-bit words and
    `key` two; return the four output words as uint64 arrays (broadcast shape)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0, k1 = (np.asarray(k, dtype=np.uint64) for k in key)
    for _ in range(ROUNDS):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK)
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


def uniforms(seed, replicate, patient, purpose, occurrence, offset) -> np.ndarray:
    """The array version of `uniform`: every argument an int or an array (broadcast);
    bit-identical to `uniform` element by element."""
    offset = np.asarray(offset, dtype=np.uint64)
    x0, x1, x2, x3 = philox_blocks((patient, purpose, occurrence, offset >> _ONE), (seed, replicate))
    second = (offset & _ONE).astype(bool)
    high = np.where(second, x2, x0)
    low = np.where(second, x3, x1)
    n = (high >> _S5) * _TWO26 + (low >> _S6)
    return (n.astype(np.float64) + 0.5) * _TWO_POW_MINUS_53
