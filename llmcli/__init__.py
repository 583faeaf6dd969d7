"""llmcli: run quantized decoder LLMs locally, and look inside them."""

__version__ = "0.1.0"
