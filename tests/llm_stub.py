"""A tiny OpenAI-compatible chat server for tests, scripted per test.

    with LLMStub() as stub:
        stub.reply = "香港成立了新型工業化委員會。[1]"     # or a callable(request_json) -> str
        stub.delay_s = 2.0                                 # a slow reply, for timeouts
        stub.piece_delay_s = 0.1                           # slow pieces of a streamed reply
        stub.hold_at = ["政府", "九百"]                     # a streamed reply pauses once it has sent
        stub.resume()                                      # each of these, until the test resumes it
        stub.status = 500                                  # an HTTP error
        ... settings.llm_base_url = stub.base_url ...
        stub.requests[-1]["messages"]                      # what the client sent
        stub.logprobs = {"yes": -0.1, "no": -2.4}          # first-token candidates, sent when a
                                                           # request asks for logprobs (or a callable)

Runs ``http.server`` in a background thread on a free port of 127.0.0.1: no network, no
dependency beyond the standard library.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]
Logprobs = dict[str, float] | Callable[[dict[str, Any]], dict[str, float]] | None
HOLD_LIMIT_S = 120.0  # a held reply goes on by itself after this, so a failed test cannot hang


class LLMStub:
    def __init__(self) -> None:
        self.reply: Reply = "OK"
        self.logprobs: Logprobs = None  # None: a server that returns no logprobs
        self.delay_s = 0.0
        self.piece_delay_s = 0.0  # between streamed pieces (stream: true)
        self.hold_at: list[str] = []  # a streamed reply pauses after sending each, in order
        self._resumed = threading.Semaphore(0)
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the stub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LLMStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(body)
                stub.headers.append(dict(self.headers))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                if stub.status != 200:
                    self._send(stub.status, {"error": {"message": "scripted failure"}})
                    return
                text = stub.reply(body) if callable(stub.reply) else stub.reply
                if body.get("stream"):
                    self._send_stream(text)
                    return
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop", "logprobs": None}
                found = stub.logprobs(body) if callable(stub.logprobs) else stub.logprobs
                if body.get("logprobs") and found:  # OpenAI's shape, as llama_cpp.server 0.3 sends it
                    top = sorted(found.items(), key=lambda kv: -kv[1])[: int(body.get("top_logprobs") or 0)]
                    first = top[0] if top else next(iter(found.items()))
                    choice["message"]["content"] = first[0]
                    choice["logprobs"] = {"content": [{
                        "token": first[0], "logprob": first[1], "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in top]}],
                        "refusal": None}
                self._send(
                    200,
                    {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion",
                        "model": body.get("model", "stub"),
                        "choices": [choice],
                    },
                )

            def _send_stream(self, text: str) -> None:
                """The reply as server-sent chunks, a word or a character (CJK) each."""
                pieces = re.findall(r"\s*[\u3400-\u9fff]|\s*[^\s\u3400-\u9fff]+|\s+$", text)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    sent, holds = "", list(stub.hold_at)
                    for piece in pieces:
                        chunk = {"object": "chat.completion.chunk",
                                 "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                        self.wfile.flush()
                        sent += piece
                        if holds and holds[0] in sent:  # the test looks at the half-sent reply first
                            holds.pop(0)
                            stub._resumed.acquire(timeout=HOLD_LIMIT_S)
                        if stub.piece_delay_s:
                            time.sleep(stub.piece_delay_s)
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def resume(self) -> None:
        """Let a reply held at its next ``hold_at`` text go on."""
        self._resumed.release()

    def stop(self) -> None:
        self._resumed.release(1000)  # no held reply outlives the stub
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LLMStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
