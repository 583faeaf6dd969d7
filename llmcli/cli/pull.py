"""``llmcli pull REF``: download a GGUF model from the Hugging Face Hub into the local store.

The store does the work (:mod:`llmcli.store.download`); this module draws it: a Rich
progress bar (bytes, speed, ETA) on stderr in a terminal, one line per step in a pipe.
stdout gets only the path of the pulled model file, so ``$(llmcli pull REF)`` works.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.base import environment
from llmcli.context import Environment
from llmcli.errors import Interrupted, ServiceUnavailable, UsageError
from llmcli.store.refs import AliasRef, HubRef, PathRef, parse_ref

if TYPE_CHECKING:
    from llmcli.store.hub import RepoListing

DEFAULT_WAIT_S = 300.0


def pull(
    cli: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="OWNER/REPO, OWNER/REPO:QUANT or OWNER/REPO/FILE.gguf, each with an optional "
            "@REVISION; or an alias.",
            show_default=False,
        ),
    ],
    list_files: Annotated[
        bool,
        typer.Option(
            "--list",
            "-l",
            help="List the repo's GGUF models (quant, size, memory needed and whether it "
            "fits this machine, file).",
        ),
    ] = False,
    ctx: Annotated[
        int | None,
        typer.Option(
            "--ctx",
            min=1,
            help="With --list: the context size for the memory estimate "
            "[default: the model's, at most 4096].",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0.0,
            metavar="SECONDS",
            help="How long to wait when another llmcli is pulling the same file.",
        ),
    ] = DEFAULT_WAIT_S,
) -> None:
    """Download a model from the Hugging Face Hub (resumable, sha256-verified).

    Without a quant, Q4_K_M is chosen, else the nearest available. An interrupted
    pull keeps its partial file: run the same command again to resume.
    Honours HF_TOKEN (or a saved 'hf auth login'), HF_ENDPOINT and HF_HUB_OFFLINE.

    Examples:

      llmcli pull bartowski/SmolLM2-135M-Instruct-GGUF

      llmcli pull bartowski/SmolLM2-135M-Instruct-GGUF:q8_0

      llmcli pull bartowski/SmolLM2-135M-Instruct-GGUF --list
    """
    env = environment(cli)
    hub_ref = hub_ref_of(ref)
    if list_files:
        list_repo(hub_ref, env, ctx=ctx)
        return
    path = run_pull(hub_ref, env, wait_s=wait)
    env.stdout.write(f"{path}\n")
    env.stdout.flush()


def hub_ref_of(text: str) -> HubRef:
    """The Hub reference ``text`` names, directly or through an alias."""
    from llmcli.store.catalog import load_aliases

    parsed = parse_ref(text)
    if isinstance(parsed, AliasRef):
        target = load_aliases().get(parsed.name)
        if target is None:
            raise UsageError(
                f"{text!r} is neither OWNER/REPO nor an alias",
                hint="pull with OWNER/REPO[:QUANT]; see 'llmcli models alias' for aliases",
            )
        parsed = parse_ref(target)
    if isinstance(parsed, PathRef) or not isinstance(parsed, HubRef):
        raise UsageError(
            f"{text} is a local file: there is nothing to pull",
            hint="pass a Hub reference such as OWNER/REPO[:QUANT]",
        )
    return parsed


def run_pull(ref: HubRef, env: Environment, *, wait_s: float = DEFAULT_WAIT_S) -> Path:
    """Pull ``ref`` with progress on ``env.stderr``; returns the model file to load.

    Offline (``HF_HUB_OFFLINE``) or with the Hub unreachable, a model already in the store
    is used as is. Ctrl-C keeps the partial file for the next run and exits 130.
    """
    from llmcli.store.catalog import find_stored
    from llmcli.store.download import pull_model
    from llmcli.store.hub import QuantNotFound, choose_model, fetch_listing
    from llmcli.units import format_bytes

    reporter = make_reporter(env)
    try:
        listing = fetch_listing(ref)
    except ServiceUnavailable as exc:
        stored = find_stored(ref)
        if stored is None:
            raise
        reporter.note(f"{exc.message}; using {stored.ref} from the store (not checked for updates)")
        return stored.path
    try:
        choice = choose_model(listing, ref)
    except QuantNotFound as exc:
        print_listing(exc.listing, env, to_stderr=True)
        raise
    if choice.note:
        reporter.note(choice.note)
    try:
        with reporter:
            result = pull_model(listing, choice, ref, reporter, wait_s=wait_s)
    except KeyboardInterrupt:
        reporter.note("interrupted: the partial download is kept; run the same pull to resume")
        raise Interrupted("interrupted") from None
    model = result.model
    if result.downloaded_bytes:
        reporter.note(f"pulled {model.ref} ({format_bytes(model.manifest.size)}, sha256 verified)")
    else:
        reporter.note(f"{model.ref} is already in the store and up to date")
    return model.path


def list_repo(ref: HubRef, env: Environment, *, ctx: int | None = None) -> None:
    from llmcli.store.hub import fetch_listing

    listing = fetch_listing(ref)
    print_listing(listing, env, to_stderr=False, fits=_fits(listing, ctx, env))


def _fits(listing: RepoListing, ctx: int | None, env: Environment) -> dict[str, str] | None:
    """Per model key, "334 MiB ✓ fits" at the context, from one streamed header; else None."""
    from llmcli.cli.fitcheck import fit_for, this_machine
    from llmcli.errors import LlmcliError
    from llmcli.render.fit import mark
    from llmcli.store.remote_header import fetch_header, header_model
    from llmcli.units import format_bytes

    model = header_model(listing)
    if model is None:
        return None
    try:
        header = fetch_header(listing, model)
    except LlmcliError as exc:
        env.stderr.write(
            f"note: no memory estimate: cannot read {model.first.path}'s header: {exc}\n"
        )
        return None
    machine = this_machine()
    cells: dict[str, str] = {}
    for entry in listing.models:
        fit = fit_for(header, ctx, machine, weights=entry.size)
        if fit is None:
            env.stderr.write(f"note: no memory estimate: {model.first.path} lacks model sizes\n")
            return None
        total = fit["total"]
        assert isinstance(total, int)
        cells[entry.key] = f"{format_bytes(total)} {mark(str(fit['fits_ram']))}"
        cells["ctx"] = str(fit["ctx"])
    return cells


def print_listing(
    listing: RepoListing,
    env: Environment,
    *,
    to_stderr: bool,
    fits: dict[str, str] | None = None,
) -> None:
    """QUANT, SIZE, (MEMORY), FILE columns; ``*`` marks what a plain ``pull OWNER/REPO`` takes.

    ``fits`` (from :func:`_fits`) adds the memory needed and whether it fits this machine.
    """
    from llmcli.store.hub import QuantNotFound, choose_model
    from llmcli.units import format_bytes

    out = env.stderr if to_stderr else env.stdout
    try:
        default = choose_model(listing, HubRef(listing.repo_id)).model
    except QuantNotFound:
        default = None
    rows = [
        (
            "*" if model == default else " ",
            model.quant or "-",
            format_bytes(model.size),
            (fits or {}).get(model.key, "?"),
            model.label + ("" if model.complete else "  (incomplete upload)"),
        )
        for model in listing.models
    ]
    out.write(f"{listing.repo_id} @ {listing.commit[:12]}: {len(rows)} GGUF model(s)\n")
    if rows:
        quant_w = max(len("QUANT"), *(len(r[1]) for r in rows))
        size_w = max(len("SIZE"), *(len(r[2]) for r in rows))
        heading = f"MEMORY @ctx {fits['ctx']}" if fits else ""
        mem_w = max(len(heading), *(len(r[3]) for r in rows)) if fits else 0
        mem_head = f"{heading:<{mem_w}}  " if fits else ""
        out.write(f"  {'QUANT':<{quant_w}}  {'SIZE':>{size_w}}  {mem_head}FILE\n")
        for star, quant, size, memory, label in rows:
            cell = f"{memory:<{mem_w}}  " if fits else ""
            out.write(f"{star} {quant:<{quant_w}}  {size:>{size_w}}  {cell}{label}\n")
        if default is not None:
            out.write("(* = what 'llmcli pull OWNER/REPO' picks)\n")
        if fits:
            out.write(
                "(MEMORY = weights + KV cache + compute + runtime, against this machine's RAM: "
                "✓ fits in free RAM, ~ only in all of it, ✗ does not)\n"
            )
    out.flush()


# ---- progress --------------------------------------------------------------------------


class PlainReporter:
    """For pipes and TERM=dumb: one line per event on stderr, no bar."""

    def __init__(self, env: Environment) -> None:
        self._err = env.stderr

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def note(self, text: str) -> None:
        self._write(text)

    def start_file(self, name: str, total: int, done: int) -> None:
        from llmcli.units import format_bytes

        if done:
            self._write(f"resuming {name} at {format_bytes(done)} of {format_bytes(total)}")
        else:
            self._write(f"downloading {name} ({format_bytes(total)})")

    def advance(self, n: int) -> None:
        pass

    def end_file(self, name: str) -> None:
        self._write(f"downloaded {name}; verifying")

    def _write(self, text: str) -> None:
        self._err.write(f"{text}\n")
        self._err.flush()


class RichReporter:
    """In a terminal: a progress bar per file with bytes, speed and time left."""

    def __init__(self, env: Environment) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from llmcli.render.console import make_console

        self._console = make_console(env, stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._task: Any = None
        self._name = ""

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def note(self, text: str) -> None:
        self._console.print(text, style="dim", markup=False, highlight=False)

    def start_file(self, name: str, total: int, done: int) -> None:
        if self._task is not None and self._name == name:  # a restart from zero
            self._progress.reset(self._task, total=total, completed=done)
            return
        self._name = name
        self._task = self._progress.add_task(name, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def end_file(self, name: str) -> None:
        self.note(f"verifying {name}")


def make_reporter(env: Environment) -> PlainReporter | RichReporter:
    if env.stderr_isatty and env.environ.get("TERM") != "dumb":
        return RichReporter(env)
    return PlainReporter(env)
