#!/usr/bin/env python3
"""The console and the visit report in a real browser (headless Chromium through
chromium-driver's WebDriver), over a data directory `telepipe demo` filled.

Checks, each failing loudly:
- `telepipe serve` prints the tokened URL as its first line; without the token (or with a
  wrong one, or a foreign Host) the console answers 401/421;
- `/` lists every session of the data directory;
- `/sessions/demo-visit-chest-pain` shows every entity of that session's results document
  (DetectEntities, ICD-10-CM and drug passes) with its category, has an <audio> element,
  and a click on a finding seeks the audio to the finding's time;
- `/operations` shows the queues;
- `telepipe report` writes a mode-0600 file with no external src/href that shows the same
  entities, opened from disk with networking disabled.

Screenshots go to the artefacts directory (under target/, not in git).

Usage: console_browser_test.py --telepipe BIN --data-dir DIR --artifacts DIR
Standard library only: the WebDriver protocol is JSON over HTTP.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path



def fail(message: str) -> None:
    print(f"console browser test: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: D401 - urllib's hook
        return None


class WebDriver:
    """Just enough of the W3C WebDriver protocol."""

    def __init__(self, driver: str, artifacts: Path):
        port = free_port()
        self.log = open(artifacts / "chromedriver.log", "w")
        self.process = subprocess.Popen([driver, f"--port={port}"], stdout=self.log, stderr=self.log)
        self.base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600",
                     "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        }
        binary = shutil.which("chromium")
        if binary:
            options["binary"] = binary
        answer = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = answer["value"]["sessionId"]

    def call(self, method: str, path: str, body: object | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            fail(f"WebDriver {method} {path}: {error.code} {error.read()[:500]!r}")
            raise

    def session_call(self, method: str, path: str, body: object | None = None) -> object:
        return self.call(method, f"/session/{self.session}{path}", body).get("value")

    def go(self, url: str) -> None:
        self.session_call("POST", "/url", {"url": url})

    def run(self, script: str, *args: object) -> object:
        return self.session_call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        value = self.session_call("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(value.values()))

    def click(self, element: str) -> None:
        self.session_call("POST", f"/element/{element}/click", {})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.session_call("GET", "/screenshot")))

    def offline(self) -> None:
        # chromium-driver's own command: what the browser's DevTools "Offline" does.
        self.session_call("POST", "/chromium/network_conditions", {"network_conditions": {
            "offline": True, "latency": 0, "download_throughput": 0, "upload_throughput": 0}})

    def quit(self) -> None:
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected_entities(data_dir: Path, session: str) -> list[tuple[str, str]]:
    """(text, category) of every entity of the session's results documents."""
    folder = data_dir / "buckets" / "results" / "clinical" / session
    documents = sorted(folder.glob("*.json"))
    if not documents:
        fail(f"no results document under {folder}: did the demo run?")
    pairs = []
    for path in documents:
        document = json.loads(path.read_text())
        for kind in ("entities", "icd10cm", "rxnorm"):
            pairs.extend((e["text"], e["category"]) for e in document[kind])
    if not pairs:
        fail(f"{session}'s results document has no entities to look for")
    return pairs


SHOWN = """
return Array.from(document.querySelectorAll('[data-category]')).map(
  function (el) { return [el.textContent.trim(), el.getAttribute('data-category')]; });
"""


