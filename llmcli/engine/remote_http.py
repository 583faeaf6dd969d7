"""HTTP for the remote engine: one client, failures turned into llmcli errors.

The client is ``httpx2`` — the httpx fork huggingface_hub already depends on —
imported only when a remote engine is built, so ``llmcli --help`` never pays for
it. Every failure becomes a :class:`RequestFailed` carrying the
:class:`~llmcli.errors.LlmcliError` to show and whether trying again could help
(429, 502/503/504, connect timeouts); the caller decides whether to retry, since
only it knows whether any token has been shown yet.

The API key is sent as a bearer token and appears in no message, ``repr`` or log.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from llmcli.errors import (
    DataError,
    LlmcliError,
    ModelNotFound,
    ServiceUnavailable,
    TemporaryFailure,
    UsageError,
)

if TYPE_CHECKING:
    import httpx2

API_KEY_HINT = "set LLMCLI_API_KEY (or OPENAI_API_KEY) to the server's API key"
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 120.0
MAX_ERROR_BODY = 64 * 1024
MAX_JSON_BODY = 8 * 2**20
"""The largest JSON answer read from a GET (``/v1/models``): far above any real list."""
MAX_POST_BODY = 256 * 2**20
"""The largest JSON answer to a POST (embeddings of many texts are large)."""
MAX_RETRY_AFTER_S = 30.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RemoteConfig:
    """Where the server is and how patient to be with it."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    api_key_hint: str = API_KEY_HINT
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    """Longest wait for the next token (and for the first one)."""
    retries: int = 2
    """Extra attempts before the first token, after 429/502/503/504 or a connect timeout."""
    backoff_s: float = 0.5


