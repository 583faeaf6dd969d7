"""The memory estimate (``models show``, ``pull --list``) against measured peak RSS."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from llmcli.store.fit import (
    FITS,
    TIGHT,
    TOO_BIG,
    Architecture,
    estimate,
    fit_ctx,
    machine_memory,
    verdict,
)
from llmcli.store.gguf import read_gguf
from tests.conftest import run_cli
from tests.hub_server import FakeHub, online_hub, run_llmcli, tiny_gguf

MIB = 1024 * 1024


def _peak_rss_of(args: list[str], stdin: bytes) -> int:
    """Peak RSS (bytes) of ``python -m llmcli ARGS``: RUSAGE_CHILDREN after it alone ran.

    The measurement runs in a fresh helper process, so the children maximum is this
    one command's, not an earlier test's subprocess.
    """
    helper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], input=sys.stdin.buffer.read(), capture_output=True)\n"
        "assert r.returncode == 0, r.stderr.decode()\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", helper, sys.executable, "-m", "llmcli", *args],
        input=stdin,
        capture_output=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr.decode()
    kib = int(out.stdout.split()[-1])  # Linux reports ru_maxrss in KiB
    assert resource.RUSAGE_CHILDREN is not None
    return kib * 1024


def test_estimate_at_ctx_4096_is_within_15_percent_of_asks_peak_rss(model_path: Path) -> None:
    """A prompt longer than one 512-token batch: the compute buffer is all in use, the peak.

    (A one-word prompt touches only part of llama.cpp's compute buffer and peaks lower;
    the estimate is meant to hold for long prompts too, so it must not be below that.)
    """
    shown = run_cli("models", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    memory = json.loads(shown.stdout)["memory"]
    assert memory["ctx"] == 4096
    assert memory["total"] == sum(memory[k] for k in ("weights", "kv_cache", "compute", "runtime"))

    long_prompt = " ".join(f"item{i}" for i in range(400)).encode()  # ~2,000 tokens
    peak = _peak_rss_of(
        ["ask", "--raw", "--ctx", "4096", "--greedy", "--max-tokens", "4"], long_prompt
    )
    assert abs(memory["total"] - peak) / peak < 0.15, (memory, peak / MIB)
    short_peak = _peak_rss_of(["ask", "--ctx", "4096", "--greedy", "--max-tokens", "4"], b"Hi")
    assert memory["total"] >= short_peak


def test_kv_cache_term_follows_the_context_and_the_architecture(model_path: Path) -> None:
    gguf = read_gguf(model_path)
    arch = Architecture.from_gguf(gguf)
    assert arch is not None
    assert (arch.n_layer, arch.n_head_kv, arch.head_dim_k, arch.n_vocab) == (30, 3, 64, 49152)
    small, big = estimate(1, arch, 4096), estimate(1, arch, 8192)
    assert small.kv_cache == 30 * 4096 * 3 * 128 * 2 == 90 * MIB  # llama.cpp: 90.00 MiB
    assert big.kv_cache == 2 * small.kv_cache and big.compute == small.compute
    assert fit_ctx(None, arch) == 4096 and fit_ctx(1000, arch) == 1024


def test_verdicts_and_machine_memory(tmp_path: Path) -> None:
    assert (
        verdict(1, 10, 5) == FITS and verdict(7, 10, 5) == TIGHT and verdict(11, 10, 5) == TOO_BIG
    )
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    600 kB\n")
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    assert machine_memory(meminfo, cgroup).ram_total == 1000 * 1024
    (cgroup / "memory.max").write_text("512000\n")
    (cgroup / "memory.current").write_text("112000\n")
    limited = machine_memory(meminfo, cgroup)
    assert (limited.ram_total, limited.ram_available) == (512000, 400000)


def test_models_show_prints_the_estimate_against_this_machine() -> None:
    result = run_cli("models", "show", "--ctx", "8192")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "Memory at ctx 8192:" in out and "KV cache 180 MiB" in out
    assert "This machine's RAM:" in out and "fits" in out


def test_pull_list_estimates_every_quant_from_the_smallest_files_header(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    big = tiny_gguf(tmp_path, "big", hidden=512)
    small = tiny_gguf(tmp_path, "small", hidden=256)
    local = tmp_path / "small-local.gguf"
    local.write_bytes(small)
    with online_hub(monkeypatch, tmp_path) as hub:
        hub.add_repo("acme/m-GGUF", {"m-Q8_0.gguf": big, "m-Q4_K_M.gguf": small})
        assert isinstance(hub, FakeHub)
        result = run_llmcli("pull", "acme/m-GGUF", "--list", "--ctx", "2048")
        assert result.returncode == 0, result.stderr
        served = hub.served("acme/m-GGUF", "m-Q4_K_M.gguf")
        assert 0 < served <= len(small) and hub.served("acme/m-GGUF", "m-Q8_0.gguf") == 0
    assert "MEMORY @ctx 2048" in result.stdout
    rows = {line[2:].split()[0]: line for line in result.stdout.splitlines() if ".gguf" in line}
    assert "✓ fits" in rows["Q4_K_M"] and "✓ fits" in rows["Q8_0"]
    # Same numbers as `models show` on the file itself.
    shown = run_cli("models", "show", str(local), "--ctx", "2048", "--json")
    memory = json.loads(shown.stdout)["memory"]
    from llmcli.units import format_bytes

    assert format_bytes(memory["total"] - memory["weights"] + len(small)) in rows["Q4_K_M"]
