"""How ``ask --each-line`` / ``--each-file`` answers look: records, JSON lines, progress.

Three output formats, all in input order and one record per item (a failed item
gives an empty record, so positions always line up with the input):

* plain (default): the answers, each ending with a newline, separated by one blank
  line. Easy to read; an answer that itself contains a blank line is ambiguous, so
* ``--null``: every answer exactly as generated, terminated by a NUL byte
  (``xargs -0``, ``read -d ''``, ``split('\\0')``), unambiguous for any text;
* ``--json``: one JSON object per line with the item's ``index``, its ``line`` and
  ``input`` (or ``file``), ``text``, ``finish_reason``, ``stats`` (and ``error``).

Failures are also reported on stderr as they are reached, one line per item. The
progress bar (items done, tokens/s, ETA) is drawn on stderr only when stderr is a
terminal and stdout is not, i.e. when the answers go to a file or a pipe: in a
terminal the streamed answers are the progress.
"""

from __future__ import annotations

from typing import IO, Any

from llmcli.context import Environment
from llmcli.engine.base import GenerationStats, TokenPiece
from llmcli.errors import LlmcliError
from llmcli.render.json_out import dumps, logprob_tokens, model_json
from llmcli.render.sanitize import visible
from llmcli.render.stats import SEP


def _describe(index: int, source: dict[str, Any]) -> str:
    where = f"line {source['line']}" if "line" in source else source.get("file", "")
    return f"item {index + 1} ({where})" if where else f"item {index + 1}"


class _Records:
    """Shared by the text formats: streaming, flushing, failures on stderr."""

    def __init__(self, env: Environment) -> None:
        self.out: IO[str] = env.stdout
        self.err: IO[str] = env.stderr
        self.env_terminal = env.stdout_isatty
        self._last = ""

    def feed(self, text: str) -> None:
        self.out.write(visible(text) if self.env_terminal else text)  # a pipe: byte-exact
        self.out.flush()
        self._last = text or self._last

    def _report(self, index: int, source: dict[str, Any], error: LlmcliError | None) -> None:
        if error is not None:
            self.err.write(f"llmcli: {_describe(index, source)}: {error}\n")
            self.err.flush()


class PlainRecords(_Records):
    """Answers separated by a blank line, each ending with a newline."""

    def begin(self, index: int) -> None:
        self._last = ""
        if index > 0:
            self.feed("\n")
            self._last = ""

    def end(
        self,
        index: int,
        source: dict[str, Any],
        pieces: list[TokenPiece],
        stats: GenerationStats,
        error: LlmcliError | None,
    ) -> None:
        if not self._last.endswith("\n"):
            self.feed("\n")
        self._report(index, source, error)


class NulRecords(_Records):
    """Each answer exactly as generated, then a NUL byte."""

    def begin(self, index: int) -> None:
        pass

    def end(
        self,
        index: int,
        source: dict[str, Any],
        pieces: list[TokenPiece],
        stats: GenerationStats,
        error: LlmcliError | None,
    ) -> None:
        self.feed("\0")
        self._report(index, source, error)


class JsonRecords(_Records):
    """One JSON object per item and line, written when the item is done."""

    def __init__(
        self, env: Environment, model_name: str, logprobs: int, model_ref: str | None = None
    ) -> None:
        super().__init__(env)
        self.model_name = model_name
        self.model_ref = model_ref
        self.logprobs = logprobs

    def begin(self, index: int) -> None:
        pass

    def feed(self, text: str) -> None:
        pass  # the whole answer goes out with its object

    def end(
        self,
        index: int,
        source: dict[str, Any],
        pieces: list[TokenPiece],
        stats: GenerationStats,
        error: LlmcliError | None,
    ) -> None:
        record: dict[str, Any] = {
            "index": index,
            **source,
            **model_json(self.model_name, self.model_ref),
        }
        record["text"] = "".join(p.text for p in pieces)
        record["finish_reason"] = "error" if error is not None else stats.finish_reason
        record["stats"] = stats.to_dict()
        if error is not None:
            record["error"] = error.message
        if self.logprobs:
            record["tokens"] = logprob_tokens(pieces)
        self.out.write(dumps(record, terminal=bool(self.env_terminal)) + "\n")
        self.out.flush()
        self._report(index, source, error)


class StructuredRecords(_Records):
    """``--schema``: each answer's validated JSON on one line (an empty line if it failed)."""

    def __init__(self, env: Environment, schema: dict[str, Any] | None) -> None:
        super().__init__(env)
        self.schema = schema

    def begin(self, index: int) -> None:
        pass

    def feed(self, text: str) -> None:
        pass  # written once validated

    def end(
        self,
        index: int,
        source: dict[str, Any],
        pieces: list[TokenPiece],
        stats: GenerationStats,
        error: LlmcliError | None,
    ) -> None:
        from llmcli.structured import checked_answer

        line = ""
        if error is None:
            text = "".join(p.text for p in pieces)
            line = checked_answer(self.schema, text, stats.finish_reason, stats.generated_tokens)
        self.out.write(line + "\n")
        self.out.flush()
        self._report(index, source, error)


def open_records(
    env: Environment,
    *,
    json_mode: bool,
    null: bool,
    model_name: str,
    logprobs: int,
    model_ref: str | None = None,
    structured: bool = False,
    schema: dict[str, Any] | None = None,
) -> PlainRecords | NulRecords | JsonRecords | StructuredRecords:
    if json_mode:
        return JsonRecords(env, model_name, logprobs, model_ref)
    if structured:
        return StructuredRecords(env, schema)
    return NulRecords(env) if null else PlainRecords(env)


class ProgressBar:
    """Items done, tokens/s and ETA on stderr (Rich, transient: gone when the batch ends)."""

    def __init__(self, env: Environment, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from llmcli.render.console import make_console

        self._progress = Progress(
            TextColumn("[dim]answering"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[dim]{task.fields[speed]}"),
            TextColumn("[dim]ETA"),
            TimeRemainingColumn(),
            console=make_console(env, stderr=True),
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task("each", total=total, speed="")
        self._progress.start()

    def update(self, done: int, total: int, tokens: int, elapsed_s: float) -> None:
        speed = f"{tokens / elapsed_s:.1f} tok/s" if elapsed_s > 0 else ""
        self._progress.update(self._task, completed=done, total=total, speed=speed)

    def close(self) -> None:
        self._progress.stop()


def open_progress(env: Environment, total: int) -> ProgressBar | None:
    """A progress bar when stderr is a terminal and the answers go elsewhere."""
    if env.stderr_isatty and not env.stdout_isatty:
        return ProgressBar(env, total)
    return None


def format_summary(items: int, failed: int, tokens: int, elapsed_s: float) -> str:
    """``32 items · 2,048 tokens · 121.4 tok/s · 16.9 s · 1 failed`` (``--stats``)."""
    parts = [f"{items:,} item{'s' if items != 1 else ''}", f"{tokens:,} tokens"]
    if elapsed_s > 0:
        parts.append(f"{tokens / elapsed_s:.1f} tok/s")
    parts.append(f"{elapsed_s:.1f} s")
    if failed:
        parts.append(f"{failed} failed")
    return SEP.join(parts)
