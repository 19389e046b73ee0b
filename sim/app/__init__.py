"""What a user runs: the command line, the run pipeline, the run directory, sweeps."""
