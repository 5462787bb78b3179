"""`python -m revo_integrations`: run the integrations service until SIGTERM."""

from revo_core.service import run_service
from revo_integrations.app import SERVICE, create_app
from revo_integrations.settings import IntegrationsSettings

if __name__ == "__main__":
    run_service(SERVICE, IntegrationsSettings(), create_app)
