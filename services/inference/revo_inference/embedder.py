"""A local embedding model (all-MiniLM-L6-v2 by default) run with torch in a worker thread.

Sentence embeddings = mean of the token embeddings under the attention mask, L2-normalized,
as sentence-transformers defines them for this model. torch releases the GIL while it
computes, so the event loop keeps streaming chat tokens meanwhile.

Speed on CPUs: the weights are bfloat16 where the CPU computes it natively (AMX or
AVX512-BF16), about 1.6x float32 with the same neighbours (cosine to the float32 vector
0.9999); int8 quantization was measured too and rejected (cosine 0.94, a fifth of the top-10
neighbours changed). A request's texts are embedded in chunks of similar length, so short
texts are not padded to the longest one.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import AutoModel, AutoTokenizer

from revo_inference.config import ModelSpec

# Texts per forward pass: large enough to use the cores, small enough to pad little.
CHUNK = 32


def embedding_dtype(configured: str) -> torch.dtype:
    """`auto`: bfloat16 where the CPU has it natively, float32 elsewhere (emulated bfloat16
    would be slower than float32)."""
    if configured == "auto":
        native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
        return torch.bfloat16 if native else torch.float32
    if configured not in ("float32", "bfloat16"):
        raise ValueError(
            f"an embedding model's dtype is auto, float32 or bfloat16, not {configured!r}"
        )
    return getattr(torch, configured)


class LocalEmbedder:
    def __init__(self, spec: ModelSpec, model_path: str, threads: int = 1) -> None:
        self.spec = spec
        self.dtype = embedding_dtype(spec.dtype)
        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        self._model = AutoModel.from_pretrained(model_path, dtype=self.dtype).eval()
        self.dimensions: int = self._model.config.hidden_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{spec.name}")
        self._threads = threads

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts`, and the number of tokens they took."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._embed_sync, texts)

    def _embed_sync(self, texts: list[str]) -> tuple[list[list[float]], int]:
        torch.set_num_threads(self._threads)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        tokens = 0
        for start in range(0, len(order), CHUNK):
            chunk = order[start : start + CHUNK]
            embedded, used = self._forward([texts[i] for i in chunk])
            for index, vector in zip(chunk, embedded, strict=True):
                vectors[index] = vector
            tokens += used
        return vectors, tokens

    def _forward(self, texts: list[str]) -> tuple[list[list[float]], int]:
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.spec.max_context,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return vectors.tolist(), int(batch["attention_mask"].sum())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
