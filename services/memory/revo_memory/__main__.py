"""`python -m revo_memory`: run the memory service until SIGTERM."""

from revo_core.service import run_service
from revo_memory.app import SERVICE, create_app
from revo_memory.settings import MemorySettings

if __name__ == "__main__":
    run_service(SERVICE, MemorySettings(), create_app)
