"""`python -m sim`: the same as the `adpath` command."""

from sim.cli import main

main()
