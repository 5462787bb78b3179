"""`python -m revo_cost_ledger`: run the cost ledger until SIGTERM."""

from revo_core.service import run_service
from revo_cost_ledger.app import SERVICE, create_app
from revo_cost_ledger.settings import CostLedgerSettings

if __name__ == "__main__":
    run_service(SERVICE, CostLedgerSettings(), create_app)
