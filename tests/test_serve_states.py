"""The KV state store on its own: matching, damaged files, the size cap, refused writes."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from llmcli.serve.states import StateStore, common_prefix

KEY = '{"model": "m.gguf"}'


def test_the_longest_shared_prefix_wins_and_other_keys_never_match(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.save(KEY, [1, 2, 3], b"short")
    assert store.save(KEY, [1, 2, 3, 4, 5, 9], b"long")
    assert store.save('{"model": "other.gguf"}', [1, 2, 3, 4, 5, 6], b"foreign")
    best = store.best(KEY, [1, 2, 3, 4, 5, 6, 7])
    assert best is not None and best.tokens == [1, 2, 3, 4, 5, 9] and best.shared == 5
    assert store.load(KEY, best) == b"long"
    assert store.load('{"model": "other.gguf"}', best) is None  # filed under another key
    assert store.has(KEY, [1, 2, 3]) and not store.has(KEY, [1, 2])
    assert common_prefix([1, 2], [1, 2, 3]) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # truncated payload
        lambda data: data[:-3] + b"xyz",  # payload changed: sha256 differs
        lambda data: data[:20],  # header cut short
        lambda data: b"garbage" * 10,  # not a state at all
        lambda data: data.replace(b'"tokens"', b'"tokenz"'),  # header without tokens
    ],
)
def test_a_damaged_state_is_a_cache_miss(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    store = StateStore(tmp_path)
    store.save(KEY, [1, 2, 3], b"payload-bytes")
    (path,) = tmp_path.glob("*/*.kv")
    path.write_bytes(damage(path.read_bytes()))
    best = store.best(KEY, [1, 2, 3])
    assert best is None or store.load(KEY, best) is None


def test_the_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    store = StateStore(tmp_path, cap=2500)
    for n in range(3):
        store.save(KEY, [n, 1, 2], bytes(1000))
        path = next(p for p in tmp_path.glob("*/*.kv") if p.name == store._name([n, 1, 2]))
        os.utime(path, (1000 + n, 1000 + n))
    store.save(KEY, [9, 1, 2], bytes(1000))
    left = sorted(p.name for p in tmp_path.glob("*/*.kv"))
    assert len(left) == 2
    assert store._name([0, 1, 2]) not in left and store._name([1, 1, 2]) not in left


def test_a_refused_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        assert store.save(KEY, [1, 2, 3], bytes(100_000)) is False
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert list(tmp_path.glob("*/*")) == []
    assert store.save(KEY, [1, 2, 3], bytes(100_000)) is True