def check_entities(driver: WebDriver, expected: list[tuple[str, str]], where: str) -> None:
    shown = {tuple(pair) for pair in driver.run(SHOWN)}
    missing = [pair for pair in expected if tuple(pair) not in shown]
    if missing:
        fail(f"{where}: entities not shown with their category: {missing[:5]}")


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.references: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.references.extend(value for name, value in attrs if name in ("src", "href") and value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--telepipe", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--artifacts", required=True, type=Path)
    parser.add_argument("--session", default="demo-visit-chest-pain")
    args = parser.parse_args()
    session = args.session
    args.artifacts.mkdir(parents=True, exist_ok=True)
    driver_binary = shutil.which("chromedriver")
    if not driver_binary:
        fail("chromedriver not found (scripts/setup-browser.sh installs chromium-driver)")
    expected = expected_entities(args.data_dir, session)

    serve = subprocess.Popen([args.telepipe, "serve", "--data-dir", str(args.data_dir), "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    driver = None
    try:
        first = serve.stdout.readline().strip()
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{64})", first)
        if not match:
            fail(f"the first line of telepipe serve is not the tokened URL: {first!r}")
        port, token = match.groups()
        base = f"http://127.0.0.1:{port}"
        for path in ("/", f"/sessions/{session}", "/operations", f"/sessions/{session}/audio"):
            if (code := http_status(base + path)) != 401:
                fail(f"{path} without the token answered {code}, not 401")
        if (code := http_status(f"{base}/?token={'0' * 64}")) != 401:
            fail(f"a wrong token answered {code}, not 401")
        if (code := http_status(f"{base}/?token={token}", {"Host": f"evil.example:{port}"})) != 421:
            fail(f"a foreign Host answered {code}, not 421")

        driver = WebDriver(driver_binary, args.artifacts)
        driver.go(first)
        if driver.run("return location.search") != "":
            fail("the token stayed in the address after the first request")
        listed = set(driver.run("return Array.from(document.querySelectorAll('#sessions tr[data-session]'))"
                                ".map(function (r) { return r.getAttribute('data-session'); })"))
        sessions = {p.name for p in (args.data_dir / "buckets" / "results" / "clinical").iterdir() if p.is_dir()}
        if not sessions <= listed:
            fail(f"/ does not list every demo session: missing {sorted(sessions - listed)}")
        driver.screenshot(args.artifacts / "sessions.png")

        driver.go(f"{base}/sessions/{session}")
        check_entities(driver, expected, f"/sessions/{session}")
        # Wait for the player to have the recording's metadata (it seeks only then).
        ready = None
        for _ in range(100):
            ready = driver.run("var a = document.getElementById('recording');"
                               "return a ? [a.readyState, a.duration, a.error && a.error.code] : null")
            if ready is None:
                fail("the visit page has no <audio> element")
            if ready[0] >= 1 or ready[2]:
                break
            time.sleep(0.1)
        if ready[2] or ready[0] < 1:
            fail(f"the recording did not load in the player: {ready}")
        target = driver.run("""
var marks = Array.from(document.querySelectorAll('#transcript mark[data-start]'))
  .filter(function (m) { return Number(m.getAttribute('data-start')) > 1000; });
return marks.length ? [marks[marks.length - 1].getAttribute('data-finding'), Number(marks[marks.length - 1].getAttribute('data-start'))] : null;""")
        if not target:
            fail("no highlighted finding with a time to click")
        finding, start_ms = target
        driver.click(driver.find(f'#transcript mark[data-finding="{finding}"]'))
        time.sleep(0.5)
        position = driver.run("return document.getElementById('recording').currentTime")
        if abs(position - start_ms / 1000) > 1.0:
            fail(f"clicking {finding} seeked to {position:.2f} s, not {start_ms / 1000:.2f} s")
        driver.screenshot(args.artifacts / "visit.png")

        driver.go(f"{base}/operations")
        if not driver.run("return document.querySelectorAll('#queues tbody tr').length"):
            fail("/operations lists no queues")
        driver.screenshot(args.artifacts / "operations.png")

        report = args.artifacts / "report.html"
        if report.exists():
            report.unlink()
        subprocess.run([args.telepipe, "report", "--session", session, "--data-dir", str(args.data_dir),
                        "--out", str(report)], check=True, stdout=subprocess.DEVNULL)
        mode = stat.S_IMODE(report.stat().st_mode)
        if mode != 0o600:
            fail(f"the report's mode is {oct(mode)}, not 0o600")
        links = Links()
        links.feed(report.read_text())
        # In-page anchors and data: URIs stay inside the file; anything else would not.
        outside = [r for r in links.references if not r.startswith(("#", "data:"))]
        if outside:
            fail(f"the report references other files or sites: {outside[:5]}")
        driver.offline()
        driver.go(report.resolve().as_uri())
        check_entities(driver, expected, "the report, offline")
        driver.screenshot(args.artifacts / "report.png")
        print(f"console browser test: ok ({len(expected)} entities with categories on the visit page and "
              f"in the report, click seeked to {position:.2f} s, {len(sessions)} sessions listed, "
              f"401 without the token; screenshots in {args.artifacts})")
    finally:
        if driver:
            driver.quit()
        serve.terminate()
        serve.wait(timeout=10)


if __name__ == "__main__":
    main()
