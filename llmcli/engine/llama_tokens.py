"""The llama.cpp engine's token side: ids, token bytes, the vocabulary, the chat template.

A mixin of :class:`~llmcli.engine.llama.LlamaEngine` (which sets the attributes
declared here when it loads a model); with it the engine is a
:class:`~llmcli.engine.base.TokenLevel`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcli.engine.base import Message, TokenPiece
from llmcli.engine.template import BUILTIN_FORMATS, DEFAULT_FORMAT, ChatTemplate


class LlamaTokens:
    _llama: Any
    _lib: Any
    _vocab: Any
    _ctx: Any
    n_vocab: int
    _pieces: dict[int, bytes]
    _special_pieces: dict[int, bytes]
    model_name: str
    notices: list[str]
    template: ChatTemplate

    # -- tokens ---------------------------------------------------------------

    @property
    def adds_bos(self) -> bool:
        return bool(self._llama._model.add_bos_token())

    @property
    def bos_id(self) -> int:
        return int(self._llama.token_bos())

    @property
    def eos_id(self) -> int:
        return int(self._llama.token_eos())

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids with the model's own tokenizer; BOS only if the model wants one."""
        data = text.encode("utf-8")
        return list(self._llama.tokenize(data, add_bos=add_bos and self.adds_bos, special=special))

    def token_bytes(self, token_id: int, *, special: bool = False) -> bytes:
        """A token's bytes, retrying with the size llama.cpp reports for long tokens."""
        cache = self._special_pieces if special else self._pieces
        piece = cache.get(token_id)
        if piece is None:
            piece = self._token_to_piece(token_id, special)
            cache[token_id] = piece
        return piece

    def _token_to_piece(self, token_id: int, special: bool) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(self._vocab, token_id, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str:
        data = b"".join(self.token_bytes(i, special=special) for i in ids)
        return data.decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        """The vocabulary entry's own text (special tokens shown as written)."""
        return self.token_bytes(token_id, special=True).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token_id: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token_id))

    # -- prompts --------------------------------------------------------------

    def _choose_template(self, override: str | None) -> ChatTemplate:
        source = override or self._llama.metadata.get("tokenizer.chat_template")
        if not source:
            self.notices.append(
                f"{self.model_name} has no chat template; using {DEFAULT_FORMAT} "
                "(pass --chat-format NAME or --chat-template FILE, or --raw)"
            )
            source = BUILTIN_FORMATS[DEFAULT_FORMAT]
        return ChatTemplate(
            source,
            bos_token=self.token_text(self.bos_id) if self.bos_id >= 0 else "",
            eos_token=self.token_text(self.eos_id) if self.eos_id >= 0 else "",
        )

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True
    ) -> str:
        return self.template.render(
            [m.to_dict() for m in messages], add_generation_prompt=add_generation_prompt
        )

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        text = self.render_chat(messages)
        starts_with_bos = bool(self.template.bos_token) and text.startswith(self.template.bos_token)
        return self.tokenize(text, add_bos=not starts_with_bos, special=True)

    def text_prompt(self, text: str) -> list[int]:
        return self.tokenize(text, add_bos=True, special=False)

    # -- generation -----------------------------------------------------------

    # -- distributions ------------------------------------------------------

    def _piece(self, text: str, token: int, logprobs: int) -> TokenPiece:
        if not logprobs:
            return TokenPiece(text=text, token_id=token)
        dist = self._last_logprobs()
        top = np.argpartition(dist, -logprobs)[-logprobs:]
        top = top[np.argsort(dist[top])[::-1]]
        return TokenPiece.ranked(text, token, dist, top, self.token_text)

    def _last_logprobs(self) -> np.ndarray:
        """Log-softmax of the logits at the last evaluated position."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        result: np.ndarray = shifted - np.log(np.exp(shifted).sum())
        return result
