"""`python -m revo_chat_gateway`: run the chat gateway until SIGTERM."""

from revo_chat_gateway.app import SERVICE, create_app
from revo_chat_gateway.settings import GatewaySettings
from revo_core.service import run_service

if __name__ == "__main__":
    run_service(SERVICE, GatewaySettings(), create_app)
