"""The embedder itself: bfloat16 vectors agree with float32 ones, and a request's texts come
back in their order whatever chunks of similar length they were embedded in."""

from __future__ import annotations

import random

import pytest

from revo_inference.config import ModelSpec
from revo_inference.embedder import CHUNK, LocalEmbedder, embedding_dtype
from revo_inference.prepare_model import embedding_model_dir

WORDS = ("build", "failed", "import", "missing", "flaky", "retry", "cache", "deploy", "queue")


def _spec(dtype: str) -> ModelSpec:
    return ModelSpec(name="minilm", kind="embed", path="embedded", max_context=256, dtype=dtype)


def _texts(count: int) -> list[str]:
    rng = random.Random(5)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 40))) for _ in range(count)]


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def embedders() -> dict[str, LocalEmbedder]:
    path = str(embedding_model_dir())
    made = {
        dtype: LocalEmbedder(_spec(dtype), path, threads=2) for dtype in ("float32", "bfloat16")
    }
    yield made
    for embedder in made.values():
        embedder.shutdown()


async def test_texts_come_back_in_their_order_across_chunks(embedders):
    embedder = embedders["float32"]
    texts = _texts(CHUNK * 2 + 7)  # three chunks, lengths shuffled

    together, _ = await embedder.embed(texts)
    alone = [(await embedder.embed([text]))[0][0] for text in texts]

    assert min(_cosine(a, b) for a, b in zip(together, alone, strict=True)) > 0.9999


async def test_bfloat16_vectors_keep_float32_s_meaning(embedders):
    texts = _texts(80)

    exact, tokens = await embedders["float32"].embed(texts)
    fast, fast_tokens = await embedders["bfloat16"].embed(texts)

    assert tokens == fast_tokens
    assert min(_cosine(a, b) for a, b in zip(exact, fast, strict=True)) > 0.999

    # The same nearest neighbour for every text.
    def nearest(vectors: list[list[float]], i: int) -> int:
        others = [j for j in range(len(vectors)) if j != i]
        return max(others, key=lambda j: _cosine(vectors[i], vectors[j]))

    same = sum(nearest(exact, i) == nearest(fast, i) for i in range(len(texts)))
    assert same >= 0.95 * len(texts)


def test_a_dtype_an_embedding_model_cannot_take_is_refused():
    with pytest.raises(ValueError, match="auto, float32 or bfloat16"):
        embedding_dtype("float16")
