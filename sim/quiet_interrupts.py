"""Imported first by the local pool's fork server: it ignores Ctrl-C from then on.

Ctrl-C reaches every process of the terminal's group, the fork server too, which is
still importing the workers' modules in a sweep's first second; the parent alone decides
what Ctrl-C does (keep what finished, exit 130), so the fork server must not die of it
with a traceback. Workers forked from it ignore Ctrl-C too (`sim.app.sweep.executors._start_worker`).
It lives outside `sim.app.sweep`, whose
package imports would come first.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
