"""revo's inference service: local vLLM engines and embeddings behind NATS."""
