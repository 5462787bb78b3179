"""Where notifications go: one module per channel (GitHub, Slack, Jira, generic webhook)."""
