"""Engines turn token ids into more token ids.

``base`` holds the protocol and the value types every engine shares; ``llama``
(llama-cpp-python) is imported only when a model is actually loaded, so commands
that never generate stay fast to start.
"""

from llmcli.engine.base import (
    Engine,
    Generation,
    GenerationStats,
    LoadOptions,
    LoraSpec,
    Message,
    Prompt,
    Sampling,
    TokenLevel,
    TokenPiece,
)

__all__ = [
    "Engine",
    "Generation",
    "GenerationStats",
    "LoadOptions",
    "LoraSpec",
    "Message",
    "Prompt",
    "Sampling",
    "TokenLevel",
    "TokenPiece",
]
