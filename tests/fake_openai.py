"""A scripted OpenAI-compatible (and Ollama-native) chat server for wire-level tests.

It runs aiohttp on 127.0.0.1 with a random port in a background thread with its own event
loop, so the synchronous answerer can call it through the real client libraries exactly
as it would call vLLM, LM Studio, llama.cpp server or Ollama. Each request pops the next
scripted reply and is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Scripted:
    content: str | None = None  # the assistant message text
    status: int = 200
    delay: float = 0.0  # seconds to wait before replying (for timeouts)
    body: Any = None  # raw JSON body to send instead of a completion


class FakeOpenAI:
    """POST /v1/chat/completions (OpenAI) and POST /api/chat (Ollama, NDJSON) with scripted replies."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting -----------------------------------------------------------------------

    def reply(self, content: str, *, delay: float = 0.0) -> None:
        self._push(Scripted(content=content, delay=delay))

    def reply_json(self, payload: dict, *, delay: float = 0.0) -> None:
        """A reply whose message content is ``payload`` serialized, as a well-behaved model sends."""
        self.reply(json.dumps(payload), delay=delay)

    def fail(self, status: int, message: str = "scripted failure") -> None:
        kind = "rate_limit_error" if status == 429 else "server_error"
        self._push(Scripted(status=status, body={"error": {"message": message, "type": kind, "code": None}}))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def _push(self, item: Scripted) -> None:
        with self._lock:
            self._script.append(item)

    def _pop(self) -> Scripted:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return Scripted(status=500, body={"error": {"message": "no scripted reply left", "type": "server_error"}})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ollama_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/api/chat", self._ollama)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=0.5)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the OS-chosen port

    async def _shutdown(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()  # wakes handlers that are sleeping to simulate a slow model
        await self._runner.cleanup()

    # -- handlers ------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> tuple[dict, Scripted]:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {"_raw": await request.text()}
        with self._lock:
            self.requests.append(
                {"path": request.path, "headers": dict(request.headers), "json": body, "at": time.monotonic()}
            )
        item = self._pop()
        if item.delay:
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=item.delay)
            except asyncio.TimeoutError:
                pass
        return body, item

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body, item = await self._record(request)
        if item.status != 200 or item.body is not None:
            return web.json_response(item.body, status=item.status, headers={"retry-after": "1"} if item.status == 429 else None)
        if body.get("stream"):
            return web.json_response({"error": {"message": "fake server does not stream"}}, status=400)
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": item.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    async def _ollama(self, request: web.Request) -> web.StreamResponse:
        body, item = await self._record(request)
        if item.status != 200 or item.body is not None:
            return web.json_response({"error": item.body["error"]["message"]}, status=item.status)
        line = {
            "model": body.get("model", "fake"),
            "created_at": "2024-11-20T00:00:00Z",
            "message": {"role": "assistant", "content": item.content},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 10,
            "eval_count": 10,
        }
        if body.get("stream", True):
            return web.Response(text=json.dumps(line) + "\n", content_type="application/x-ndjson")
        return web.json_response(line)


__all__ = ["FakeOpenAI", "Scripted"]
