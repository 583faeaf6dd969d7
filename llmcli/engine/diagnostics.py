"""What the installed llama.cpp build can do: versions, backends, GPU offload, CPU features.

Used by ``llmcli doctor``. Everything llama.cpp-specific is imported inside
:func:`probe_llama_cpp`, so importing this module stays cheap. The backend list comes
from ggml's backend registry (``ggml_backend_reg_*``, called through ctypes because the
binding does not wrap it), else from the system-info string, else from the shared
libraries shipped in the package's ``lib/`` folder.
"""

from __future__ import annotations

import functools
import platform
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

DISTRIBUTION = "llama-cpp-python"
GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "HIP", "ROCm", "SYCL", "MUSA", "CANN", "OpenCL")
_LIB_BACKEND_RE = re.compile(r"ggml-([a-z0-9]+)", re.IGNORECASE)
_CMAKE_FLAGS = {
    "CUDA": "-DGGML_CUDA=on",
    "Metal": "-DGGML_METAL=on",
    "Vulkan": "-DGGML_VULKAN=on",
    "HIP": "-DGGML_HIP=on",
}


@dataclass
class LlamaBuild:
    """The llama.cpp build behind llama-cpp-python, as far as it can be told."""

    binding_version: str | None = None
    ggml_version: str | None = None
    ggml_commit: str | None = None
    system_info: str = ""
    gpu_offload: bool = False
    backends: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def gpu_backends(self) -> list[str]:
        gpu = {name.lower() for name in GPU_BACKENDS}
        return [name for name in self.backends if name.lower() in gpu]

    @property
    def cpu_features(self) -> list[str]:
        return cpu_features(self.system_info)

    def to_dict(self) -> dict[str, Any]:
        return {
            "llama_cpp_python": self.binding_version,
            "ggml_version": self.ggml_version,
            "ggml_commit": self.ggml_commit,
            "gpu_offload": self.gpu_offload,
            "backends": self.backends,
            "gpu_backends": self.gpu_backends,
            "devices": self.devices,
            "cpu_features": self.cpu_features,
            "system_info": self.system_info,
            "libraries": self.libraries,
            "error": self.error,
        }


