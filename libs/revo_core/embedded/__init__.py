"""Real infrastructure started on this machine: for `revo up` and for test fixtures."""
