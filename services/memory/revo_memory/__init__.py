"""revo's memory service: what agents learn, stored, deduplicated and recalled by scope."""