class RequestFailed(Exception):
    """An attempt failed; ``error`` is what the user sees if it is not retried."""

    def __init__(
        self, error: LlmcliError, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def normalize_base_url(url: str) -> str:
    """``http://host:8080``, ``…/`` and ``…/v1`` all mean the API root ``…/v1``.

    A URL with some other path (``https://proxy/api/openai``) is kept as given:
    the user named the API root exactly.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"{display_url(url)!r} is not an http(s) URL",
            hint="pass the server's address, e.g. --base-url http://127.0.0.1:8080/v1",
        )
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def backoff_delay(attempt: int, base_s: float, retry_after: float | None) -> float:
    """The server's Retry-After when it gave one, else exponential backoff with jitter."""
    if retry_after is not None:
        return retry_after
    return base_s * (2**attempt) * random.uniform(0.75, 1.25)


class HttpClient:
    """A keep-alive client for one server; build it only when it will be used."""

    def __init__(self, config: RemoteConfig) -> None:
        import httpx2

        self.config = config
        self._httpx = httpx2
        headers = {"Accept": "application/json", "User-Agent": _user_agent()}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx2.Client(
            base_url=config.base_url + "/",
            headers=headers,
            timeout=httpx2.Timeout(
                config.read_timeout_s,
                connect=config.connect_timeout_s,
                read=config.read_timeout_s,
            ),
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"HttpClient({display_url(self.config.base_url)!r})"

    def url(self, path: str) -> str:
        return display_url(f"{self.config.base_url}/{path}")

    def get_json(self, path: str, *, limit: int = MAX_JSON_BODY) -> Any:
        """GET ``path`` and decode its JSON body, at most ``limit`` bytes of it
        (raises :class:`RequestFailed`)."""
        with self._guard(path), self._client.stream("GET", path) as response:
            return self._json_answer(path, response, limit)

    def post_json(self, path: str, body: dict[str, Any], *, limit: int = MAX_POST_BODY) -> Any:
        """POST ``body`` and decode the JSON answer (embeddings; raises :class:`RequestFailed`)."""
        with self._guard(path), self._client.stream("POST", path, json=body) as response:
            return self._json_answer(path, response, limit)

    def _json_answer(self, path: str, response: httpx2.Response, limit: int) -> Any:
        if response.status_code >= 400:
            raise self._status_failure(path, response, _read_bounded(response))
        raw = _read_bounded(response, limit + 1)
        if len(raw) > limit:
            raise RequestFailed(
                ServiceUnavailable(
                    f"{self.url(path)} sent more than {limit // 2**20} MiB",
                    hint="check that --base-url points at an OpenAI-compatible API",
                )
            )
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deeply
            raise RequestFailed(
                ServiceUnavailable(
                    f"{self.url(path)} did not return JSON",
                    hint="check that --base-url points at an OpenAI-compatible API",
                )
            ) from exc

    @contextmanager
    def stream(self, path: str, body: dict[str, Any]) -> Iterator[httpx2.Response]:
        """POST ``body`` and hold the response open while the caller reads it."""
        with self._guard(path), self._client.stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                raise self._status_failure(path, response, _read_bounded(response))
            yield response

    @contextmanager
    def _guard(self, path: str) -> Iterator[None]:
        """Turn the HTTP library's exceptions (raised here or in the caller's body) into ours."""
        httpx2 = self._httpx
        url = self.url(path)
        try:
            yield
        except httpx2.ConnectTimeout as exc:
            raise RequestFailed(
                TemporaryFailure(
                    f"connecting to {url} timed out after {self.config.connect_timeout_s:g} s",
                    hint="check the address and that the server is up",
                ),
                retryable=True,
            ) from exc
        except httpx2.ConnectError as exc:
            raise RequestFailed(
                ServiceUnavailable(
                    f"cannot connect to {url}: {_reason(exc)}",
                    hint="is the server running? check --base-url / LLMCLI_BASE_URL",
                )
            ) from exc
        except httpx2.TimeoutException as exc:
            raise RequestFailed(
                TemporaryFailure(
                    f"{url} sent nothing for {self.config.read_timeout_s:g} s",
                    hint="the server may be overloaded; raise LLMCLI_TIMEOUT to wait longer",
                )
            ) from exc
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise RequestFailed(UsageError(f"bad server URL {url}: {exc}")) from exc
        except httpx2.TooManyRedirects as exc:
            raise RequestFailed(
                ServiceUnavailable(
                    f"{url} redirected more than {self._client.max_redirects} times",
                    hint="the server or a proxy redirects in a loop; check --base-url",
                )
            ) from exc
        except httpx2.DecodingError as exc:
            raise RequestFailed(
                ServiceUnavailable(
                    f"the answer from {url} could not be decoded: {_reason(exc)}",
                    hint="the server or a proxy sent a body that does not match its "
                    "Content-Encoding (e.g. gzip); check its configuration",
                )
            ) from exc
        except httpx2.TransportError as exc:
            raise RequestFailed(
                ServiceUnavailable(
                    f"the connection to {url} broke: {_reason(exc)}",
                    hint="the server may have crashed or restarted; check its log",
                )
            ) from exc

    def _status_failure(self, path: str, response: httpx2.Response, body: bytes) -> RequestFailed:
        status = response.status_code
        detail = f"HTTP {status}"
        message = server_message(body)
        if message:
            detail += f": {message}"
        where = self.url(path)
        retry_after = _retry_after(response.headers.get("retry-after"))
        if status in (401, 403):
            what = "refused the API key" if self.config.api_key else "needs an API key"
            return RequestFailed(
                LlmcliError(f"{where} {what} ({detail})", hint=self.config.api_key_hint)
            )
        if status == 404:
            return RequestFailed(
                ModelNotFound(
                    f"{where} answered {detail}",
                    hint="check the model name (llmcli models list --remote NAME|URL) and "
                    "that the base URL is the API root, e.g. http://host:8080/v1",
                )
            )
        if status in (400, 413, 422):
            return RequestFailed(
                DataError(
                    f"the server rejected the request ({detail})",
                    hint="the prompt may exceed the server's context window, "
                    "or the server does not accept one of the settings",
                )
            )
        if status == 429:
            return RequestFailed(
                TemporaryFailure(
                    f"the server is rate-limiting requests ({detail})",
                    hint=_wait_hint(retry_after),
                ),
                retryable=retry_after is None or retry_after <= MAX_RETRY_AFTER_S,
                retry_after=retry_after,
            )
        if status >= 500:
            return RequestFailed(
                ServiceUnavailable(
                    f"the server failed ({detail})", hint="check the server's log; try again later"
                ),
                retryable=status in RETRY_STATUSES
                and (retry_after is None or retry_after <= MAX_RETRY_AFTER_S),
                retry_after=retry_after,
            )
        return RequestFailed(LlmcliError(f"{where} answered {detail}"))

    def close(self) -> None:
        self._client.close()


def server_message(body: bytes) -> str:
    """The human part of an error body: OpenAI's ``error.message``, FastAPI's ``detail``…"""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    message = _find_message(data)
    message = message.split("\n\n", 1)[0]
    message = re.sub(r"\s+", " ", message).strip()
    return message if len(message) <= 200 else message[:200] + "…"


def _find_message(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if key in data:
                return _find_message(data[key])
        return ""
    if isinstance(data, list) and data:
        return _find_message(data[0])
    return data if isinstance(data, str) else ""


def _read_bounded(response: httpx2.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """At most ``limit`` bytes of the (decoded) body; the rest is never read."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (an HTTP date is treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _wait_hint(retry_after: float | None) -> str:
    if retry_after is not None:
        return f"the server asks to wait {retry_after:g} s before trying again"
    return "wait a little and try again"


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    match = re.search(r"\[Errno -?\d+\] (.+?)(?:'|\)|$)", text)
    return match.group(1) if match else text


def _user_agent() -> str:
    from llmcli import __version__

    return f"llmcli/{__version__}"
