"""The models this replica serves, by name and alias."""

from __future__ import annotations

from typing import Literal

from revo_contracts.inference import ModelInfo
from revo_core.errors import NotFound
from revo_inference.config import ModelSpec
from revo_inference.embedder import LocalEmbedder
from revo_inference.engine import LocalChatEngine

Kind = Literal["chat", "embed"]


class ModelRegistry:
    def __init__(self) -> None:
        self.chat: dict[str, LocalChatEngine] = {}
        self.embed: dict[str, LocalEmbedder] = {}
        self._aliases: dict[tuple[Kind, str], str] = {}
        self._specs: list[ModelSpec] = []

    def add_chat(self, engine: LocalChatEngine) -> None:
        self.chat[engine.spec.name] = engine
        self._register(engine.spec)

    def add_unloaded_chat(self, spec: ModelSpec) -> None:
        """A chat model listed with `load: false`: routable (to its fallbacks), not loaded."""
        self._register(spec)

    def add_embed(self, embedder: LocalEmbedder) -> None:
        self.embed[embedder.spec.name] = embedder
        self._register(embedder.spec)

    def _register(self, spec: ModelSpec) -> None:
        self._specs.append(spec)
        for alias in spec.aliases:
            # The first model listed with an alias keeps it.
            self._aliases.setdefault((spec.kind, alias), spec.name)

    def chat_engine(self, name: str) -> LocalChatEngine:
        resolved = self._aliases.get(("chat", name), name)
        if resolved not in self.chat:
            raise NotFound(f"unknown chat model {name!r}", {"available": sorted(self.chat)})
        return self.chat[resolved]

    def chat_spec(self, name: str) -> ModelSpec | None:
        """The configured chat model of this name or alias, loaded or not."""
        resolved = self._aliases.get(("chat", name), name)
        return next((s for s in self._specs if s.kind == "chat" and s.name == resolved), None)

    def chat_names(self) -> list[str]:
        return [s.name for s in self._specs if s.kind == "chat"]

    def embedder(self, name: str) -> LocalEmbedder:
        resolved = self._aliases.get(("embed", name), name)
        if resolved not in self.embed:
            raise NotFound(f"unknown embedding model {name!r}", {"available": sorted(self.embed)})
        return self.embed[resolved]

    def infos(self) -> list[ModelInfo]:
        return [self._info(spec) for spec in self._specs]

    def _info(self, spec: ModelSpec) -> ModelInfo:
        if spec.kind == "chat":
            engine = self.chat.get(spec.name)
            loaded, dims = engine is not None and engine.healthy, None
        else:
            loaded, dims = True, self.embed[spec.name].dimensions
        return ModelInfo(
            name=spec.name,
            kind=spec.kind,
            max_context=spec.max_context,
            price_per_1m_tokens=spec.price_per_1m_tokens,
            loaded=loaded,
            dimensions=dims,
            aliases=list(spec.aliases),
        )

    def healthy(self) -> bool:
        return all(engine.healthy for engine in self.chat.values())

    def shutdown(self) -> None:
        for engine in self.chat.values():
            engine.shutdown()
        for embedder in self.embed.values():
            embedder.shutdown()
