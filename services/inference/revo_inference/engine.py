"""A local chat model: one vLLM AsyncLLM in this process (its EngineCore in a child).

Requests from many callers go to `generate` concurrently; vLLM batches them. Nothing
here takes a lock or a queue, so nothing here serializes them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.outputs import RequestOutput
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.metrics.loggers import StatLoggerBase

from revo_core.logging import get_logger
from revo_inference import metrics
from revo_inference.config import ModelSpec

log = get_logger("revo.inference.engine")


class LocalChatEngine:
    def __init__(self, spec: ModelSpec, engine: AsyncLLM) -> None:
        self.spec = spec
        self._engine = engine
        self.tokenizer = engine.get_tokenizer()

    @classmethod
    def load(cls, spec: ModelSpec, model_path: str) -> LocalChatEngine:
        """Start the engine (blocks until the weights are loaded)."""
        # On CPU the KV cache size comes from this variable, read by the engine process.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(spec.kv_cache_gb))))
        args = AsyncEngineArgs(
            model=model_path,
            served_model_name=[spec.name],
            max_model_len=spec.max_context,
            dtype=spec.dtype,
            enforce_eager=spec.enforce_eager,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            disable_log_stats=False,
        )
        engine = AsyncLLM.from_engine_args(args, stat_loggers=[_stat_logger_factory(spec.name)])
        log.info("local model loaded", model=spec.name, path=model_path)
        metrics.UNFINISHED.labels(spec.name).set_function(engine.get_num_unfinished_requests)
        return cls(spec, engine)

    def render_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        """Apply the model's chat template and tokenize."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return self.tokenizer.encode(text, add_special_tokens=False)

    async def generate(
        self, request_id: str, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncIterator[RequestOutput]:
        """Stream outputs; closing this generator early aborts the request in vLLM."""
        prompt = TokensPrompt(prompt_token_ids=prompt_ids)
        # Closed explicitly (not left to the garbage collector) so the abort is immediate.
        async with aclosing(self._engine.generate(prompt, params, request_id)) as outputs:
            async for output in outputs:
                yield output

    @property
    def unfinished_requests(self) -> int:
        return self._engine.get_num_unfinished_requests()

    @property
    def healthy(self) -> bool:
        return not self._engine.errored

    def shutdown(self) -> None:
        self._engine.shutdown()


def _stat_logger_factory(model: str):
    def build(vllm_config: Any, engine_index: int = 0) -> StatLoggerBase:
        return _GaugeStatLogger(model)

    return build


class _GaugeStatLogger(StatLoggerBase):
    """Copies the scheduler's running/waiting counts into our Prometheus gauges."""

    def __init__(self, model: str) -> None:
        self._model = model

    def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx=0):
        if scheduler_stats is None:
            return
        metrics.RUNNING.labels(self._model).set(scheduler_stats.num_running_reqs)
        metrics.WAITING.labels(self._model).set(scheduler_stats.num_waiting_reqs)

    def log_engine_initialized(self) -> None:
        pass
