"""Counting a prompt's tokens on a server, so a remote chat is trimmed like a local one.

The server owns the tokenizer and the chat template. Two servers say how long a
text is: llama-server (``POST /apply-template`` renders messages with the model's
template, ``POST /tokenize`` counts them) and llama-cpp-python's server (``POST
/extras/tokenize/count``, raw text only). Both live at the server root, beside
``/v1``. The first that answers is used for the rest of the session; when none
does (vLLM, ollama, a proxy), the count is an estimate:

    tokens ≈ ceil(UTF-8 bytes / 3) + 4 per message + 3

Three bytes per token over-counts English (about four) and roughly matches code,
so trimming by the estimate errs on the side of leaving room for the answer; the
per-message term stands for the template's role markers.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from llmcli.engine.base import Prompt
from llmcli.engine.remote_http import HttpClient, RequestFailed

BYTES_PER_TOKEN = 3
PER_MESSAGE = 4
PER_PROMPT = 3

Mode = Literal["unknown", "llama-server", "llama-cpp-python", "estimate"]


def estimate_tokens(prompt: Prompt) -> int:
    """The documented estimate (see the module docstring)."""
    if prompt.ids is not None:
        return len(prompt.ids)
    if prompt.messages is not None:
        size = sum(len(m.content.encode("utf-8")) + len(m.role) for m in prompt.messages)
        return math.ceil(size / BYTES_PER_TOKEN) + PER_MESSAGE * len(prompt.messages) + PER_PROMPT
    return math.ceil(len((prompt.text or "").encode("utf-8")) / BYTES_PER_TOKEN) + PER_PROMPT


class TokenCounter:
    """Counts with the server's tokenizer where it has one, else estimates."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self.mode: Mode = "unknown"
        root = http.config.base_url
        self._root = root[: -len("/v1")] if root.endswith("/v1") else root

    def count(self, prompt: Prompt) -> int:
        if prompt.ids is not None:
            return len(prompt.ids)
        if self.mode in ("unknown", "llama-server"):
            counted = self._llama_server(prompt)
            if counted is not None:
                self.mode = "llama-server"
                return counted
        if self.mode in ("unknown", "llama-cpp-python"):
            counted = self._llama_cpp_python(prompt)
            if counted is not None:
                self.mode = "llama-cpp-python"
                return counted
        self.mode = "estimate"
        return estimate_tokens(prompt)

    def _llama_server(self, prompt: Prompt) -> int | None:
        text = prompt.text
        if prompt.messages is not None:
            rendered = self._post("apply-template", {"messages": _dicts(prompt)})
            text = rendered.get("prompt") if isinstance(rendered, dict) else None
            if not isinstance(text, str):
                return None
        answer = self._post("tokenize", {"content": text or "", "add_special": True})
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        return len(tokens) if isinstance(tokens, list) else None

    def _llama_cpp_python(self, prompt: Prompt) -> int | None:
        if prompt.messages is not None:
            text = "".join(m.content for m in prompt.messages)
            extra = PER_MESSAGE * len(prompt.messages)  # its count knows no chat template
        else:
            text, extra = prompt.text or "", 0
        answer = self._post("extras/tokenize/count", {"input": text})
        count = answer.get("count") if isinstance(answer, dict) else None
        return count + extra if isinstance(count, int) and not isinstance(count, bool) else None

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self._http.post_json(f"{self._root}/{path}", body)
        except RequestFailed:
            return None


def _dicts(prompt: Prompt) -> list[dict[str, str]]:
    return [m.to_dict() for m in prompt.messages or ()]
