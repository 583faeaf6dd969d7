"""``llmcli doctor`` on this machine: the real llama.cpp build, the real store, a real HTTP
endpoint on 127.0.0.1 standing in for the Hub."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from llmcli import paths
from llmcli.engine.diagnostics import (
    backends_from_libraries,
    backends_from_system_info,
    cpu_features,
    parse_system_info,
    reinstall_command,
    suggested_gpu_backends,
)
from llmcli.engine.hardware import physical_cores
from llmcli.store.catalog import model_folder
from llmcli.store.manifest import Manifest, ManifestFile, now_utc, write_manifest
from tests.conftest import run_cli


def doctor_json(env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_cli("doctor", "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_doctor_json_describes_this_machine(model_path: Path) -> None:
    status, report = doctor_json()
    checks = by_name(report)
    assert status == 0 and report["healthy"] is True and report["problems"] == []
    assert list(checks) == [
        "llmcli",
        "config",
        "llama.cpp",
        "cpu",
        "paths",
        "models",
        "bundled model",
        "hub",
    ]
    build = checks["llama.cpp"]
    assert build["details"]["llama_cpp_python"] == llama_cpp.__version__
    assert build["details"]["gpu_offload"] == bool(llama_cpp.llama_supports_gpu_offload())
    assert "CPU" in build["details"]["backends"]
    if not llama_cpp.llama_supports_gpu_offload():  # this machine: a CPU-only build
        assert build["status"] == "warn"
        assert "CPU-only build" in build["summary"]
        assert '"-DGGML_CUDA=on"' in build["fix"]
        assert "pip install --force-reinstall --no-cache-dir" in build["fix"]
        assert f"llama-cpp-python=={llama_cpp.__version__}" in build["fix"]
    cpu = checks["cpu"]["details"]
    assert cpu["physical_cores"] == physical_cores() == cpu["threads"]
    info = llama_cpp.llama_print_system_info().decode()
    assert cpu["features"] == [f for f in cpu["features"] if f"{f} = 1" in info]
    assert cpu["features"]
    assert checks["paths"]["details"]["config_file"] == str(paths.config_file())
    assert checks["paths"]["details"]["free_bytes"] > 0
    assert checks["bundled model"]["details"]["path"] == str(model_path)
    assert checks["hub"]["status"] == "skip"  # HF_HUB_OFFLINE=1 in every test


def test_doctor_text_output_and_exit_status() -> None:
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.rstrip().splitlines()[-1].startswith("healthy")
    assert "\x1b" not in text
    for name in ("llama.cpp", "cpu", "paths", "models", "bundled model", "hub"):
        assert f" {name} " in text


def test_doctor_reports_a_broken_config_with_its_line_and_fails() -> None:
    config = paths.config_file()
    config.parent.mkdir(parents=True)
    config.write_text("temperature = 0.5\nctx = [\n")
    status, report = doctor_json()
    assert status == 1 and report["healthy"] is False
    assert len(report["problems"]) == 1
    assert report["problems"][0].startswith(f"config: config file {config}, line 3, column 1")
    text = run_cli("doctor")
    assert text.returncode == 1
    assert b"1 problem(s): config" in text.stdout
    assert b"llmcli config edit" in text.stdout
    assert by_name(report)["llama.cpp"]["details"]["backends"]  # the rest still ran


def test_doctor_lists_store_models_with_their_sizes() -> None:
    folder = model_folder("someone/Tiny-GGUF", "tiny-Q8_0", None)
    folder.mkdir(parents=True)
    (folder / "tiny-Q8_0.gguf").write_bytes(b"GGUF" + bytes(2044))
    write_manifest(folder, _manifest("someone/Tiny-GGUF:Q8_0", "tiny-Q8_0.gguf", 2048))
    damaged = model_folder("someone/Broken-GGUF", "b", None)
    damaged.mkdir(parents=True)
    (damaged / "manifest.json").write_text("{")
    status, report = doctor_json()
    models = by_name(report)["models"]
    assert status == 0
    assert models["details"]["models"] == [{"model": "someone/Tiny-GGUF:Q8_0", "file_size": 2048}]
    assert models["status"] == "warn" and "1 damaged" in models["summary"]
    assert "2.0 KiB" in models["summary"]


def _manifest(ref: str, name: str, size: int) -> Manifest:
    repo = ref.split(":")[0]
    return Manifest(
        ref=ref,
        repo=repo,
        revision=None,
        commit="0" * 40,
        key=name.removesuffix(".gguf"),
        quant=ref.split(":")[1],
        files=(ManifestFile(name, name, size, None),),
        pulled_at=now_utc(),
        endpoint="https://huggingface.co",
    )


class _Hub(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = b"[]"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        type(self).paths.append(self.path)

    def log_message(self, *args: object) -> None:
        pass

    paths: list[str] = []


@pytest.fixture
def hub() -> Iterator[ThreadingHTTPServer]:
    _Hub.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_doctor_asks_the_hub_endpoint_when_online(hub: ThreadingHTTPServer) -> None:
    endpoint = f"http://127.0.0.1:{hub.server_address[1]}"
    status, report = doctor_json({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint})
    check = by_name(report)["hub"]
    assert status == 0
    assert check["status"] == "ok" and check["details"]["status"] == 200
    assert _Hub.paths == ["/api/models?limit=1"]


def test_an_unreachable_hub_is_a_warning_not_a_failure() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    status, report = doctor_json({"HF_HUB_OFFLINE": "", "HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    check = by_name(report)["hub"]
    assert status == 0 and report["healthy"] is True
    assert check["status"] == "warn" and "does not answer" in check["summary"]
    assert "HF_HUB_OFFLINE=1" in check["fix"]


def test_hf_hub_offline_skips_the_hub_check() -> None:
    result = run_cli("doctor", "--json", env={"HF_ENDPOINT": "http://192.0.2.1:9"})
    assert result.returncode == 0
    assert by_name(json.loads(result.stdout))["hub"]["status"] == "skip"


# ---- the pieces, on inputs this machine cannot produce --------------------------------------

CUDA_INFO = (
    "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "
    "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | OPENMP = 1 | "
)


def test_system_info_parsing_handles_gpu_builds() -> None:
    sections = parse_system_info(CUDA_INFO)
    assert sections["CUDA"]["ARCHS"] == "890"
    assert cpu_features(CUDA_INFO) == ["SSE3", "AVX", "AVX2", "OPENMP"]
    assert backends_from_system_info(CUDA_INFO) == ["CUDA", "CPU"]


def test_backends_from_the_shipped_libraries() -> None:
    libs = ["libggml-base.so", "libggml-cpu.so", "libggml-cuda.so", "libggml.so", "libllama.so"]
    assert backends_from_libraries(libs) == ["CPU", "CUDA"]
    assert backends_from_libraries(["libggml-metal.dylib"]) == ["Metal"]


def test_reinstall_commands_per_backend() -> None:
    assert reinstall_command("Metal", "0.3.36").startswith('CMAKE_ARGS="-DGGML_METAL=on" ')
    assert reinstall_command("Vulkan").endswith(
        "-m pip install --force-reinstall --no-cache-dir llama-cpp-python"
    )
    assert "CMAKE_ARGS" not in reinstall_command(None, "0.3.36")
    assert suggested_gpu_backends("Darwin", "arm64") == ["Metal"]
    assert "CUDA" in suggested_gpu_backends("Linux", "x86_64")
