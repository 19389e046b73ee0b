"""Where Numba keeps the compiled engine's machine code: a directory per version of its source.

Numba's own cache (`cache=True`, beside each module in `__pycache__`) is checked against the
timestamp of the module that defines a function only, not of the rules it calls and compiles
in: after an update that changes a rule in `sim/rules/durations.py`, the engine functions of
`sim/engine/des_rules.py` that call it would load their old machine code and draw from the old
rule, silently. So the cache lives in a directory named by a hash of every source file the
compiled code is built from; any change to them starts a fresh cache (one cold compile).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# Every module whose functions or constants Numba compiles.
_COMPILED_SOURCES = ("rules/*.py", "engine/*.py", "random_numbers.py", "guard.py", "tables.py")
# Modules of those folders that Numba never compiles: building the tables from the engine's
# columns is NumPy and pandas, and editing it should not cost a cold compile.
_PLAIN_PYTHON = ("engine/records.py",)


def source_hash() -> str:
    """The first 16 hex digits of SHA-256 over the compiled code's source files (names and bytes)."""
    digest = hashlib.sha256()
    for pattern in _COMPILED_SOURCES:
        for path in sorted(_PACKAGE.glob(pattern)):
            if path.relative_to(_PACKAGE).as_posix() in _PLAIN_PYTHON:
                continue
            digest.update(path.relative_to(_PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """The directory under which each source version's cache goes: `$NUMBA_CACHE_DIR` as the user
    set it, else `$XDG_CACHE_HOME/adpath/numba` (`~/.cache/adpath/numba`)."""
    given = os.environ.get("ADPATH_NUMBA_CACHE_ROOT") or os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "adpath" / "numba"


def use_source_keyed_cache() -> None:
    """Point Numba's cache at this source version's directory (before any rule is compiled)."""
    if os.environ.get("ADPATH_NUMBA_CACHE_ROOT") is None:
        # Remembered so that worker processes, which inherit the environment, find the same root.
        os.environ["ADPATH_NUMBA_CACHE_ROOT"] = str(cache_root())
    os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ["ADPATH_NUMBA_CACHE_ROOT"]) / source_hash())
    if "numba" in sys.modules:
        sys.modules["numba"].core.config.reload_config()
