"""`python -m sim` ends without Python's shutdown collections walking every object left."""

from __future__ import annotations

import gc
import sys

import pytest

import sim.__main__


def test_the_command_freezes_what_is_left_before_it_exits(monkeypatch, capsys):
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(gc.isenabled()))
    monkeypatch.setattr(sys, "argv", ["adpath", "list"])
    with pytest.raises(SystemExit) as exit_:
        sim.__main__.entry()
    assert exit_.value.code in (0, None)
    assert "adult_conventional" in capsys.readouterr().out
    assert len(frozen) == 2  # after loading the modules, and on the way out
