"""A canned OpenAI-compatible model server on 127.0.0.1: says exactly what a test scripts, streamed in small pieces.

``with CannedModel(reply) as m: OpenAICompatLLM(m.url)``; ``reply(prompt) -> str`` gets the last user message and
returns the whole output (the server streams it in `piece` characters per chunk, so tags are cut mid-way).
``m.prompts`` records every prompt. /v1/models, /v1/chat/completions (streamed or not) and /tokenize are served.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CannedModel:
    def __init__(self, reply: Callable[[str], str], piece: int = 5, context_window: int = 8192) -> None:
        self.reply, self.piece, self.context_window = reply, piece, context_window
        self.prompts: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "CannedModel":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _json(self, data: dict) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._json({"data": [{"id": "canned", "context_window": model.context_window}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if self.path.endswith("/tokenize"):
                    return self._json({"tokens": list(range(len(body.get("content", "")) // 4 + 1))})
                prompt = body["messages"][-1]["content"]
                model.prompts.append(prompt)
                text = model.reply(prompt)
                usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4 + 1}
                if not body.get("stream"):
                    return self._json({"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                                       "usage": usage})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(0, len(text), model.piece):
                    chunk = {"choices": [{"delta": {"content": text[i:i + model.piece]}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                end = {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": usage}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        return Handler
