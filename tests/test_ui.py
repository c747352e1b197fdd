"""The Prefect UI in a real browser (headless Chromium): what a user sees of a job's flow run,
its mini-batch task runs (a failed one among them), its artifacts, and the block catalog."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.jobs import SCRIPTS, JobBench

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (tests run as root), and nothing that would reach out to the network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# A page of a busy 2-core machine can take a while to draw its data.
UI_TIMEOUT_MS = 90_000
SERVER_START_SECONDS = 180


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; skipped where it is missing, except in CI, where it must be there."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (make system-deps)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


class UIServer:
    """`prefect server start` with its UI, on a loopback port, with SQLite and PREFECT_HOME in
    `folder`; stopped by its PID (the process group it leads)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.log_file = folder / "server.log"
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")
        }
        environment.update(
            PREFECT_HOME=str(folder / "home"),
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="true",
            # The UI calls the API at this address from the browser.
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        )
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=environment, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"prefect server start did not answer within {SERVER_START_SECONDS} s; "
                        f"its log:\n{self.log_file.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            self.process.wait()


@pytest.fixture
def ui_server(bench: JobBench) -> Iterator[UIServer]:
    server = UIServer(bench.root / "server")
    try:
        server.wait_until_healthy()
        yield server
    finally:
        server.stop()


def run_job_with_one_failing_mini_batch(bench: JobBench, server: UIServer) -> str:
    """Five mini-batches, one task run each; the fourth raises on both of its attempts. The
    job tolerates it (error_threshold -1), so its flow run ends Completed. Returns its id."""
    bench.items(["ok", "ok", "ok", "raise", "ok"])
    name = f"ui-job-{uuid.uuid4().hex[:8]}"
    job = subprocess.run(
        [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs), str(bench.output),
         json.dumps({"run_max_try": 2})],
        env={**os.environ, "PREFECT_API_URL": server.api_url, "STEP_NAME": name,
             "MINI_BATCHES_PER_TASK": "1"},
        capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 0, job.stdout + job.stderr
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        with get_client(sync_client=True) as client:
            (flow_run,) = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
    return str(flow_run.id)


def open_tab(page: Page, tab: str) -> None:
    page.locator(".p-tabs .p-tab").filter(has_text=tab).click()


def form_field(page: Page, label: str):
    return page.locator(".schema-form-input").filter(has=page.get_by_text(label, exact=True))


def test_the_ui_shows_the_flow_run_its_mini_batches_artifacts_and_the_blocks(
    bench: JobBench, ui_server: UIServer, chromium: Path
):
    flow_run_id = run_job_with_one_failing_mini_batch(bench, ui_server)
    screenshots = bench.root / "screenshots"
    screenshots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)

            page.goto(f"{ui_server.url}/runs/flow-run/{flow_run_id}")
            expect(page.locator(".page-heading .state-badge")).to_have_text("Completed")
            page.screenshot(path=screenshots / "flow-run.png")

            open_tab(page, "Task Runs")
            task_runs = page.locator(".state-list-item")
            expect(task_runs).to_have_count(5)
            for index in range(5):
                expected = "Failed" if index == 3 else "Completed"
                item = task_runs.filter(
                    has=page.get_by_text(f"mini-batch-{index}", exact=True)
                )
                expect(item.locator(".state-badge")).to_have_text(expected)
            page.screenshot(path=screenshots / "task-runs.png", full_page=True)

            open_tab(page, "Artifacts")
            cards = page.locator(".artifact-card")
            # The kind of each artifact, shown in capitals by the page's style.
            expect(cards.filter(has_text="Mini-batches processed")).to_contain_text(
                "progress", ignore_case=True
            )
            expect(cards.filter(has_text="failed-mini-batches")).to_contain_text(
                "table", ignore_case=True
            )
            summary = cards.filter(has_text="parallel-run-summary")
            expect(summary).to_contain_text("Parallel run Completed")
            page.screenshot(path=screenshots / "artifacts.png")
            summary.click()
            expect(page.get_by_text(
                "Completed: 4 of 5 mini-batches succeeded (4 items succeeded, 1 failed)."
            )).to_be_visible()
            page.screenshot(path=screenshots / "summary.png")

            # Listed by the server itself at start-up, through the package's collection entry
            # point: nobody ran `prefect block register` against this server.
            page.goto(f"{ui_server.url}/blocks/catalog")
            card = page.locator(".p-card").filter(
                has=page.get_by_text("Parallel Run Config", exact=True)
            )
            expect(card).to_contain_text("How a parallel run splits its inputs")
            page.get_by_placeholder("Search blocks").fill("Dask Compute")
            expect(page.get_by_text("Dask Compute", exact=True)).to_be_visible()
            page.screenshot(path=screenshots / "block-catalog.png")

            # The block's form: described fields, choices for the choice fields, defaults.
            page.goto(f"{ui_server.url}/blocks/catalog/parallel-run-config/create")
            expect(form_field(page, "Output Action")).to_contain_text(
                "append_row collects every result row in one file"
            )
            expect(form_field(page, "Logging Level (Optional)").locator(
                ".p-select-button__value"
            )).to_have_text("INFO")
            # The choices drop down from the keyboard (a click only focuses the control).
            form_field(page, "Output Action").locator(".p-select-button__control").press(
                "ArrowDown"
            )
            expect(page.get_by_role("option", name="summary_only")).to_be_visible()
            expect(page.get_by_role("option", name="append_row")).to_be_visible()
            # No logo, so no broken image: every image on the form has loaded.
            broken = page.locator("img").evaluate_all(
                "images => images.filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            assert broken == 0
            page.screenshot(path=screenshots / "block-form.png", full_page=True)
        except Exception:
            page.screenshot(path=screenshots / "at-failure.png", full_page=True)
            print(f"screenshots of the pages seen: {screenshots}")
            raise
        finally:
            browser.close()
