"""The README's dashboard screenshots, taken from a real run.

Starts ``streamlearn up --simulate --drift-at 60 --duration 160`` in a fresh data directory
(its own broker and topics, every part, the dashboard on a free port), opens the dashboard
in Debian's Chromium through Playwright ``--at`` seconds after the dashboard first
answers, and writes ``docs/images/dashboard.png`` (the top of the page: pipeline,
counters, models) and ``docs/images/dashboard-drift.png`` (the drift cards, with the last
model card above them). Then waits for the run to end and its checks to pass.

    .venv/bin/python scripts/screenshot_dashboard.py [--at 100] [--out docs/images]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.async_api import async_playwright

from streamlearn.kafka_local import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1400


async def shoot(url: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": 1800})
            await page.goto(url)
            # The page fills from the event stream: wait for the models and the drift cards.
            await page.wait_for_selector("#models-table tr >> nth=2", timeout=60_000)
            await page.wait_for_selector("#drift-list > *", timeout=60_000)
            await page.wait_for_timeout(3_000)  # a few more updates of the charts
            await page.screenshot(path=str(out / "dashboard.png"))
            await page.set_viewport_size({"width": WIDTH, "height": 1400})
            await page.evaluate(
                "() => window.scrollTo(0, document.getElementById('drift')"
                ".getBoundingClientRect().top + window.scrollY - 620)"
            )
            await page.wait_for_timeout(1_000)
            await page.screenshot(path=str(out / "dashboard-drift.png"))
        finally:
            await browser.close()


def wait_until_answers(url: str, up: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return
        except OSError:
            if up.poll() is not None:
                sys.exit(f"streamlearn up ended before its dashboard answered ({up.returncode})")
            if time.monotonic() > deadline:
                sys.exit(f"the dashboard did not answer within {timeout_s:.0f} s")
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=float, default=100.0,
                        help="seconds after the dashboard first answers")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: run ./scripts/bootstrap_browser")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlearn", "up", "--simulate", "--drift-at", "60",
        "--duration", "160", "--no-live", "--dashboard-port", str(port),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="streamlearn-screenshots-") as data_dir:
        # A fresh start, as the README shows it: not the topics of an earlier run.
        env = {**os.environ, "STREAMLEARN_DATA_DIR": data_dir}
        up = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_until_answers(url, up, timeout_s=180)
            time.sleep(args.at)
            asyncio.run(shoot(url, args.out))
            print(f"wrote {args.out / 'dashboard.png'} and {args.out / 'dashboard-drift.png'}")
            if up.wait() != 0:
                sys.exit(f"streamlearn up failed ({up.returncode}): see its output above")
        finally:
            if up.poll() is None:
                up.terminate()
                up.wait()


if __name__ == "__main__":
    main()
