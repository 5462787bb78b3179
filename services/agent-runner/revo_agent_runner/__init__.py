"""The agent-runner service: executes runs (DESIGN.md §6) from the RUNS work queue."""
