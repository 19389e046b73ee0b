"""Philox4x32-10: Random123's known answers, scalar and array versions bit-identical,
and the uniforms' properties the engines rely on."""

import os
import subprocess
import sys

import numpy as np
import pytest

from sim.random_numbers import philox4x32_10, philox_blocks, uniform, uniforms

# Random123 1.14, tests/kat_vectors: philox4x32 10 <counter> <key> <expected>.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_scalar_philox_gives_random123_known_answers(counter, key, expected):
    assert tuple(int(x) for x in philox4x32_10(*counter, *key)) == expected


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_array_philox_gives_random123_known_answers(counter, key, expected):
    out = philox_blocks(tuple(np.array([c, c]) for c in counter), key)
    assert [tuple(int(w[i]) for w in out) for i in range(2)] == [expected, expected]


def test_scalar_and_array_uniforms_are_bit_identical():
    rng = np.random.default_rng(5)
    args = [rng.integers(0, 2**32, 500, dtype=np.uint64) for _ in range(6)]
    args[5] = rng.integers(0, 64, 500, dtype=np.uint64)
    vector = uniforms(*args)
    scalar = np.array([uniform(*(int(a[i]) for a in args)) for i in range(500)])
    assert np.array_equal(vector.view(np.uint64), scalar.view(np.uint64))


def test_the_plain_python_rules_give_the_same_bits():
    code = ("from sim.random_numbers import uniform; "
            "print(repr([float(uniform(7, 2, p, 3, 11, o)) for p in range(3) for o in range(4)]))")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert plain.stdout.strip() == repr([float(uniform(7, 2, p, 3, 11, o)) for p in range(3) for o in range(4)])


def test_uniforms_are_strictly_inside_the_unit_interval_and_uniform():
    n = 200_000
    u = uniforms(1, 0, np.arange(n), 4, 0, 0)
    assert 0.0 < u.min() and u.max() < 1.0
    # Mean 1/2, variance 1/12: |mean - 1/2| < 4 SE with SE = sqrt(1/12 / n).
    assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - n / 20) ** 2 / (n / 20)).sum()
    assert chi2 < 43.8  # the 99.9th percentile of chi-square with 19 degrees of freedom


def test_every_argument_changes_the_number():
    base = (3, 1, 10, 2, 5, 0)
    others = {uniform(*base[:i], base[i] + 1, *base[i + 1:]) for i in range(6)}
    assert uniform(*base) not in others and len(others) == 6


def test_neighbouring_purposes_and_occurrences_are_uncorrelated():
    n = 100_000
    patients = np.arange(n)
    a, b, c = uniforms(9, 0, patients, 1, 0, 0), uniforms(9, 0, patients, 2, 0, 0), uniforms(9, 0, patients, 1, 1, 0)
    for x, y in ((a, b), (a, c), (a, uniforms(9, 0, patients, 1, 0, 1))):
        assert abs(np.corrcoef(x, y)[0, 1]) < 4 / np.sqrt(n)
