"""Images in chat messages: OpenAI-style content parts (JPEG data URLs), and the
llama-cpp-python multimodal chat handlers that read them with a GGUF projector."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from workers.engines import Message
from workers.errors import InvalidRequest, ModelNotFound

# ``chat_handler`` option -> llama_cpp.llama_chat_format class (each needs the model's
# multimodal projector GGUF, the ``clip_model`` option).
HANDLERS = {
    "llava15": "Llava15ChatHandler",
    "llava16": "Llava16ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama3_vision_alpha": "Llama3VisionAlphaChatHandler",
    "minicpm_v26": "MiniCPMv26ChatHandler",
    "qwen25_vl": "Qwen25VLChatHandler",
}


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def content_parts(message: Message) -> str | list[dict[str, Any]]:
    """The message's content: plain text, or text and image parts when it has images."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for image in message.images:
        parts.append({"type": "image_url", "image_url": {"url": data_url(image)}})
    return parts


def chat_handler(name: str, clip_model: str, verbose: bool = False) -> Any:
    """A llama-cpp-python multimodal chat handler for the projector ``clip_model``."""
    from llama_cpp import llama_chat_format

    if name not in HANDLERS:
        raise InvalidRequest(
            f"unknown chat_handler {name!r}; expected one of {', '.join(sorted(HANDLERS))}"
        )
    path = Path(clip_model).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"multimodal projector {path} does not exist (option clip_model)")
    handler_class = getattr(llama_chat_format, HANDLERS[name])
    try:
        return handler_class(clip_model_path=str(path), verbose=verbose)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelNotFound(f"cannot load multimodal projector {path}: {exc}") from exc
