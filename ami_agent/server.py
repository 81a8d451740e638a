"""`ami-agent serve`: the chat page and an OpenAI-compatible HTTP API over the agent (FastAPI + uvicorn).

GET / is the page (ami_agent/web/: threads, streamed answers, each plan drawn step by step); GET and DELETE
/api/threads[/ID] read and forget the threads of the agent's SQLite memory; POST /v1/chat/completions (streaming
and not), GET /v1/models and GET /healthz are OpenAI's. The plan record rides along as a top-level `plan_record`
field (absent for pure chat turns); the status, trace, thread and a planning turn's view (the predicted states,
steps, rules, energies) as `ami`. A conversation is one thread: pass `thread_id` (or OpenAI's `user`) to keep it
in the agent's SQLite memory; without one the agent rebuilds the problem from the request's earlier user
messages. Loopback by default.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse

from ami_agent.agent import remainder

WEB = Path(__file__).resolve().parent / "web"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}

MODEL_ID = "ami-agent"


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": None}}, status_code=status
    )


def create_app(agent, max_parallel: int = 2):
    app = FastAPI(title="AMI Agent", version="0.1")
    gate = threading.Semaphore(max_parallel)  # planning is CPU-bound: a few at a time, the rest queue

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "model": MODEL_ID, "world": agent.world.name, "worlds": sorted(agent.worlds)}

    @app.get("/", response_class=HTMLResponse)
    def page():
        return HTMLResponse((WEB / "index.html").read_text())

    @app.get("/static/{name}")
    def asset(name: str):
        if name not in ASSETS:
            return _error(404, f"no such file: {name}", kind="not_found")
        return FileResponse(WEB / name, media_type=ASSETS[name])

    @app.get("/api/threads")
    def threads():
        return {"threads": agent.threads()}

    @app.get("/api/threads/{thread}")
    def thread_messages(thread: str):
        state = agent.thread_state(thread)
        if not state:
            return _error(404, f"no thread {thread!r} in the agent's memory", "thread", "not_found")
        return {"thread": thread, "messages": state.get("messages") or []}

    @app.delete("/api/threads/{thread}")
    def delete_thread(thread: str):
        if not agent.delete_thread(thread):
            return _error(404, f"no thread {thread!r} in the agent's memory", "thread", "not_found")
        return {"deleted": thread}

    @app.get("/v1/models")
    def models():
        return {
            "object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "ami-agent"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return _error(400, f"the request body is not valid JSON: {e}")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty list of {role, content} objects", "messages")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                return _error(400, "each message needs a 'role' and a 'content'", "messages")
            if isinstance(m.get("content"), list):  # OpenAI content parts: keep the text ones
                m["content"] = "".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
        last = messages[-1]
        if last.get("role") != "user" or not isinstance(last.get("content"), str):
            return _error(400, "the last message must be the user's, with text content", "messages")
        thread = body.get("thread_id") or body.get("user") or (body.get("metadata") or {}).get("thread_id")
        if thread is not None and not isinstance(thread, str):
            return _error(400, "'thread_id' must be a string", "thread_id")
        history = None if thread else messages[:-1]
        stream = bool(body.get("stream"))

        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def extra_of(result: dict) -> dict:
            extra = {
                "ami": {
                    "status": result["status"],
                    "thread": result["thread"],
                    "trace": result["trace"],
                    "view": result.get("view"),
                }
            }
            if result.get("plan_record") is not None:
                extra["plan_record"] = result["plan_record"]
            return extra

        if not stream:

            def run():
                with gate:
                    return agent.ask(last["content"], thread=thread, history=history)

            result = await anyio.to_thread.run_sync(run)
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": MODEL_ID,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result["reply"]},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(result),
                **extra_of(result),
            }

        def chunk(delta, finish=None, **more) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **more,
            }
            return "data: " + json.dumps(body) + "\n\n"

        def events():  # a sync generator: Starlette runs it in a worker thread
            yield chunk({"role": "assistant", "content": ""})
            streamed = ""
            result: dict = {}
            with gate:
                for kind, data in agent.ask_stream(last["content"], thread=thread, history=history):
                    if kind == "token":
                        streamed += data
                        yield chunk({"content": data})
                    else:
                        result = data
            # a planning answer's first line streams when the plan is found, the rest once verified
            rest = remainder(streamed, result["reply"])
            for piece in _pieces(rest) if rest else ():
                yield chunk({"content": piece})
            yield chunk({}, "stop", usage=_usage(result), **extra_of(result))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _usage(result: dict) -> dict:
    rec = result.get("plan_record") or {}
    tin, tout = rec.get("tokens_in", 0), rec.get("tokens_out", 0)
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}


def _pieces(text: str, size: int = 3):
    words = text.split(" ")
    for i in range(0, len(words), size):
        yield " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")


def serve(agent, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:

    uvicorn.run(create_app(agent), host=host, port=port, log_level=log_level)
