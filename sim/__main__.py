"""`python -m sim`: the same as the `adpath` command."""

from sim.app.cli import main

main()
