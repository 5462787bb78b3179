"""revo's shared runtime: the NATS bus, tracing, logging, settings and the service runner."""
