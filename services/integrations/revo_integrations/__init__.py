"""The integrations service: provider webhooks in, CI logs, notifications out (DESIGN.md §1)."""
