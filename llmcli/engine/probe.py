"""Load a model once in a child process before trusting it in this one.

llmcli's own GGUF header check catches damaged and foreign files, but a file can
pass it and still make llama.cpp abort (a failed ``GGML_ASSERT`` kills the whole
process, REPL and unsaved state included). So the first time a file is used it
is loaded by a child process; a crash there becomes a one-line error here. The
verdict is remembered per file (path, size, mtime and a hash of its first MiB),
so the probe costs one extra load per file, not per run.

Run as ``python -m llmcli.engine.probe PATH`` it is that child.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmcli import paths
from llmcli.errors import DataError, TemporaryFailure, Terminated

PROBE_TIMEOUT_S = 300
HEAD_BYTES = 1024 * 1024
REFUSED = 3
"""The child's exit status when llama.cpp refused the file; any other failure (a broken
llama-cpp-python install, no memory) says nothing lasting about the file."""
STOPPED_FROM_OUTSIDE = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL}
"""Signals that say something about the moment (Ctrl-C to the process group, a closed
terminal, the OOM killer), not about the file: no verdict is remembered for them."""


def verdict_file() -> Path:
    return paths.cache_dir() / "load-verdicts.json"


PROBE_VERSION = "2"
"""Part of every verdict's key: verdicts of an older probe (load only, no evaluation) are
not trusted by this one."""


def fingerprint(path: Path) -> str:
    """Identify a file's content cheaply: path, size, mtime and its first MiB."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(HEAD_BYTES))
    return (
        f"v{PROBE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{digest.hexdigest()}"
    )


def _read_verdicts(store: Path) -> dict[str, str]:
    """Verdicts so far; an unreadable or corrupt cache is simply started afresh."""
    try:
        data = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_verdict(store: Path, key: str, verdict: str) -> None:
    verdicts = _read_verdicts(store)
    verdicts[key] = verdict
    with contextlib.suppress(OSError):
        store.parent.mkdir(parents=True, exist_ok=True)
        temp = store.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(verdicts, indent=1))
        temp.replace(store)


def _child_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "llmcli.engine.probe", str(path)]


def _child_environment() -> dict[str, str]:
    """On a failed assert ggml attaches gdb to print a backtrace (~30 CPU-seconds when gdb
    is installed), to a stderr the binding has pointed at /dev/null anyway."""
    return {**os.environ, "GGML_NO_BACKTRACE": "1"}


@dataclass(frozen=True)
class Verdict:
    """What the child said, and what it is about."""

    text: str
    lasting: bool  # about the file: remembered, so the next run skips the probe
    memory: bool = False  # it failed for lack of memory: exit 75, never remembered


OK = Verdict("ok", lasting=True)
MEMORY_SIGNS = (
    "mem_buffer != NULL",  # ggml_init's GGML_ASSERT when malloc fails
    "bad_alloc",
    "MemoryError",
    "Cannot allocate memory",
    "failed to allocate",
    "unable to allocate",
    "out of memory",
)
"""Lines in the child's stderr that mean an allocation failed (a moment, not the file)."""


def memory_limit() -> str | None:
    """``ulimit -v 300000`` when this process (and so the child) runs under a finite address
    space or data limit: a crash there may be the limit's doing, not the file's."""
    import resource

    for name, flag in (("RLIMIT_AS", "-v"), ("RLIMIT_DATA", "-d")):
        soft, _hard = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY:
            return f"ulimit {flag} {soft // 1024}"
    return None


def ensure_loadable(
    path: Path, *, command: Sequence[str] | None = None, recheck: bool = False
) -> None:
    """Raise :class:`DataError` if loading ``path`` crashes or fails in a child process,
    :class:`TemporaryFailure` if it failed for lack of memory. ``recheck`` forgets the
    remembered verdict first (``llmcli models verify``)."""
    store = verdict_file()
    key = fingerprint(path)
    if recheck:
        forget(path)
    text = _read_verdicts(store).get(key)
    verdict = Verdict(text, lasting=True) if text is not None else None
    if verdict is None:
        verdict = _probe(path, command or _child_command(path))
        if verdict.lasting:
            _write_verdict(store, key, verdict.text)
    if verdict.text == "ok":
        return
    if verdict.memory:
        raise TemporaryFailure(
            f"llama.cpp ran out of memory loading {path}: {verdict.text}",
            hint="free memory or raise the memory limit, then try again (nothing was remembered "
            "about the file)",
        )
    raise DataError(
        f"llama.cpp cannot load {path}: {verdict.text}",
        hint="the file is damaged or made for another llama.cpp version; download it again "
        f"('llmcli models verify {path}' checks it again)"
        if verdict.lasting
        else "this says nothing lasting about the file: try again ('llmcli doctor' checks "
        "the installation)",
    )


