"""The `revo` command line: start the embedded platform, inspect it, talk to it."""
