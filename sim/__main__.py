"""`python -m sim`: the same as the `adpath` command."""

import gc
import os
import signal
import sys


def entry() -> None:
    """Run the `adpath` command. Ctrl-C while its modules are still loading (about a second)
    ends it with one line and exit code 130, as Ctrl-C does later, not with a traceback."""
    interrupts = []

    def on_interrupt(signum, frame):
        interrupts.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        from sim.app.cli import main
    except KeyboardInterrupt:
        _interrupted_while_loading()
    signal.signal(signal.SIGINT, previous)
    if interrupts:
        # The interrupt was raised where Python ignores exceptions (an import lock's
        # weak-reference callback): without this the command would run on.
        _interrupted_while_loading()
    gc.freeze()  # the loaded modules' objects live as long as the process: no collection walks them
    try:
        main()
    except SystemExit as exc:
        # The process ends here; the collections of Python's shutdown walked every object left
        # (Numba's, pandas', the run's) and took 0.4-1.0 s after a run of a million patients.
        gc.freeze()
        if exc.code != 130:
            raise
        # An interrupt that landed in a (lazy) import can leave the interpreter to end
        # itself by SIGINT at shutdown (exit -2) instead of 130; the command has already
        # said so and removed what it was writing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def _interrupted_while_loading() -> None:
    sys.stderr.write("interrupted: nothing was written\n")
    sys.stderr.flush()
    # Not sys.exit: an interrupt during an import can leave the interpreter to end
    # itself by SIGINT at shutdown (exit -2, seen under load); nothing is open to close.
    os._exit(130)


if __name__ == "__main__":
    entry()
