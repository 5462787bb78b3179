"""A local embedding model (all-MiniLM-L6-v2 by default) run with torch in worker threads.

Sentence embeddings = mean of the token embeddings under the attention mask, L2-normalized,
as sentence-transformers defines them for this model. torch releases the GIL while it
computes, so the event loop keeps streaming chat tokens meanwhile.

Speed on CPUs: BERT models (the default one) run through bert.py, which skips padding and
fuses what it can; others through transformers. The weights are bfloat16 where the CPU
computes it natively (AMX or AVX512-BF16), with the same neighbours as float32 (cosine to
the float32 vector 0.9999; float32 costs about 3x the CPU), and are laid out for oneDNN once
(prepacked.py). int8 quantization was measured too and rejected: cosine 0.94, a fifth of the
top-10 neighbours changed, and torch's int8 matmul was slower than bfloat16 on AMX.

Threads: each forward pass runs on one core, and `threads` of them run side by side (a
request's chunks spread over them). One pass on two cores spends about 10% more CPU on
OpenMP's hand-offs, and when the other core is busy (Postgres, the event loop) the pass waits
for it at every layer: with one core per pass, a store of memories took 2.3 core-ms of
inference per text instead of 3.9 (bench/memory_cpu.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoTokenizer

from revo_inference import bert
from revo_inference.allocator import keep_freed_memory
from revo_inference.config import ModelSpec
from revo_inference.prepacked import prepack_linears, prepacking_available

# Texts per forward pass at most. A request is cut into equal chunks up to this size: bigger
# passes use AMX better (measured, 100-text requests: 1.43 core-ms per text in chunks of 50,
# 1.82 in chunks of 16), and a request of more than one chunk spreads over the threads.
MAX_CHUNK = 64


def chunk_sizes(count: int) -> list[int]:
    """`count` texts in the fewest passes of at most MAX_CHUNK, as equal as can be."""
    passes = -(-count // MAX_CHUNK)
    size, extra = divmod(count, passes)
    return [size + 1] * extra + [size] * (passes - extra)


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
        keep_freed_memory()
        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        config = AutoConfig.from_pretrained(model_path)
        self.dimensions: int = config.hidden_size
        encoding = _BertEncoding if bert.supports(config) else _TransformersEncoding
        self._encode = encoding(model_path, self._tokenizer, self.dtype, spec.max_context)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, threads),
            thread_name_prefix=f"embed-{spec.name}",
            initializer=torch.set_num_threads,
            initargs=(1,),
        )

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts`, and the number of tokens they took."""
        loop = asyncio.get_running_loop()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks, start = [], 0
        for size in chunk_sizes(len(texts)):
            chunks.append(order[start : start + size])
            start += size
        done = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, self._forward, [texts[i] for i in chunk])
                for chunk in chunks
            )
        )
        vectors: list[list[float]] = [[] for _ in texts]
        for chunk, (embedded, _) in zip(chunks, done, strict=True):
            for index, vector in zip(chunk, embedded, strict=True):
                vectors[index] = vector
        return vectors, sum(used for _, used in done)

    def _forward(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors, tokens = self._encode(texts)
        return vectors.tolist(), tokens

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _BertEncoding:
    """BERT models (the default one): bert.py's encoder, on real tokens only."""

    def __init__(self, model_path: str, tokenizer, dtype: torch.dtype, max_context: int) -> None:
        # Read in float32: bert.py folds scales into the weights before casting them.
        model = AutoModel.from_pretrained(model_path, dtype=torch.float32).eval()
        self._encoder = bert.BertSentenceEncoder(model, dtype)
        self._tokenizer = tokenizer
        self._max_context = max_context

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        ids = self._tokenizer(texts, truncation=True, max_length=self._max_context)["input_ids"]
        return self._encoder.embed(ids), sum(map(len, ids))


class _TransformersEncoding:
    """Any other encoder: transformers' model, padded batches, mean-pooled."""

    def __init__(self, model_path: str, tokenizer, dtype: torch.dtype, max_context: int) -> None:
        # Eager attention: for batches of short texts it costs less than torch's SDPA
        # kernel (measured on all-MiniLM-L6-v2: 1.59 vs 1.74 core-ms per text, one core).
        self._model = AutoModel.from_pretrained(
            model_path, dtype=dtype, attn_implementation="eager"
        ).eval()
        if prepacking_available(dtype):
            prepack_linears(self._model)
        self._tokenizer = tokenizer
        self._max_context = max_context

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_context,
            return_tensors="pt",
        )  # fmt: skip
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1), int(batch["attention_mask"].sum())
