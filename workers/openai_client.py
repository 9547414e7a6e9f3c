"""What the engines that call the OpenAI API (or a compatible server) share.

``make_client`` builds the ``openai.AsyncOpenAI`` client, ``engine_error`` turns the
SDK's exceptions into workers.errors, and ``OpenAIEngine`` is the small base class
that owns a client for the STT, LLM and TTS engines: ``load()`` builds it, ``close()``
closes it on the event loop that used it, ``errors()`` wraps a call.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import openai

from workers.errors import EngineError, EngineUnavailable, InvalidRequest, ModelNotFound

try:  # openai >= 3 is built on httpx2; older releases on httpx
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _http  # type: ignore[no-redef]

log = logging.getLogger(__name__)

# A key for OpenAI-compatible servers that ask for none (llama-server, vLLM, speaches):
# the SDK refuses to build a client without one.
NO_KEY = "sk-no-key"

# Errors of a response body read after the SDK handed the response over (streamed audio).
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (_http.TransportError,)
_MAPPED_ERRORS: tuple[type[Exception], ...] = (openai.OpenAIError, *_TRANSPORT_ERRORS)

# close() tasks scheduled on a running loop, kept referenced until they finish.
_closing: set[asyncio.Task[None]] = set()


def make_client(
    api_key: str | None, base_url: str | None, timeout: float, max_retries: int = 2
) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``base_url`` (else $OPENAI_BASE_URL, else api.openai.com).

    The key is ``api_key``, else $OPENAI_API_KEY; a custom server without either gets a
    placeholder key. Raises EngineUnavailable when the real OpenAI API has no key.
    """
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    if api_key is None:
        if base_url is None:
            raise EngineUnavailable(
                "no OpenAI API key: set OPENAI_API_KEY (or the engine's api_key option), "
                "or set base_url to an OpenAI-compatible server that needs none"
            )
        api_key = NO_KEY
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if message:
            return str(message)
    return exc.message


def engine_error(exc: Exception, what: str) -> EngineError:
    """The workers.errors exception for ``exc``, raised while calling ``what``."""
    if isinstance(exc, openai.APITimeoutError):
        return EngineUnavailable(f"{what}: the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return EngineUnavailable(f"{what}: cannot connect: {cause}")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return EngineUnavailable(f"{what}: the connection failed: {exc!r}")
    if isinstance(exc, openai.APIStatusError):
        status, message = exc.status_code, _server_message(exc)
        if isinstance(exc, openai.AuthenticationError):
            return EngineUnavailable(
                f"{what}: the server rejected the API key (HTTP 401: {message}); "
                "check OPENAI_API_KEY or the engine's api_key option"
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return EngineUnavailable(
                f"{what}: the API key is not allowed to do this (HTTP 403: {message})"
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelNotFound(f"{what}: model or endpoint not found (HTTP 404: {message})")
        if isinstance(exc, openai.RateLimitError):
            return EngineUnavailable(f"{what}: rate limited or out of quota (HTTP 429: {message})")
        if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
            return InvalidRequest(
                f"{what}: the server refused the request (HTTP {status}: {message})"
            )
        return EngineUnavailable(f"{what}: HTTP {status}: {message}")
    return EngineUnavailable(f"{what}: {exc}")


@contextmanager
def openai_errors(what: str) -> Iterator[None]:
    """Re-raise the OpenAI SDK's exceptions (and stream read errors) as EngineErrors."""
    try:
        yield
    except _MAPPED_ERRORS as exc:
        raise engine_error(exc, what) from exc


def close_client(client: openai.AsyncOpenAI, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close ``client`` from sync code; its connections belong to ``loop`` (None: unused)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if running is not None:  # called from async code: never block the loop
            task = running.create_task(client.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        elif loop is not None and loop.is_running():  # from a thread beside the loop
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=5)
        elif loop is not None and not loop.is_closed():
            loop.run_until_complete(client.close())
        elif loop is None:
            asyncio.run(client.close())
        # else: the loop that owned the connections is gone, and with it the sockets.
    except Exception:  # closing is best effort
        log.warning("closing the OpenAI client failed", exc_info=True)


class OpenAIEngine:
    """Base of the engines that call an OpenAI-compatible HTTP API."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self._api_key = api_key
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def load(self) -> None:
        if self._client is None:
            self._client = make_client(self._api_key, self.base_url, self.timeout, self.max_retries)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The client, for use on the running event loop (loading it if needed)."""
        self.load()
        assert self._client is not None
        self._loop = asyncio.get_running_loop()
        return self._client

    def close(self) -> None:
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None:
            close_client(client, loop)

    async def aclose(self) -> None:
        """``close()`` for async callers that can wait for the connections to close."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.close()

    def errors(self) -> AbstractContextManager[None]:
        """Context manager mapping SDK errors, naming this engine's model and server."""
        where = str(self._client.base_url) if self._client is not None else "OpenAI"
        return openai_errors(f"{type(self).__name__} model {self.model!r} at {where}")
