"""revo's message contracts: every message on the bus is a msgspec Struct defined here."""
