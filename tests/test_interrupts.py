"""Ctrl-C in a sweep's first seconds (loading, planning, starting): one line, exit code 130.

The sweep is `adult_psa` (1,000 samples of 2,000 patients, about a minute): it cannot finish before the
interrupt, so the test never passes by skipping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("delay", [0.3, 1.2, 2.5])
def test_ctrl_c_while_a_sweep_starts_ends_in_one_line(tmp_path, delay):
    out = tmp_path / "sweep"
    process = subprocess.Popen([sys.executable, "-m", "sim", "sweep", "adult_psa", "--out", str(out), "--workers", "1",
                                "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # its own group, as a terminal's Ctrl-C reaches
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    assert process.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert text.strip().startswith("interrupted") and len(text.strip().splitlines()) == 1, text