def forget(path: Path) -> int:
    """Drop every remembered verdict about ``path`` (any version of the file); how many."""
    store = verdict_file()
    verdicts = _read_verdicts(store)
    resolved = str(path.resolve())
    keep = {k: v for k, v in verdicts.items() if _key_path(k) != resolved}
    if len(keep) != len(verdicts):
        with contextlib.suppress(OSError):
            temp = store.with_suffix(f".{os.getpid()}.tmp")
            temp.write_text(json.dumps(keep, indent=1))
            temp.replace(store)
    return len(verdicts) - len(keep)


def _key_path(key: str) -> str:
    parts = key.split("|")
    return parts[1] if parts[0].startswith("v") and len(parts) > 4 else parts[0]


def _probe(path: Path, command: Sequence[str]) -> Verdict:
    """The child's verdict: whether it is about the file (worth remembering) or the moment."""
    try:
        child = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=PROBE_TIMEOUT_S,
            env=_child_environment(),
        )
    except subprocess.TimeoutExpired:
        return Verdict(f"loading took longer than {PROBE_TIMEOUT_S} s", lasting=False)
    if child.returncode == 0:
        return OK
    stderr = child.stderr.decode(errors="replace")
    if child.returncode < 0:
        verdict = _killed(signal.Signals(-child.returncode))
    else:
        last = stderr.strip().splitlines()
        reason = last[-1] if last else f"the loader failed (exit {child.returncode})"
        verdict = Verdict(reason, lasting=child.returncode == REFUSED)
    return _under_pressure(verdict, stderr)


def _under_pressure(verdict: Verdict, stderr: str) -> Verdict:
    """A failure that shows an allocation failing, or that happened under a memory limit,
    is about the moment: said so, never remembered."""
    if verdict.memory:
        return verdict
    limit = memory_limit()
    if any(sign in stderr for sign in MEMORY_SIGNS):
        where = f" under a memory limit ({limit})" if limit else ""
        return Verdict(f"an allocation failed{where} ({verdict.text})", False, memory=True)
    if limit:
        return Verdict(f"{verdict.text} under a memory limit ({limit})", False, memory=True)
    return verdict


def _killed(sig: signal.Signals) -> Verdict:
    """A crash (SIGABRT, SIGSEGV...) is the file's fault; Ctrl-C or a kill is not."""
    if sig not in STOPPED_FROM_OUTSIDE:
        return Verdict(f"the loader crashed ({sig.name})", lasting=True)
    if sig == signal.SIGINT:  # Ctrl-C reached the child first; this process stops too
        raise KeyboardInterrupt
    if sig == signal.SIGTERM:
        raise Terminated("terminated")
    if sig == signal.SIGKILL:  # the OOM killer's signal
        return Verdict("the loader was killed (SIGKILL; out of memory?)", False, memory=True)
    return Verdict(f"the loader was killed ({sig.name})", lasting=False)


PROBE_TEXT = b"Hello, world! 1 2 3"
"""Evaluated by the child after the load: a file whose tensor types are wrong for their op
(an F32 norm retyped I32) loads fine and aborts llama.cpp at the first decode."""


def _main(argv: Sequence[str]) -> int:
    """Child side: load the model with a minimal context and evaluate a few tokens; exit 0
    when both worked."""
    import logging

    import llama_cpp

    from llmcli.engine.hardware import has_amx
    from llmcli.engine.llama import _without_extra_buffers

    logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL + 1)
    try:
        with _without_extra_buffers(llama_cpp, has_amx()):  # loaded as the engine loads it
            model = llama_cpp.Llama(
                model_path=argv[0], n_ctx=256, n_batch=256, n_threads=1, verbose=False
            )
    except (ValueError, RuntimeError) as exc:
        print(f"the loader refused it: {exc}", file=sys.stderr)
        return REFUSED
    try:
        tokens = model.tokenize(PROBE_TEXT, add_bos=True)[:8]
        if tokens:
            model.eval(tokens)
    except (ValueError, RuntimeError) as exc:
        print(f"llama.cpp cannot evaluate it: {exc}", file=sys.stderr)
        return REFUSED
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
