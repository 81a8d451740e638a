"""The chat page (ami_agent/web/) in a real browser: Debian's chromium, headless, driven by Playwright, against the
real server and agent. A plan streamed and drawn step by step, a reload that finds the thread, four tabs at once,
errors as sentences, and no request that leaves the machine."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
STATE = (
    "As initial conditions I have that, the red block is clear, the yellow block is clear, the orange block is "
    "clear, the hand is empty, the red block is on top of the blue block, the blue block is on the table, the yellow "
    "block is on the table and the orange block is on the table. "
)
REQUEST = (
    STATE
    + "My goal is to have that the blue block is on top of the orange block. Never put the red block on the table."
)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("no chromium on this machine: `make install` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _page(browser, server, seen: list[str]):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.on("request", lambda r: seen.append(r.url))
    page.goto(server + "/")
    return page


def _ask(page, text: str, timeout_ms: int = 90_000):
    n = page.locator(".msg.assistant .status:not([hidden])").count()
    page.fill("#input", text)
    page.press("#input", "Enter")
    page.wait_for_function(
        f"document.querySelectorAll('.msg.assistant .status:not([hidden])').length > {n}", timeout=timeout_ms
    )
    return page.locator(".msg.assistant").last


def test_a_plan_streams_is_drawn_step_by_step_and_survives_a_reload(browser, server):
    seen: list[str] = []
    page = _page(browser, server, seen)
    answer = _ask(page, REQUEST)
    assert answer.locator(".status").inner_text() == "solved"
    text = answer.locator(".text").inner_text()
    assert text.startswith(
        "You have: red on blue, blue, orange and yellow on the table. You want: blue on orange."
    )
    steps = answer.locator(".frame").count() - 1
    assert steps >= 2 and answer.locator(".step-picture").count() == steps + 1  # the start, then one per step
    assert "Never put the red block on the table" in answer.locator(".rules").inner_text()
    assert answer.locator(".energy svg polyline").count() == 1
    decoded = answer.locator("pre.decoded").inner_text()
    assert "[PLAN]" in decoded and decoded in text  # the decoder's text, exactly
    # each picture is the world model's predicted state: after the last step, blue stands on orange
    where = answer.locator(".step-picture").last.evaluate(
        "svg => Object.fromEntries([...svg.querySelectorAll('g[data-block]')].map("
        "g => [g.dataset.block, [+g.firstChild.getAttribute('x'), +g.firstChild.getAttribute('y')]]))"
    )
    assert where["b"][0] == where["c"][0] and where["b"][1] < where["c"][1], where  # blue drawn on orange
    timing = page.evaluate("window.amiTimings[window.amiTimings.length - 1]")
    assert timing["planFoundAt"] and timing["firstToken"] - timing["planFoundAt"] <= 1000, timing
    thread = page.evaluate("location.hash").lstrip("#")
    # reload: the thread is listed, and opening it shows the plan again
    page.reload()
    page.wait_for_selector(f"#threads li[data-thread='{thread}']")
    page.wait_for_selector(".msg.assistant .step-picture")
    assert page.locator(".msg.assistant .step-picture").count() == steps + 1
    assert page.locator(".msg.user").first.inner_text().startswith("As initial conditions")
    assert all(u.startswith(server) for u in seen), [u for u in seen if not u.startswith(server)]
    page.context.close()


@pytest.mark.slow  # ~25-50 s; the page's streaming test keeps the browser in `make test`
def test_four_tabs_keep_four_threads_apart(browser, server):
    seen: list[str] = []
    goals = ["blue on top of the orange block", "orange on top of the red block", "yellow on top of the blue block", "blue on top of the yellow block"]  # fmt: skip
    pages = [_page(browser, server, seen) for _ in goals]
    for page, goal in zip(pages, goals):
        page.fill("#input", STATE + f"My goal is to have that the {goal}.")
        page.press("#input", "Enter")  # all four in flight at once
    for page, goal in zip(pages, goals):
        page.wait_for_selector(".msg.assistant .status.solved", timeout=120_000)
        x, _, y = goal.removesuffix(" block").partition(" on top of the ")
        assert f"You want: {x} on {y}." in page.locator(".msg.assistant .text").inner_text()
    threads = {p.evaluate("location.hash") for p in pages}
    assert len(threads) == 4
    for page, goal in zip(pages, goals):  # each thread, reloaded, still holds its own plan
        page.reload()
        page.wait_for_selector(".msg.assistant .step-picture")
        x, _, y = goal.removesuffix(" block").partition(" on top of the ")
        assert f"You want: {x} on {y}." in page.locator(".msg.assistant .text").inner_text()
        page.context.close()
    assert all(u.startswith(server) for u in seen)


def test_errors_on_the_page_are_sentences(browser, server):
    seen: list[str] = []
    page = _page(browser, server, seen)
    page.route("**/v1/chat/completions", lambda route: route.abort())
    page.fill("#input", "hello")
    page.press("#input", "Enter")
    page.wait_for_selector("#banner:not([hidden])")
    assert "is not answering" in page.locator("#banner").inner_text()
    page.unroute("**/v1/chat/completions")
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=400, content_type="application/json", body='{"error": {"message": "the message is empty"}}'
        ),
    )
    page.fill("#input", "hello again")
    page.press("#input", "Enter")
    page.wait_for_function("document.querySelector('#banner').textContent.includes('refused')")
    assert "the message is empty" in page.locator("#banner").inner_text()
    page.context.close()


def test_the_page_is_small():
    web = ROOT / "ami_agent" / "web"
    assert sum(f.stat().st_size for f in web.iterdir()) <= 300_000
    assert "http" not in (web / "index.html").read_text().replace("http-equiv", "")  # nothing from elsewhere


@pytest.mark.slow
def test_demo_conversation_screenshot(browser, server):
    """docs/screenshot.png: the demo's conversation in the page (`pytest -m slow -k screenshot`)."""
    from ami_agent.cli.chat import DEMO_TURNS

    page = _page(browser, server, [])
    for turn in DEMO_TURNS:
        _ask(page, turn, 180_000)
    height = page.evaluate("document.querySelector('#messages').scrollHeight") + 120
    # the whole conversation in one picture
    page.set_viewport_size({"width": 1280, "height": min(height, 4000)})
    page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))
    page.context.close()
