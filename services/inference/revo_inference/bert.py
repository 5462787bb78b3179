"""Sentence embeddings from a BERT encoder (all-MiniLM-L6-v2), computed on real tokens only.

The same math as transformers' `BertModel` followed by sentence-transformers' mean pooling,
with the weights taken from it, but arranged for CPU throughput:

- No padding in the linear layers, layer norms and GELU (most of the work): the texts'
  tokens are laid end to end, and only attention, which must see each text on its own, puts
  them into a padded batch and back. A request's texts of 15 to 45 tokens, sorted and
  chunked, were a quarter padding.
- Query, key and value are one matmul; the intermediate layer's GELU is fused into its
  matmul; the weights are laid out for oneDNN once where it computes bfloat16 (prepacked.py).
- Attention normalizes after its product with the values (`_softmax_weighted`).

Measured on all-MiniLM-L6-v2, one core, 100-text requests of bench/memory.py's texts in two
chunks of 50, both in one process on the same new texts: transformers' bfloat16 model took
2.0 core-ms per text, this 1.5 (1.36x; absolute times on these shared machines drift by a
fifth between runs). tests/test_embedder.py checks the vectors against transformers'
float32 ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig

from revo_inference.prepacked import PrepackedLinear, prepacking_available

# Token rows are padded to a multiple of this (AMX works on tiles of 16 rows), or coarser for
# big passes (`padded_rows`). oneDNN prepares its matmul per matrix shape, about 25 ms for a
# 50-text pass the first time a row count is seen, and unpadded, almost every batch had a
# token count not seen before: measured in one process over the same new texts, 2.08 core-ms
# per text unpadded, 1.76 in multiples of 16. A one-text query: 3.9 ms in multiples of 16,
# 5.4 ms in multiples of 64, so small passes keep the fine step.
_ROWS = 16
# And the padded text length in attention to a multiple of this, for the same reason.
_LONGEST_STEP = 8
# An additive attention mask must stay finite in bfloat16 (-inf makes a NaN row for a text
# whose every key is masked, which cannot happen here, but costs nothing to avoid).
_MASKED = -1e4


def supports(config: PretrainedConfig) -> bool:
    """What this encoder reproduces exactly; anything else runs through transformers."""
    return (
        config.model_type == "bert"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and config.hidden_act == "gelu"
        and not config.is_decoder
    )


class _Linear:
    """y = x W^T + b, prepacked for oneDNN where possible, optionally followed by GELU."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> None:
        self._packed = PrepackedLinear(weight, bias) if prepacking_available(dtype) else None
        # The plain weight only where it is used: the packed one is a copy in another layout.
        self._weight = weight if self._packed is None else None
        self._bias = bias

    def __call__(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        if self._packed is not None:
            return self._packed(x, gelu=gelu)
        assert self._weight is not None
        out = F.linear(x, self._weight, self._bias)
        return F.gelu(out) if gelu else out


@dataclass
class _Layer:
    qkv: _Linear
    out: _Linear
    norm1: tuple[torch.Tensor, torch.Tensor]
    up: _Linear
    down: _Linear
    norm2: tuple[torch.Tensor, torch.Tensor]


@dataclass
class _Batch:
    """Texts laid end to end, with what attention needs to pad them and back."""

    ids: torch.Tensor  # (tokens rounded up to _ROWS,): the rows past `tokens` are padding
    positions: torch.Tensor  # (tokens rounded up to _ROWS,)
    tokens: int
    text_of_token: torch.Tensor  # (tokens,)
    lengths: torch.Tensor  # (texts,)
    longest: int
    additive_mask: torch.Tensor  # (texts x heads, 1, longest): 0 for a token, _MASKED for padding


class BertSentenceEncoder:
    def __init__(self, model: torch.nn.Module, dtype: torch.dtype) -> None:
        """`model`: a transformers BertModel, best in float32 (its weights are cast here)."""
        config = model.config
        weights = {name: tensor.detach() for name, tensor in model.state_dict().items()}
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.dtype = dtype
        self.hidden = config.hidden_size
        self.heads = config.num_attention_heads
        self.eps = config.layer_norm_eps
        self._weights, self._prefix = weights, prefix
        self.word = self._tensor("embeddings.word_embeddings.weight")
        self.position = self._tensor("embeddings.position_embeddings.weight")
        # Single-sentence inputs: token type 0 everywhere.
        self.token_type = self._tensor("embeddings.token_type_embeddings.weight")[0]
        self.norm = self._norm("embeddings.LayerNorm")
        self.layers = [self._layer(f"encoder.layer.{i}.") for i in range(config.num_hidden_layers)]
        del self._weights

    def _tensor(self, name: str, scale: float = 1.0) -> torch.Tensor:
        return (self._weights[self._prefix + name].float() * scale).to(self.dtype)

    def _norm(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._tensor(name + ".weight"), self._tensor(name + ".bias")

    def _linear(self, *names: str, scales: tuple[float, ...] = ()) -> _Linear:
        """One linear layer from one or more (stacked: query, key and value as one)."""
        parts = list(zip(names, scales or (1.0,) * len(names), strict=True))
        weight = torch.cat([self._tensor(name + ".weight", scale) for name, scale in parts])
        bias = torch.cat([self._tensor(name + ".bias", scale) for name, scale in parts])
        return _Linear(weight, bias, self.dtype)

    def _layer(self, p: str) -> _Layer:
        attention = p + "attention.self."
        # 1/sqrt(head size) folded into the query projection instead of scaling every score.
        query_scale = (self.hidden // self.heads) ** -0.5
        return _Layer(
            qkv=self._linear(
                attention + "query",
                attention + "key",
                attention + "value",
                scales=(query_scale, 1.0, 1.0),
            ),
            out=self._linear(p + "attention.output.dense"),
            norm1=self._norm(p + "attention.output.LayerNorm"),
            up=self._linear(p + "intermediate.dense"),
            down=self._linear(p + "output.dense"),
            norm2=self._norm(p + "output.LayerNorm"),
        )

    @torch.inference_mode()
    def embed(self, token_ids: list[list[int]]) -> torch.Tensor:
        """L2-normalized mean-pooled float32 vectors, one row per text."""
        batch = _lay_end_to_end(token_ids, self.heads, self.dtype)
        x = self.word[batch.ids] + self.position[batch.positions] + self.token_type
        x = self._layer_norm(x, self.norm)
        for layer in self.layers:
            x = self._layer_norm(x + layer.out(self._attention(layer.qkv(x), batch)), layer.norm1)
            x = self._layer_norm(x + layer.down(layer.up(x, gelu=True)), layer.norm2)
        sums = torch.zeros(len(token_ids), self.hidden, dtype=torch.float32)
        sums.index_add_(0, batch.text_of_token, x[: batch.tokens].float())
        return F.normalize(sums / batch.lengths.unsqueeze(1), p=2, dim=1)

    def _attention(self, qkv: torch.Tensor, batch: _Batch) -> torch.Tensor:
        texts, longest, head = len(batch.lengths), batch.longest, self.hidden // self.heads
        # Scattered straight into (3, texts, heads, longest, head) order: the transpose to
        # heads-first costs nothing beyond the scatter itself. Padding rows stay zero.
        grid = qkv.new_zeros(3, texts, self.heads, longest, head)
        real = qkv[: batch.tokens].view(-1, 3, self.heads, head)
        where = (batch.text_of_token, batch.positions[: batch.tokens])
        grid[:, where[0], :, where[1], :] = real
        q, k, v = (part.view(texts * self.heads, longest, head) for part in grid)
        # Queries come pre-scaled by 1/sqrt(head) (in their weights); the mask is added by
        # the same call that multiplies.
        scores = torch.baddbmm(batch.additive_mask, q, k.transpose(1, 2))
        context = _softmax_weighted(scores, v).view(texts, self.heads, longest, head)
        context = context[where[0], :, where[1], :].reshape(-1, self.hidden)
        return F.pad(context, (0, 0, 0, len(batch.ids) - batch.tokens))

    def _layer_norm(self, x: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden,), norm[0], norm[1], self.eps)


def _softmax_weighted(scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """softmax(scores) @ values, normalized after the product: exp, one sum, one matmul and a
    division of the (smaller) result. torch's softmax over rows this short is slow (its
    max and sum over 40 keys): 3.5 ms for 600 rows x 40 x 40 in bfloat16, this 1.3 ms.
    Without the usual max subtraction exp overflows past scores of 88, which BERT's scaled
    attention scores stay far below; should a model's not, the stable softmax runs instead."""
    weights = scores.exp()
    sums = weights.sum(dim=-1, keepdim=True)
    if not bool(torch.isfinite(sums).all()):
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
        return torch.bmm(probs, values)
    return torch.bmm(weights, values) / sums


def padded_rows(tokens: int) -> int:
    """`tokens` rounded up to a multiple of _ROWS, or of an eighth of its power of two when
    that is more: at most an eighth more rows, and 8 row counts per doubling (48 up to 4,096
    rows instead of 256), so a new service meets known shapes sooner. Measured in one process,
    2,000 new texts in requests of 100 after 300 others: 1.52 core-ms per text instead of
    1.90 on a new embedder, and 1.32 to 1.34 instead of 1.39 to 1.44 once warm."""
    step = max(_ROWS, (1 << (max(tokens, 1).bit_length() - 1)) // 8)
    return -(-tokens // step) * step


def _lay_end_to_end(token_ids: list[list[int]], heads: int, dtype: torch.dtype) -> _Batch:
    lengths = [len(ids) for ids in token_ids]
    longest = -(-max(lengths) // _LONGEST_STEP) * _LONGEST_STEP
    present = torch.arange(longest).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    mask = torch.where(present, 0.0, _MASKED).to(dtype)
    tokens = sum(lengths)
    padding = [0] * (padded_rows(tokens) - tokens)
    positions = [p for n in lengths for p in range(n)]
    return _Batch(
        ids=torch.tensor([token for ids in token_ids for token in ids] + padding),
        positions=torch.tensor(positions + padding),
        tokens=tokens,
        text_of_token=torch.tensor([t for t, n in enumerate(lengths) for _ in range(n)]),
        lengths=torch.tensor(lengths, dtype=torch.float32),
        longest=longest,
        additive_mask=mask.repeat_interleave(heads, dim=0).unsqueeze(1),
    )
