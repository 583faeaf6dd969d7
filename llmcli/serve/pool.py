"""Loaded models, at most a RAM budget of them, the least recently used evicted first.

A model is identified by everything that changes what it computes or how it is
loaded: the file (path, size, mtime), context size, threads, GPU layers, adapters
and scales, and the chat template. Two clients asking for the same get the same
engine; each turn on it takes the model's :class:`FairLock`, so clients waiting
for one model are served in the order they asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli.engine.base import LoadOptions, LoraSpec
from llmcli.errors import LlmcliError

if TYPE_CHECKING:
    from llmcli.engine.llama import LlamaEngine


class FairLock:
    """A lock granted first come, first served (``threading.Lock`` promises no order).

    A waiter whose ``cancelled`` event is set (its client pressed Ctrl-C or went
    away) leaves the queue without ever holding the lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._held = False

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._held or self._queue[0] is not ticket:
                if cancelled is not None and cancelled.is_set():
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.02)
            self._queue.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def held(self) -> bool:
        return self._held


def _file_id(path: Path) -> list[Any]:
    info = path.stat()
    return [str(path), info.st_size, info.st_mtime_ns]


def model_key(path: Path, options: LoadOptions) -> str:
    """What makes two loads the same model (and a saved KV state valid for it)."""
    data = {
        "model": _file_id(path),
        "ctx": options.n_ctx,
        "gpu_layers": options.gpu_layers,
        "threads": options.threads,
        "loras": [[*_file_id(spec.path), spec.scale] for spec in options.loras],
        "template": hashlib.sha256((options.chat_template or "").encode()).hexdigest(),
    }
    return json.dumps(data, sort_keys=True)


def options_to_wire(options: LoadOptions) -> dict[str, Any]:
    return {
        "n_ctx": options.n_ctx,
        "gpu_layers": options.gpu_layers,
        "threads": options.threads,
        "loras": [[str(spec.path), spec.scale] for spec in options.loras],
        "chat_template": options.chat_template,
    }


def options_from_wire(data: dict[str, Any]) -> LoadOptions:
    return LoadOptions(
        n_ctx=data.get("n_ctx"),
        gpu_layers=data.get("gpu_layers", "auto"),
        threads=data.get("threads"),
        loras=tuple(LoraSpec(Path(p), float(s)) for p, s in data.get("loras") or ()),
        chat_template=data.get("chat_template"),
    )


@dataclass
class Loaded:
    key: str
    path: Path
    engine: LlamaEngine
    memory: int
    options: LoadOptions = field(default_factory=LoadOptions)
    trained_ctx: int | None = None
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    lock: FairLock = field(default_factory=FairLock)
    state_key: str = ""
    """The key saved KV states are filed under (model key + library versions + n_ctx)."""

    def touch(self) -> None:
        self.last_used = time.time()


def estimate_memory(engine: LlamaEngine, path: Path) -> int:
    """Model file size plus a full f16 KV cache for its context (what it can grow to)."""
    size = path.stat().st_size
    with contextlib.suppress(Exception):
        model = engine._llama._model.model
        lib = engine._lib
        layers = int(lib.llama_model_n_layer(model))
        heads = int(lib.llama_model_n_head(model)) or 1
        kv_heads = int(lib.llama_model_n_head_kv(model))
        embd = int(lib.llama_model_n_embd(model))
        size += engine.n_ctx * layers * (embd // heads) * kv_heads * 2 * 2
    return size


def check_files(path: Path, options: LoadOptions) -> int | None:
    """llmcli's own GGUF header check of the model and its adapters, before llama.cpp
    reads them (as in-process loading does); the model's trained context."""
    from llmcli.store.adapters import check_adapters
    from llmcli.store.gguf import check_model_file

    header = check_model_file(path)
    if options.loras:
        check_adapters((spec.path for spec in options.loras), header)
    return header.context_length


def total_ram() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 8 * 1024**3


class ModelPool:
    """The server's loaded models; ``budget`` bytes in all (one model always fits)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._models: dict[str, Loaded] = {}
        self._lock = threading.Lock()
        """Held while loading or evicting: one load at a time."""

    def get(self, path: Path, options: LoadOptions, trained_ctx: int | None) -> Loaded:
        key = model_key(path, options)
        with self._lock:
            entry = self._models.get(key)
            if entry is None:
                entry = self._load(key, path, options, trained_ctx)
            entry.touch()
            return entry

    def _load(self, key: str, path: Path, options: LoadOptions, trained_ctx: int | None) -> Loaded:
        from llmcli.engine.loader import load_local

        if trained_ctx is None:
            trained_ctx = check_files(path, options)
        engine = load_local(path, options, trained_ctx=trained_ctx)
        if not hasattr(engine, "save_sequence"):
            engine.close()
            raise LlmcliError("the engine server can only hold llama.cpp models")
        llama_engine: LlamaEngine = engine  # type: ignore[assignment]
        entry = Loaded(
            key, path, llama_engine, estimate_memory(llama_engine, path), options, trained_ctx
        )
        entry.state_key = _state_key(key, llama_engine)
        self._evict_for(entry.memory)
        self._models[key] = entry
        return entry

    def _evict_for(self, needed: int) -> None:
        """Unload idle models, least recently used first, until ``needed`` more fits."""
        for entry in sorted(self._models.values(), key=lambda e: e.last_used):
            if self.used() + needed <= self.budget:
                return
            if entry.lock.held or entry.lock.waiting:
                continue
            self._unload(entry)

    def used(self) -> int:
        return sum(entry.memory for entry in self._models.values())

    def _unload(self, entry: Loaded) -> None:
        self._models.pop(entry.key, None)
        entry.lock.acquire()  # let a turn that just began finish first
        try:
            entry.engine.close()
        finally:
            entry.lock.release()

    def unload(self, name: str | None = None) -> list[str]:
        """Unload the models called ``name`` (file name, with or without .gguf), or all."""
        with self._lock:
            chosen = [e for e in self._models.values() if name is None or _matches(e, name)]
            for entry in chosen:
                self._unload(entry)
        return [entry.engine.model_name for entry in chosen]

    def entries(self) -> list[Loaded]:
        with self._lock:
            return list(self._models.values())

    def describe(self) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {
                "model": e.engine.model_name,
                "path": str(e.path),
                "ctx": e.engine.n_ctx,
                "loras": [[str(s.path), s.scale] for s in e.engine.loras],
                "memory_bytes": e.memory,
                "idle_s": 0.0 if e.lock.held else round(now - e.last_used, 1),
                "busy": e.lock.held,
                "queued": e.lock.waiting,
                "loaded_at": e.loaded_at,
            }
            for e in self.entries()
        ]


def _matches(entry: Loaded, name: str) -> bool:
    wanted = name.removesuffix(".gguf")
    return wanted in (entry.engine.model_name, str(entry.path), entry.path.stem)


def _state_key(key: str, engine: LlamaEngine) -> str:
    import llama_cpp

    import llmcli

    return json.dumps(
        {
            "model": key,
            "n_ctx": engine.n_ctx,
            "llmcli": llmcli.__version__,
            "llama_cpp": getattr(llama_cpp, "__version__", "?"),
        },
        sort_keys=True,
    )
