"""adpath's simulator: scenario schema, compiled model, engines, runner and command line."""
