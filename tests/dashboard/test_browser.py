"""The dashboard in a real browser: Debian's chromium driven by Playwright, no browser download.

The emulator, a real worker and `grants dashboard` run as they would for an operator; a
200-row bulk (invalid rows and unknown audiences included) is watched to 100 % on the batches
page, then one dead letter is replayed by clicking and its new outcome is seen on the page.
Screenshots are kept under .run/dashboard-screenshots/ (and pytest's tmp dir).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from grant_worker.config.settings import Settings
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import make_settings

CHROMIUM = Path(os.environ.get("GRANTS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".run" / "dashboard-screenshots"
KNOWN_AUDIENCE = "https://api.example.com/"
VALID_ROWS, UNKNOWN_AUDIENCE_ROWS, INVALID_ROWS = 180, 10, 10
# Generous: the worker shares two cores with the rest of the suite.
PAGE_TIMEOUT_MS = 90_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no chromium at {CHROMIUM}: `apt-get update && apt-get install -y chromium` "
    "(or set GRANTS_CHROMIUM to its path); Playwright is used without downloading a browser",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def deployment(emulator: Any, key_prefix: str, queue_name: str, redis_url: str) -> Settings:
    # A ceiling of 40 calls/s makes the run last a few seconds: long enough to be watched.
    return make_settings(
        emulator, key_prefix, queue_name, redis_url=redis_url, grants_rate_limit=40.0
    )


@pytest.fixture
def dashboard_url(deployment: Settings, tmp_path: Path) -> Iterator[str]:
    """`grants dashboard` in a child process, as an operator starts it."""
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "grant_worker.worker", "dashboard", "--port", str(port)],
        env={**os.environ, **settings_env(deployment)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url + "/", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError((tmp_path / "dashboard.log").read_text())
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


def bulk_rows(batch_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows `grants bulk` takes, rows it refuses), 200 in all, one batch."""
    valid = [
        {
            "request_id": f"{batch_id}-ok-{n:03d}",
            "grant": {"client_id": f"svc-{2000 + n:05d}", "audience": KNOWN_AUDIENCE},
        }
        for n in range(VALID_ROWS)
    ]
    unknown = [
        {
            "request_id": f"{batch_id}-unknown-{n:03d}",
            "grant": {"client_id": f"svc-{2500 + n:05d}", "audience": f"https://nope-{n}.test/"},
        }
        for n in range(UNKNOWN_AUDIENCE_ROWS)
    ]
    invalid = [
        {
            "request_id": f"{batch_id}-invalid-{n:03d}",
            "batch_id": batch_id,
            # Both client_id and default_for: the rule is exactly one of them.
            "grant": {
                "client_id": f"svc-{2600 + n:05d}",
                "default_for": "third_party_clients",
                "audience": KNOWN_AUDIENCE,
            },
        }
        for n in range(INVALID_ROWS)
    ]
    return valid + unknown, invalid


def run_bulk(settings: Settings, batch_id: str, tmp_path: Path, redis_client: Any) -> int:
    """Start `grants bulk` on the 200 rows, in the background; returns the batch's size.

    With `--skip-invalid` the invalid rows go to a rejects file and the batch has
    the 190 others. A `grants bulk` without it refuses a file with invalid rows as a whole;
    then the rows it refuses reach the worker the way a producer without Celery sends them,
    on the intake stream, and end `rejected` in the batch of 200.
    """
    accepted, refused = bulk_rows(batch_id)
    path = tmp_path / "rows.jsonl"
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "grant_worker.worker", "bulk", str(path)]
    command += ["--batch-id", batch_id]
    help_text = subprocess.run(
        [*command[:4], "--help"], env=env, capture_output=True, text=True, check=True
    ).stdout
    if "--skip-invalid" in help_text:
        rows = accepted + refused
        command += ["--skip-invalid", "--rejects", str(tmp_path / "rejects.jsonl")]
    else:
        rows = accepted
        intake = f"{settings.grants_key_prefix}intake"
        for request in refused:
            redis_client.xadd(intake, {"request": json.dumps(request)})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return len(accepted) if "--skip-invalid" in command else len(accepted) + len(refused)


