"""A small OpenAI-compatible chat server over real HTTP, serving a local model through TransformersPolicy.

Used by the tests of the OpenAI backend (no client mocks) and handy by hand::

    python tests/openai_server.py --model builds/agent-twc/models/sft --port 8011
    steca-train eval --recipe ... --set policy.backend=openai --set policy.base_url=http://127.0.0.1:8011/v1 \
        --set policy.model=tiny

Fault injection for retry tests: ``server.fail_next = n`` answers the next n requests with HTTP 500,
``server.stall_next = n`` makes the next n requests sleep ``stall_s`` seconds before answering (the client
times out first).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from steca_data.policies.base import PolicyRequest, SamplingParams


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, policy, model_name: str = "tiny", host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.policy = policy
        self.model_name = model_name
        self.fail_next = 0
        self.stall_next = 0
        self.stall_s = 3.0
        self.requests = 0
        self._lock = threading.Lock()  # one generate at a time: torch modules are not re-entrant
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/v1"

    def start(self) -> ChatServer:
        self._thread = threading.Thread(target=self.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def complete(self, body: dict) -> str:
        params = SamplingParams(
            temperature=float(body.get("temperature") or 0.0),
            top_p=float(body.get("top_p") or 1.0),
            max_new_tokens=int(body.get("max_tokens") or 64),
        )
        request = PolicyRequest(messages=body["messages"], seed=body.get("seed"))
        with self._lock:
            return self.policy.generate([request], params)[0]


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        srv = self.server
        with srv._lock:
            srv.requests += 1
            fail = srv.fail_next > 0
            stall = not fail and srv.stall_next > 0
            srv.fail_next -= int(fail)
            srv.stall_next -= int(stall)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"unknown path {self.path}"}})
        if fail:
            return self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
        if stall:
            time.sleep(srv.stall_s)
        try:
            text = srv.complete(body)
        except Exception as exc:  # noqa: BLE001 - report as the API would
            return self._send(400, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
        self._send(
            200,
            {
                "id": f"chatcmpl-{srv.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": srv.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            },
        )


def main() -> None:
    import argparse

    from steca_data.policies.transformers_policy import TransformersPolicy

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default="tiny")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    server = ChatServer(TransformersPolicy(args.model, threads=args.threads), args.name, port=args.port)
    print(f"serving {args.model} as {args.name!r} on {server.base_url}")
    server.serve_forever()


if __name__ == "__main__":
    main()
