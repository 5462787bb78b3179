"""`python -m revo_agent_runner`: run the agent-runner until SIGTERM."""

from revo_agent_runner.app import SERVICE, create_app
from revo_agent_runner.settings import AgentRunnerSettings
from revo_core.service import run_service

if __name__ == "__main__":
    run_service(SERVICE, AgentRunnerSettings(), create_app)
