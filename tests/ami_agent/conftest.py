"""The agent on the real stack (the test session's vLLM engine, a real SQLite file) and the real HTTP server over
it, shared by the agent's, the server's and the page's tests of one module."""

import threading
import time

import pytest
from support import free_port

from ami_agent.agent import Agent
from ami_agent.services import AgentConfig


@pytest.fixture(scope="module")
def agent(tmp_path_factory, model_dir, vllm_backend):
    mem = tmp_path_factory.mktemp("mem") / "agent.sqlite"
    a = Agent(AgentConfig(memory=mem), backend=vllm_backend)
    yield a
    a.close()


@pytest.fixture(scope="module")
def server(agent):
    import uvicorn

    from ami_agent.server import create_app

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(agent), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(10)


@pytest.fixture(scope="module")
def logistics_reader():
    """The packaged logistics world's reader (its English: PlanBench's phrasing, numbered names)."""
    from ami_agent.perceive import Reader
    from ami_agent.services import packaged_worlds

    (d, vb), *_ = [w for w in packaged_worlds() if w[0].name == "logistics-strips"]
    return Reader(vb)