def binding_version() -> str | None:
    """The installed llama-cpp-python version, read from metadata (no import)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def probe_llama_cpp() -> LlamaBuild:
    """Import llama_cpp and ask it about its build; never raises (``error`` says why).

    Cached: the build cannot change while the process runs.
    """
    build = LlamaBuild(binding_version=binding_version())
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or OSError from a broken shared library
        build.error = f"{type(exc).__name__}: {exc}"
        return build
    build.binding_version = getattr(llama_cpp, "__version__", None) or build.binding_version
    build.system_info = _system_info(llama_cpp)
    build.gpu_offload = bool(_call(llama_cpp, "llama_supports_gpu_offload", False))
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    build.libraries = sorted(p.name for p in lib_dir.glob("*ggml*") if not p.is_symlink())
    registry = _ggml_registry()
    build.ggml_version = registry.get("version")
    build.ggml_commit = registry.get("commit")
    build.devices = registry.get("devices", [])
    build.backends = (
        registry.get("backends")
        or backends_from_system_info(build.system_info)
        or backends_from_libraries(build.libraries)
    )
    return build


def _call(module: Any, name: str, default: Any) -> Any:
    function = getattr(module, name, None)
    if function is None:
        return default
    try:
        return function()
    except Exception:
        return default


def _system_info(llama_cpp: Any) -> str:
    info = _call(llama_cpp, "llama_print_system_info", b"")
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info or "")
    return text.strip()


def _ggml_registry() -> dict[str, Any]:
    """Backends and devices from ggml's registry, through ctypes (best effort)."""
    try:
        import ctypes

        from llama_cpp._ggml import libggml as lib
    except Exception:
        return {}
    found: dict[str, Any] = {}
    try:
        for name in ("ggml_version", "ggml_commit"):
            function = getattr(lib, name)
            function.argtypes, function.restype = [], ctypes.c_char_p
            found[name.removeprefix("ggml_")] = function().decode("utf-8", "replace")
    except (AttributeError, OSError):
        pass
    try:
        lib.ggml_backend_reg_count.restype = ctypes.c_size_t
        lib.ggml_backend_reg_get.argtypes, lib.ggml_backend_reg_get.restype = (
            [ctypes.c_size_t],
            ctypes.c_void_p,
        )
        lib.ggml_backend_reg_name.argtypes, lib.ggml_backend_reg_name.restype = (
            [ctypes.c_void_p],
            ctypes.c_char_p,
        )
        found["backends"] = [
            lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode("utf-8", "replace")
            for i in range(lib.ggml_backend_reg_count())
        ]
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.argtypes, lib.ggml_backend_dev_get.restype = (
            [ctypes.c_size_t],
            ctypes.c_void_p,
        )
        for function in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
            function.argtypes, function.restype = [ctypes.c_void_p], ctypes.c_char_p
        devices = []
        for i in range(lib.ggml_backend_dev_count()):
            device = lib.ggml_backend_dev_get(i)
            name = lib.ggml_backend_dev_name(device).decode("utf-8", "replace")
            description = lib.ggml_backend_dev_description(device).decode("utf-8", "replace")
            devices.append(f"{name} ({description})" if description else name)
        found["devices"] = devices
    except (AttributeError, OSError):
        pass
    return found


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """``"CUDA : ARCHS = 890 | CPU : AVX = 1 | …"`` → ``{"CUDA": {"ARCHS": "890"}, …}``."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for item in text.split("|"):
        item = item.strip()
        if " : " in item:
            section, _, item = item.partition(" : ")
            current = sections.setdefault(section.strip(), {})
        if current is None or "=" not in item:
            continue
        key, _, value = item.partition("=")
        current[key.strip()] = value.strip()
    return sections


def cpu_features(system_info: str) -> list[str]:
    """The instruction sets llama.cpp uses on this CPU (``AVX2 = 1`` and such)."""
    cpu = parse_system_info(system_info).get("CPU", {})
    return [name for name, value in cpu.items() if value == "1"]


def backends_from_system_info(system_info: str) -> list[str]:
    return list(parse_system_info(system_info))


def backends_from_libraries(libraries: list[str]) -> list[str]:
    """``libggml-cuda.so`` → ``CUDA``; ``ggml-base`` and the plain ``ggml`` are not backends."""
    names: list[str] = []
    for library in libraries:
        match = _LIB_BACKEND_RE.search(library)
        if match and match.group(1).lower() != "base":
            name = match.group(1).lower()
            pretty = next((b for b in (*GPU_BACKENDS, "CPU", "BLAS") if b.lower() == name), name)
            if pretty not in names:
                names.append(pretty)
    return names


def suggested_gpu_backends(system: str | None = None, machine: str | None = None) -> list[str]:
    """The GPU builds worth trying here, likeliest first."""
    system = system or platform.system()
    machine = machine or platform.machine()
    if system == "Darwin":
        return ["Metal"] if machine == "arm64" else ["Metal", "Vulkan"]
    if shutil.which("nvidia-smi"):
        return ["CUDA", "Vulkan"]
    if shutil.which("rocminfo") or shutil.which("rocm-smi"):
        return ["HIP", "Vulkan"]
    return ["CUDA", "Vulkan"]


def reinstall_command(backend: str | None, version: str | None = None) -> str:
    """The command that rebuilds llama-cpp-python (with ``backend``; ``None``: CPU only).

    It names this interpreter's pip, so it reinstalls into the environment llmcli runs
    from, and pins the installed version so the rebuild changes nothing else.
    """
    spec = f"llama-cpp-python=={version}" if version else "llama-cpp-python"
    command = (
        f"{shlex.quote(sys.executable)} -m pip install --force-reinstall --no-cache-dir "
        f"{shlex.quote(spec)}"
    )
    if backend is None:
        return command
    flag = _CMAKE_FLAGS.get(backend, f"-DGGML_{backend.upper()}=on")
    return f'CMAKE_ARGS="{flag}" {command}'
