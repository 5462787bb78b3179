"""A local embedding model (all-MiniLM-L6-v2 by default) run with torch in a worker thread.

Sentence embeddings = mean of the token embeddings under the attention mask, L2-normalized,
as sentence-transformers defines them for this model. torch releases the GIL while it
computes, so the event loop keeps streaming chat tokens meanwhile.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import AutoModel, AutoTokenizer

from revo_inference.config import ModelSpec


class LocalEmbedder:
    def __init__(self, spec: ModelSpec, model_path: str, threads: int = 1) -> None:
        self.spec = spec
        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        self._model = AutoModel.from_pretrained(model_path).eval()
        self.dimensions: int = self._model.config.hidden_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{spec.name}")
        self._threads = threads

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts`, and the number of tokens they took."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._embed_sync, texts)

    def _embed_sync(self, texts: list[str]) -> tuple[list[list[float]], int]:
        torch.set_num_threads(self._threads)
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.spec.max_context,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return vectors.tolist(), int(batch["attention_mask"].sum())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
