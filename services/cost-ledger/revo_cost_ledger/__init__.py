"""revo cost-ledger: usage records, prices, budgets (reserve -> settle), reports, alerts."""