def test_an_operator_watches_a_bulk_run_and_replays_a_dead_letter(
    deployment: Settings,
    dashboard_url: str,
    emulator: Any,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    pytest.importorskip("playwright", reason="pip install playwright (the test extra)")
    from playwright.sync_api import expect, sync_playwright

    batch_id = f"onboarding-{deployment.grants_key_prefix.strip(':')}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    worker = WorkerProcess(deployment, log_dir=tmp_path)
    worker.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            expect.set_options(timeout=PAGE_TIMEOUT_MS)

            page.goto(dashboard_url + "/")
            total = run_bulk(deployment, batch_id, tmp_path, redis_client)
            # The overview during the run: outcomes appear on the chart as they are recorded.
            expect(page.locator(".legend").first).to_contain_text("created", timeout=30_000)
            # The worker's calls to the emulator, counted by its session, on the second chart.
            expect(page.locator(".legend").nth(1)).to_contain_text("calls:")
            page.screenshot(path=shots / "overview-during-bulk.png", full_page=True)

            page.goto(dashboard_url + "/batches")
            progress = page.locator(f'.percent[data-batch="{batch_id}"]')
            expect(progress).to_be_visible()
            page.screenshot(path=shots / "batches-running.png", full_page=True)
            expect(progress).to_have_text("100 %")
            expect(page.locator("#batches")).to_contain_text(f"{total} / {total}")
            page.screenshot(path=shots / "batches-done.png", full_page=True)

            page.click(f"text={batch_id}")
            first_row = page.locator("tbody tr").first
            expect(first_row).to_contain_text("failed")
            page.screenshot(path=shots / "batch-rows.png", full_page=True)

            page.goto(dashboard_url + "/dead?code=not_found")
            replayed_id = f"{batch_id}-unknown-000"
            row = page.locator(f'tr[data-request-id="{replayed_id}"]')
            expect(row).to_contain_text("not_found")
            expect(page.locator("tr[data-request-id]")).to_have_count(UNKNOWN_AUDIENCE_ROWS)
            page.screenshot(path=shots / "dead-letters.png", full_page=True)
            # Another page in the operator's browser forges a purge: refused, nothing purged.
            entry_id = row.locator('input[name="id"]').get_attribute("value")
            forged = context.new_page()
            forged.set_content(
                f'<form method="post" action="{dashboard_url}/dead/act">'
                '<input name="action" value="purge"><input name="confirm" value="yes">'
                f'<input name="id" value="{entry_id}"><button>win a prize</button></form>'
            )
            forged.click("button")
            expect(forged.locator("body")).to_contain_text("refused")
            forged.close()
            page.reload()
            expect(page.locator("tr[data-request-id]")).to_have_count(UNKNOWN_AUDIENCE_ROWS)
            # The operator fixes the cause (the API now exists), then replays the letter.
            emulator.admin.add_resource_servers(
                [{"identifier": "https://nope-0.test/", "name": "Now there"}]
            )
            row.locator("button.replay-one").click()
            expect(page.locator("h1")).to_have_text("Replay 1 dead letter?")
            page.screenshot(path=shots / "confirm-replay.png", full_page=True)
            page.click("#confirm")
            expect(page.locator("#notice")).to_contain_text(f"replayed 1: {replayed_id}")
            expect(page.locator("tr[data-request-id]")).to_have_count(UNKNOWN_AUDIENCE_ROWS - 1)

            page.click("text=Search")
            page.fill('input[name="request_id"]', replayed_id)
            page.click('button:has-text("Search")')
            expect(page.locator("#outcome-status")).to_have_text("created")
            page.screenshot(path=shots / "replayed-outcome.png", full_page=True)
            browser.close()
    finally:
        worker.stop(timeout_s=10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, ARTIFACTS / shot.name)
