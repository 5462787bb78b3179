"""Test support: fixtures that start real components, and an OTLP/HTTP receiver."""
