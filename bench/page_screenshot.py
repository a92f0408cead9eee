"""A screenshot of the typing page (the README's picture), taken in headless Chromium by Playwright.

    python bench/page_screenshot.py --models kn5=runs/kn5 lstm=runs/cpu-lstm-adaptive --text "the students opened their " --out docs/results/figures/serve-page.png

Serves the models in this process (uvicorn on a free loopback port), types ``--text`` into the page with the
first model picked (``--model`` picks another), waits for the suggestions, and saves the page."""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--model", help="the model to pick in the page (default: the first)")
    ap.add_argument("--text", default="the students opened their ")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import uvicorn
    from playwright.sync_api import sync_playwright

    from seqlm.models.loader import load
    from seqlm.server.app import create_app, model_names

    named = model_names(args.models)
    app = create_app({n: load(p) for n, p in named}, dict(named))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 520})
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector("#model option", state="attached")
        if args.model:
            page.select_option("#model", args.model)
        page.click("#text")
        page.keyboard.type(args.text, delay=10)
        n = len(args.text.split())
        page.wait_for_function(f"document.querySelectorAll('#fluency .token').length === {n}")
        page.wait_for_function("document.querySelectorAll('#suggestions .suggestion').length > 0")
        time.sleep(0.3)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    server.should_exit = True
    print(args.out)


if __name__ == "__main__":
    main()
