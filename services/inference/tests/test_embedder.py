"""The embedder itself: its vectors are the sentence embeddings transformers computes (mean
of the token states under the mask, L2-normalized), bfloat16 ones agree with float32 ones,
and a request's texts come back in their order whatever chunks they were embedded in."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from revo_inference import bert
from revo_inference.config import ModelSpec
from revo_inference.embedder import MAX_CHUNK, LocalEmbedder, chunk_sizes, embedding_dtype
from revo_inference.prepacked import PrepackedLinear, prepacking_available
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
    texts = _texts(MAX_CHUNK * 2 + 7)  # three chunks, lengths shuffled

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


def _transformers_embeddings(model_dir: Path, texts: list[str]) -> torch.Tensor:
    """The reference: transformers' float32 model, padded, mean-pooled under the mask."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)


async def test_vectors_are_transformers_sentence_embeddings(embedders):
    # Lengths from 1 word to past a padded row multiple, one text far longer than the rest.
    texts = [*_texts(70), "retry " * 120]
    reference = _transformers_embeddings(embedding_model_dir(), texts)

    for dtype, least in (("float32", 0.99999), ("bfloat16", 0.999)):
        vectors, _ = await embedders[dtype].embed(texts)
        cosines = (torch.tensor(vectors) * reference).sum(dim=1)
        assert cosines.min().item() > least, dtype


def test_the_default_model_runs_through_the_bert_encoder():
    assert bert.supports(AutoConfig.from_pretrained(embedding_model_dir()))


async def test_an_encoder_bert_py_does_not_reproduce_runs_through_transformers(tmp_path):
    # A small random BERT whose activation bert.py does not implement.
    model_dir = tmp_path / "tanh-bert"
    shutil.copytree(embedding_model_dir(), model_dir)
    config = AutoConfig.from_pretrained(model_dir, hidden_act="gelu_new", num_hidden_layers=2)
    torch.manual_seed(3)
    AutoModel.from_config(config).save_pretrained(model_dir)
    assert not bert.supports(config)
    texts = _texts(9)

    embedder = LocalEmbedder(_spec("float32"), str(model_dir), threads=1)
    try:
        vectors, _ = await embedder.embed(texts)
    finally:
        embedder.shutdown()

    reference = _transformers_embeddings(model_dir, texts)
    assert (torch.tensor(vectors) * reference).sum(dim=1).min().item() > 0.99999


def test_a_prepacked_linear_computes_what_the_plain_one_does():
    if not prepacking_available(torch.bfloat16):
        assert not prepacking_available(torch.float32)  # never prepacked: nothing to compare
        return
    torch.manual_seed(1)
    linear = torch.nn.Linear(384, 1536, dtype=torch.bfloat16)
    x = torch.randn(3, 7, 384, dtype=torch.bfloat16)

    expected = linear(x).float()
    got = PrepackedLinear.of(linear)(x).float()

    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=0.05, rtol=0.02)
    with_gelu = PrepackedLinear.of(linear)(x, gelu=True).float()
    assert torch.allclose(with_gelu, torch.nn.functional.gelu(expected), atol=0.05, rtol=0.02)


def test_a_request_is_cut_into_equal_chunks_of_at_most_the_maximum():
    assert chunk_sizes(1) == [1]
    assert chunk_sizes(MAX_CHUNK) == [MAX_CHUNK]
    assert chunk_sizes(100) == [50, 50]
    assert chunk_sizes(2 * MAX_CHUNK + 1) == [43, 43, 43]
    for count in range(1, 300):
        sizes = chunk_sizes(count)
        assert sum(sizes) == count and max(sizes) <= MAX_CHUNK
        assert max(sizes) - min(sizes) <= 1


def test_attention_stays_exact_where_scores_pass_exp_s_range():
    # Normalizing after the product skips softmax's max subtraction; scores this large
    # would overflow exp, so the stable softmax must take over.
    values = torch.randn(2, 3, 4)
    for scale in (1.0, 200.0):
        scores = torch.randn(2, 3, 3) * scale
        scores[:, :, -1] = -1e4  # a masked key

        got = bert._softmax_weighted(scores, values)

        expected = torch.bmm(torch.softmax(scores, dim=-1), values)
        assert torch.isfinite(got).all()
        assert torch.allclose(got, expected, atol=1e-5), scale


def test_token_rows_are_padded_by_at_most_an_eighth_to_few_shapes():
    padded = {tokens: bert.padded_rows(tokens) for tokens in range(1, 4097)}
    for tokens, rows in padded.items():
        assert rows >= tokens and rows % 16 == 0
        assert rows - tokens < max(16, tokens / 8)
    assert padded[1] == 16 and padded[17] == 32 and padded[1500] == 1536
    assert len(set(padded.values())) == 48
