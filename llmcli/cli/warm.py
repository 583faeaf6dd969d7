"""``llmcli serve``, ``ps`` and ``stop``, and the warm path of every model command.

With ``keep_alive`` not 0, ``ask``/``chat``/``next``/``tokenize`` open their model in
llmcli's engine server (started on first use, exiting after ``keep_alive`` idle)
instead of loading it themselves; see :mod:`llmcli.engine.served`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Annotated, Any

import typer

from llmcli.cli.base import environment
from llmcli.context import Environment
from llmcli.errors import LlmcliError, UsageError
from llmcli.render.json_out import write_json
from llmcli.service.warm import describe_duration
from llmcli.units import format_bytes

SERVER = "Server"
DEFAULT_STATE_CACHE = "2G"
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Bytes in ``8G``, ``512M``, ``1.5g``, ``1000000``."""
    spec = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = spec[-1:] if spec[-1:] in _SIZE_UNITS else ""
    try:
        value = float(spec[: len(spec) - len(unit)])
    except ValueError:
        raise UsageError(f"not a size: {text!r}", hint="e.g. 8G, 512M") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"not a size: {text!r}", hint="e.g. 8G, 512M")
    return int(value * _SIZE_UNITS[unit])


# -- serve ----------------------------------------------------------------------------------


def serve(
    cli: typer.Context,
    keep_alive: Annotated[
        str | None,
        typer.Option(
            "--keep-alive",
            metavar="DURATION",
            help="Exit after this long with no client (5m, 1h) [default: run until stopped].",
            show_default=False,
        ),
    ] = None,
    max_ram: Annotated[
        str | None,
        typer.Option(
            "--max-ram",
            metavar="SIZE",
            help="Keep at most this much model and KV memory loaded (8G, 512M); the least "
            "recently used model is unloaded first [default: half the RAM].",
            show_default=False,
        ),
    ] = None,
    state_cache: Annotated[
        str,
        typer.Option(
            "--state-cache",
            metavar="SIZE",
            help="Disk space for saved conversation KV states in the cache dir (0 = none).",
        ),
    ] = DEFAULT_STATE_CACHE,
    background: Annotated[
        bool, typer.Option("--background", hidden=True, help="Started by a client.")
    ] = False,
) -> None:
    """Run llmcli's engine server in the foreground: models stay loaded between calls.

    Clients (ask, chat, next, tokenize) find it on a Unix socket in the runtime dir
    (mode 0600, this user only). Without it running they start one themselves
    when keep_alive is not 0. Ctrl-C stops it.

    Examples:

      llmcli serve

      llmcli serve --max-ram 8G --keep-alive 1h
    """
    import logging

    from llmcli import paths
    from llmcli.config import parse_duration
    from llmcli.engine.served import _start_lock, connect
    from llmcli.engine.wire import socket_path
    from llmcli.serve.pool import total_ram
    from llmcli.serve.server import Server, run_server
    from llmcli.serve.states import StateStore

    try:
        idle = parse_duration(keep_alive) if keep_alive is not None else math.inf
    except ValueError as exc:
        raise UsageError(f"--keep-alive: {exc}", hint="e.g. --keep-alive 5m") from None
    budget = parse_size(max_ram) if max_ram is not None else total_ram() // 2
    cache = parse_size(state_cache)
    states = StateStore(paths.kv_state_dir(), cap=cache) if cache else None
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s llmcli serve: %(message)s"
    )
    server = Server(
        keep_alive=None if math.isinf(idle) or idle <= 0 else idle, budget=budget, states=states
    )
    if background:  # the client that started us holds the start lock
        run_server(server)
        return
    with _start_lock():
        try:
            running = connect(0, start=False)
        except LlmcliError:
            running = None
        if running is not None:
            pid = running.pid
            running.close()
            raise LlmcliError(
                f"an engine server is already running (pid {pid})", hint="stop it: llmcli stop"
            )
        server.bind()
    sys.stderr.write(
        f"llmcli engine server on {socket_path()} (pid {os.getpid()}); Ctrl-C stops it\n"
    )
    sys.stderr.flush()
    run_server_bound(server)


def run_server_bound(server: Any) -> None:
    """Serve on a socket bound already (the foreground path)."""
    import contextlib
    import signal

    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: server.stop())
    try:
        server.serve()
    except KeyboardInterrupt:
        server.close()


# -- ps / stop --------------------------------------------------------------------------


def _server_or_none() -> Any:
    from llmcli.engine.served import connect
    from llmcli.errors import ServiceUnavailable

    try:
        return connect(0, start=False)
    except ServiceUnavailable:
        return None


def ps(
    cli: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List the models loaded in llmcli's engine server: memory, idle time, queue.

    Examples:

      llmcli ps

      llmcli ps --json | jq '.models[].model'
    """
    env = environment(cli)
    connection = _server_or_none()
    if connection is None:
        if json_output:
            write_json(env.stdout, {"running": False, "models": []}, ascii=True)
        else:
            env.stdout.write("no engine server is running\n")
        env.stdout.flush()
        return
    try:
        info = connection.request({"op": "ps"})
    finally:
        connection.close()
    if json_output:
        data = {k: info[k] for k in ("pid", "version", "started", "keep_alive", "budget_bytes")}
        data["running"] = True
        data["models"] = info["models"]
        write_json(env.stdout, data, ascii=True)
        env.stdout.flush()
        return
    _print_ps(env, info)


def _print_ps(env: Environment, info: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from llmcli.render.console import make_console

    keep = info.get("keep_alive")
    up = describe_duration(round(time.time() - info["started"]))
    console = make_console(env)
    console.print(
        Text(
            f"engine server pid {info['pid']} · llmcli {info['version']} · up {up} · exits after "
            f"{describe_duration(keep) if keep else 'never'} idle · "
            f"budget {format_bytes(info['budget_bytes'])}",
            style="dim",
        )
    )
    if not info["models"]:
        console.print("no models loaded")
        return
    table = Table(box=None, header_style="bold")
    for column in ("MODEL", "CTX", "MEMORY", "IDLE", "STATE"):
        table.add_column(column, justify="right" if column in ("CTX", "MEMORY") else "left")
    for m in info["models"]:
        state = "busy" if m["busy"] else "idle"
        if m["queued"]:
            state += f", {m['queued']} queued"
        loras = f" +{len(m['loras'])} LoRA" if m["loras"] else ""
        table.add_row(
            m["model"] + loras,
            str(m["ctx"]),
            format_bytes(m["memory_bytes"]),
            "-" if m["busy"] else describe_duration(round(m["idle_s"])),
            state,
        )
    console.print(table)


def stop(
    cli: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(help="Unload only this model (its file name); default: stop the server."),
    ] = None,
) -> None:
    """Unload a model from llmcli's engine server, or stop the server.

    Examples:

      llmcli stop

      llmcli stop SmolLM2-135M-Instruct.Q4_1
    """
    env = environment(cli)
    connection = _server_or_none()
    if connection is None:
        env.stdout.write("no engine server is running\n")
        env.stdout.flush()
        return
    try:
        if model is None:
            connection.request({"op": "shutdown"})
            message = f"stopped the engine server (pid {connection.pid})"
        else:
            stopped = connection.request({"op": "stop", "model": model})["stopped"]
            if not stopped:
                raise LlmcliError(
                    f"{model} is not loaded in the engine server", hint="see 'llmcli ps'"
                )
            message = "unloaded " + ", ".join(stopped)
    finally:
        connection.close()
    env.stdout.write(message + "\n")
    env.stdout.flush()
