"""``/ui`` in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium) while a run
progresses: the call tree grows as events arrive, shows turns, cells with code and output and sub-calls, and its
Cancel button stops a run. A screenshot is saved as a test artifact.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.server_support import ServerProcess, start_scripted

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    p = start_scripted(tmp_path_factory.mktemp("ui") / "server.log", "--delay", "0.4", "--api-key", "ui-key")
    try:
        p.wait_ready(60)
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert Path(CHROMIUM).exists() and Path(DRIVER).exists(), "run scripts/setup.sh (installs chromium-driver)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


H = {"Authorization": "Bearer ui-key"}


def start_run(srv: ServerProcess, question: str) -> tuple[str, threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def call() -> None:
        out["r"] = httpx.post(
            srv.base + "/v1/chat/completions",
            headers=H,
            timeout=120,
            json={"model": "scripted-slow", "messages": [{"role": "user", "content": question}]},
        )

    th = threading.Thread(target=call)
    th.start()
    for _ in range(200):
        runs = httpx.get(srv.base + "/v1/runs?status=running", headers=H).json()["data"]
        mine = [r for r in runs if r["question"] == question]
        if mine:
            return mine[0]["id"], th, out
        time.sleep(0.05)
    raise AssertionError("the run did not start")


def test_tree_grows_live_and_cancel_works(srv: ServerProcess, browser: webdriver.Chrome, tmp_path: Path) -> None:
    run_id, th, out = start_run(srv, "Summarise the notes, please.")
    browser.get(f"{srv.base}/ui?api_key=ui-key&run={run_id}")
    counts: list[int] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        counts.append(len(browser.find_elements(By.CSS_SELECTOR, "#tree .node")))
        if browser.find_element(By.ID, "run-status").text == "done":
            break
        time.sleep(0.25)
    th.join(60)
    assert out["r"].status_code == 200
    growth = [b for a, b in zip(counts, counts[1:], strict=False) if b > a]
    assert len(growth) >= 4, counts  # it grew step by step while the run was going, not once at the end
    t0 = time.monotonic()  # the last events render after the status says done: wait for the final cell's node
    while len(browser.find_elements(By.CSS_SELECTOR, '#tree .node[data-kind="cell"]')) < 7:
        assert time.monotonic() - t0 < 30, counts
        time.sleep(0.05)
    kinds = {e.get_attribute("data-kind") for e in browser.find_elements(By.CSS_SELECTOR, "#tree .node")}
    assert kinds == {"run", "turn", "cell", "sub"}, kinds
    cells = browser.find_elements(By.CSS_SELECTOR, '#tree .node[data-kind="cell"]')
    assert len(cells) == 7  # six working turns and the FINAL one
    subs = browser.find_elements(By.CSS_SELECTOR, '#tree .node[data-kind="cell"] .node[data-kind="sub"]')
    assert len(subs) == 12  # llm_query + llm_query_batched in each of six cells, nested under their cell
    assert "scripted-worker" in subs[0].text and " s" in subs[0].text
    assert "llm_query" in cells[0].find_element(By.CSS_SELECTOR, "pre.code").text  # code shown (open)
    assert "turn 0 2" in cells[0].find_element(By.CSS_SELECTOR, "details:not(:has(pre.code)) pre").text  # output
    reply = browser.find_element(By.CSS_SELECTOR, '#tree .node[data-kind="turn"] > details')
    assert reply.get_attribute("open") is None  # the root's reply is folded ...
    reply.find_element(By.TAG_NAME, "summary").click()
    assert "notes.append" in reply.find_element(By.TAG_NAME, "pre").text  # ... and opens on click
    assert "done after 12 notes" in browser.find_element(By.ID, "run-answer").text
    assert run_id in browser.find_element(By.ID, "runs").text or browser.find_elements(By.CSS_SELECTOR, "#runs li")
    shot = tmp_path / "ui.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # the Cancel button stops a running run
    run2, th2, out2 = start_run(srv, "Another long one.")
    browser.get(f"{srv.base}/ui?api_key=ui-key&run={run2}")
    t0 = time.monotonic()
    while not browser.find_elements(By.CSS_SELECTOR, '#tree .node[data-kind="cell"]'):
        assert time.monotonic() - t0 < 30
        time.sleep(0.1)
    button = browser.find_element(By.ID, "cancel")
    assert button.is_enabled()
    button.click()
    th2.join(30)
    assert out2["r"].json()["outcore"]["finish_reason"] == "cancelled"
    t0 = time.monotonic()
    while browser.find_element(By.ID, "run-status").text != "cancelled":
        assert time.monotonic() - t0 < 10, browser.find_element(By.ID, "run-status").text
        time.sleep(0.1)
    assert not browser.find_element(By.ID, "cancel").is_enabled()
