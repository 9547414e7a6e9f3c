"""Chat with a local GGUF model through llama-cpp-python.

``model`` is the path of a GGUF file. ``chat_format`` names one of llama-cpp-python's
chat formats ("chatml", "alpaca", ...); left unset, the chat template stored in the
GGUF is used. With ``clip_model`` (the model's multimodal projector GGUF) it sees the
images in messages through one of llama-cpp-python's multimodal chat handlers
(``chat_handler``, default ``llava15``; see workers/llm/vision.py); without, images
are ignored.

Generation also stops at the chat-template tokens of :mod:`parley.chat_tokens`
(``template_stops``, on by default), so a model run with the wrong template does not go
on to write the user's next turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import llama_cpp

from parley.chat_tokens import STOP_STRINGS
from workers.engines import LlmRequest, TextDelta
from workers.errors import EngineError, InvalidRequest, ModelNotFound
from workers.llm import vision
from workers.llm.options import CONVERTERS, parse_options
from workers.threads import iterate_in_thread

log = logging.getLogger(__name__)

_HINT = "run `parley models pull` to fetch the configured models"
ROLES = ("system", "user", "assistant")


class LlamaCppEngine:
    """Streams a chat completion token by token; one generation at a time per model.

    The ``Llama`` object is not thread-safe, so requests are serialised with a lock. When
    the consumer goes away (cancelled call, barge-in) generation stops after the token
    being computed.
    """

    def __init__(
        self,
        model: str,
        chat_format: str | None = None,
        n_ctx: int = 2048,
        n_threads: int = 0,
        n_gpu_layers: int = 0,
        seed: int = -1,
        verbose: bool = False,
        template_stops: bool = True,
        clip_model: str = "",
        chat_handler: str = "llava15",
    ) -> None:
        self.model = model
        self.clip_model = clip_model
        self.chat_handler = chat_handler
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.seed = seed
        self.verbose = verbose
        self.template_stops = bool(template_stops)
        self._llama: llama_cpp.Llama | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"GGUF model {path} does not exist: {_HINT}")
        handler = None
        if self.clip_model:
            handler = vision.chat_handler(self.chat_handler, self.clip_model, self.verbose)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                chat_format=None if handler else self.chat_format,
                chat_handler=handler,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or None,
                n_gpu_layers=self.n_gpu_layers,
                seed=self.seed if self.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=self.verbose,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelNotFound(f"cannot load GGUF model {path}: {exc}") from exc
        log.info("llama.cpp model %s loaded (n_ctx %d)", path.name, self.n_ctx)

    @property
    def llama(self) -> llama_cpp.Llama:
        if self._llama is None:
            raise EngineError("LlamaCppEngine.run() before load()")
        return self._llama

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        if not request.messages:
            raise InvalidRequest("an LLM request needs at least one message")
        messages = []
        for message in request.messages:  # images only reach a model with a projector
            if message.role not in ROLES:
                raise InvalidRequest(f"unknown message role {message.role!r}")
            content = vision.content_parts(message) if self.clip_model else message.content
            messages.append({"role": message.role, "content": content})
        kwargs: dict[str, Any] = {
            "messages": messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens if request.max_tokens > 0 else None,
            **parse_options(request.options, CONVERTERS),
        }
        if self.template_stops:
            kwargs["stop"] = [*kwargs.get("stop", []), *STOP_STRINGS]
        llama, lock = self.llama, self._lock

        def produce(stop: threading.Event) -> Iterator[TextDelta]:
            while not lock.acquire(timeout=0.1):  # another request is generating
                if stop.is_set():
                    return
            try:
                # With stream=True this is a generator of OpenAI-style chunks.
                stream = cast(
                    "Generator[dict[str, Any], None, None]",
                    llama.create_chat_completion(stream=True, **kwargs),
                )
                try:
                    for chunk in stream:
                        if stop.is_set():
                            return
                        choice = chunk["choices"][0]
                        text = str(choice.get("delta", {}).get("content") or "")
                        if text:
                            yield TextDelta(text)
                        if choice.get("finish_reason"):
                            yield TextDelta("", finish_reason=str(choice["finish_reason"]))
                            return
                    yield TextDelta("", finish_reason="stop")
                finally:
                    stream.close()
            finally:
                lock.release()

        # aclosing: when this generator is closed, the producer's stop is set now,
        # not whenever the event loop finalises the inner generator.
        async with aclosing(iterate_in_thread(produce)) as deltas:
            async for delta in deltas:
                yield delta

    def close(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            with self._lock:
                llama.close()
