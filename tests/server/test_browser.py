"""The typing page in a real browser: headless Chromium (Debian's package) driven by Playwright against a
server this test starts on a free loopback port.  Typing shows the API's suggestions, Tab accepts the first,
and every typed word gets a colour from its probability (a likely sentence greener than a scrambled one)."""

import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")

import seqlm  # noqa: E402
from seqlm.cli import main  # noqa: E402
from seqlm.server.app import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,  # a real browser
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")]

TEXT = ["the students opened their books", "the students opened their exams", "the teachers opened their doors",
        "the students read their books", "the students opened their books again", "a teacher closed the door"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    d = tmp_path_factory.mktemp("page")
    (d / "train.txt").write_text("\n".join(TEXT * 20) + "\n")
    assert main(["-q", "train", "--model", "kn", "--order", "3", "--train", str(d / "train.txt"), "--out",
                 str(d / "kn")]) == 0
    model = seqlm.load(d / "kn")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app({"kn": model}), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", model
    srv.should_exit = True
    thread.join(timeout=5)


def test_typing_page_in_chromium(server, tmp_path):
    url, model = server
    want = [s["token"] for s in seqlm.predict(model, "the students opened their", top_k=5)]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#model option", state="attached")
        page.click("#text")
        page.keyboard.type("the students opened their ", delay=15)
        page.wait_for_function("document.querySelectorAll('#fluency .token').length === 4")
        page.wait_for_function(f"[...document.querySelectorAll('#suggestions .suggestion')].map(e => e.dataset.token)"
                               f".join(' ') === {' '.join(want)!r}")
        shown = page.eval_on_selector_all("#suggestions .suggestion", "els => els.map(e => e.dataset.token)")
        assert shown == want and shown[0] == "books"
        page.keyboard.press("Tab")  # accept the first suggestion
        page.wait_for_function("document.querySelector('#text').value === 'the students opened their books '")
        page.wait_for_function("document.querySelectorAll('#fluency .token').length === 5")
        likely = page.eval_on_selector_all("#fluency .token", "els => els.map(e => +e.dataset.logprob)")
        page.screenshot(path=str(tmp_path / "page.png"))
        page.fill("#text", "their books the opened students ")
        page.wait_for_function("document.querySelector('#fluency .token') && "
                               "document.querySelector('#fluency .token').textContent === 'their'")
        page.wait_for_function("document.querySelectorAll('#fluency .token').length === 5")
        scrambled = page.eval_on_selector_all("#fluency .token", "els => els.map(e => +e.dataset.logprob)")
        assert sum(likely) > sum(scrambled)
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 5000
