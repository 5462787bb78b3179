#!/usr/bin/env bash
# Run the whole suite. pytest's exit code 5 ("no tests collected") means the setup is
# broken (a path or plugin went missing), never a pass.
set -uo pipefail
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests: the test setup is broken" >&2
  exit 1
fi
exit "$status"
