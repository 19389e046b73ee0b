"""Numba's cache is keyed by the compiled code's sources: a changed rule never loads old machine code."""

from __future__ import annotations

import os

import numba

import sim.numba_cache as cache


def _package(tmp_path, rule_text: str):
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "engine").mkdir(exist_ok=True)
    (tmp_path / "rules" / "durations.py").write_text(rule_text)
    (tmp_path / "engine" / "des_rules.py").write_text("from sim.rules.durations import quantile\n")
    return tmp_path


def test_a_changed_rule_gives_another_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_PACKAGE", _package(tmp_path, "def quantile(u): return u\n"))
    before = cache.source_hash()
    assert cache.source_hash() == before
    (tmp_path / "rules" / "durations.py").write_text("def quantile(u): return 1 - u\n")
    assert cache.source_hash() != before


def test_numba_uses_the_directory_of_this_source_version():
    assert os.environ["NUMBA_CACHE_DIR"].endswith(cache.source_hash())
    assert numba.config.CACHE_DIR == os.environ["NUMBA_CACHE_DIR"]


def test_the_tables_builder_is_no_part_of_the_key(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_PACKAGE", _package(tmp_path, "def quantile(u): return u\n"))
    before = cache.source_hash()
    (tmp_path / "engine" / "records.py").write_text("import numpy\n")
    assert cache.source_hash() == before
