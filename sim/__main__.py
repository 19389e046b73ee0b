"""`python -m sim`: the same as the `adpath` command."""

import os
import sys


def entry() -> None:
    """Run the `adpath` command. Ctrl-C while its modules are still loading (about a second)
    ends it with one line and exit code 130, as Ctrl-C does later, not with a traceback."""
    try:
        from sim.app.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was written\n")
        sys.stderr.flush()
        # Not sys.exit: an interrupt during an import can leave the interpreter to end
        # itself by SIGINT at shutdown (exit -2, seen under load); nothing is open to close.
        os._exit(130)
    main()


if __name__ == "__main__":
    entry()
