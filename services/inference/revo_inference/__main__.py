"""`python -m revo_inference`: run the inference service until SIGTERM."""

from revo_core.service import run_service
from revo_inference.app import SERVICE, create_app
from revo_inference.settings import InferenceSettings

# vLLM starts worker processes; the guard keeps them from re-running the service.
if __name__ == "__main__":
    run_service(SERVICE, InferenceSettings(), create_app)
