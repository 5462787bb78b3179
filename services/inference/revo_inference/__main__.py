"""`python -m revo_inference`: run the inference service until SIGTERM."""

import os

# vLLM would install its own plain-text stdout handler; ours renders its warnings as JSON.
# Set before vLLM is imported, and inherited by the engine processes it spawns.
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

from revo_core.service import run_service
from revo_inference.app import SERVICE, create_app
from revo_inference.settings import InferenceSettings

# vLLM starts worker processes; the guard keeps them from re-running the service.
if __name__ == "__main__":
    run_service(SERVICE, InferenceSettings(), create_app)
