"""What the llama.cpp engine runs on: its decode thread, context sizing, and quiet loading.

Kept apart from :mod:`llmcli.engine.llama` (the engine itself); imported only with it,
so nothing here is paid for unless a model is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from llmcli.engine.base import (
    DEFAULT_CTX_CAP,
    round_ctx,
)

N_BATCH = 512
_DONE = object()


def effective_ctx(requested: int | None, trained: int | None) -> int:
    """The context size to allocate: asked for, else trained capped at 4096; x256."""
    if requested:
        return round_ctx(requested)
    return round_ctx(min(trained or DEFAULT_CTX_CAP, DEFAULT_CTX_CAP))


def _silence_llama_log() -> None:
    """Drop llama.cpp's log lines (an aborted decode logs an error-level line).

    ``Llama(verbose=False)`` still lets error-level lines through; llmcli reports
    failures itself, and ``--verbose`` restores the full log.
    """
    logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL + 1)


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_extra_buffers(llama_cpp: Any, active: bool) -> Iterator[None]:
    """Load with llama.cpp's extra CPU buffer types (AMX, repacked weights) turned off.

    ``Llama()`` does not expose ``use_extra_bufts``; it builds its model parameters
    from ``llama_model_default_params()``, so that one call is wrapped while the model
    loads. Used where the CPU advertises AMX (see :func:`has_amx`): a crash is worse
    than the speed the repacked layout gives.
    """
    if not active:
        yield
        return
    binding = llama_cpp.llama.llama_cpp  # the module the binding's Llama looks it up in
    original = binding.llama_model_default_params

    def params() -> Any:
        value = original()
        value.use_extra_bufts = False
        return value

    with _PARAMS_LOCK:
        binding.llama_model_default_params = params
        try:
            yield
        finally:
            binding.llama_model_default_params = original


@contextlib.contextmanager
def _python_stderr_to_null() -> Iterator[None]:
    """Send what Python code prints to ``sys.stderr`` nowhere during the block."""
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        yield


class _DecodeThread:
    """The one native thread on which this engine evaluates tokens.

    llama.cpp's CPU backend runs on OpenMP, and OpenMP keeps a team of worker threads
    per calling thread. Evaluating from a fresh thread per generation (or from the
    caller's thread for some calls) leaves several teams competing for the cores:
    measured here, decoding from a second thread ran at ~60 % of the speed. So every
    evaluation goes through this single long-lived thread.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="llmcli-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def submit(self, job: Callable[[], None]) -> threading.Event:
        """Run ``job`` on the decode thread; the returned event is set when it ends."""
        done = threading.Event()

        def run() -> None:
            try:
                job()
            finally:
                done.set()

        self._jobs.put(run)
        return done

    def call(self, job: Callable[[], Any]) -> Any:
        """Run ``job`` on the decode thread and return its result (or raise its error)."""
        result: list[Any] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                result.append(job())
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        self.submit(run).wait()
        if failure:
            raise failure[0]
        return result[0]

    def close(self) -> None:
        self._jobs.put(None)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
