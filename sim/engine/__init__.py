"""Simulation engines: `des` (SimPy, one process per patient and strategy)."""
