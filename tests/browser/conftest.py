"""Fixtures of the browser suite: Chromium, a throw-away JupyterLab, and lessons run in pages.

Several lessons execute at once (``BROWSER_CONCURRENCY`` pages, default 2),
each in its own browser context and kernel: while one test inspects a
finished lesson, the next ones are already running. Every test of the suite
carries the ``browser`` marker (``pytest -m "not browser"`` leaves it out).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

import chromium
import lab_page
import lab_server

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in Chromium (make test-browser)")


def _lesson_key(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    lesson = params.get("lesson")
    stem = lesson.path.stem if lesson is not None else ""
    return (stem, "explorer" in item.name, params.get("index", -1))


def pytest_collection_modifyitems(config, items):
    """Group this suite's tests by lesson (run-all first), keeping every other test in place.

    Then a lesson's page can be closed as soon as its tests are over, while the
    next lessons are already running in the background.
    """
    here = Path(__file__).parent
    slots = [k for k, item in enumerate(items) if here in Path(str(item.fspath)).parents]
    for k, item in zip(slots, sorted((items[k] for k in slots), key=_lesson_key)):
        items[k] = item


LATENCY_TARGET_MS = 100
LATENCIES = {}  # (lesson stem, cell index) -> (slider label, [ms, ...], presses)


@pytest.fixture(scope="session")
def latencies():
    """Where the latency tests leave their samples, for the table at the end of the run."""
    return LATENCIES


def latency_table(results: dict, target: float = LATENCY_TARGET_MS) -> str:
    """The explorers' latency from key press to new image: median and 90th percentile."""
    import numpy as np

    names = {key: f"{key[0]} cell {key[1]}" for key in results}
    width = max([len(name) for name in names.values()] + [8])
    lines = [f"Explorer latency in the browser, key press on a slider to the new image shown "
             f"(target {target:.0f} ms)",
             f"{'explorer':<{width}}  {'slider':<20} {'presses':>7} {'median':>7} {'p90':>7}  "
             f"vs target"]
    for key, (label, samples, presses) in sorted(results.items()):
        if samples:
            median, p90 = np.median(samples), np.percentile(samples, 90)
            verdict = ("within" if p90 <= target else
                       "median within" if median <= target else "over")
            lines.append(f"{names[key]:<{width}}  {label[:20]:<20} {len(samples):>3}/{presses:<3} "
                         f"{median:>5.0f}ms {p90:>5.0f}ms  {verdict}")
        else:
            lines.append(f"{names[key]:<{width}}  {label[:20]:<20} no new image shown")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter):
    if not LATENCIES:
        return
    table = latency_table(LATENCIES)
    terminalreporter.write_sep("-", "explorer latency")
    terminalreporter.write_line(table)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "latency.txt").write_text(table + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def chromium_path():
    path = chromium.ensure()
    if path is None:
        if chromium.in_ci():
            pytest.fail("CI=true but no Chromium: " + chromium.why_missing(), pytrace=False)
        pytest.skip(chromium.why_missing())
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=chromium.LAUNCH_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def lab(browser, tmp_path_factory):
    """JupyterLab on a temporary copy of the repository (started once the browser works)."""
    server = lab_server.start(tmp_path_factory.mktemp("course"), ARTIFACTS / "jupyterlab.log")
    yield server
    lab_server.stop(server)


class LessonRunner:
    """Opens lessons in pages and runs all their cells, a few at once, in collection order."""

    def __init__(self, browser, server, order, tests_per_lesson, concurrency, timeout):
        self.browser, self.server, self.timeout = browser, server, timeout
        self.pending = list(order)            # lessons not started yet, in test order
        self.tests_left = dict(tests_per_lesson)
        self.concurrency = concurrency
        self.running = {}                     # name -> (context, page, lesson, start time)
        self.finished = {}                    # name -> (page, seconds from Run All to idle)
        self.closable = set()                 # lessons whose tests are all over
        self.failed_requests = {}             # name -> ["404 http://...", ...] seen by its page

    def _start(self, lesson: lab_page.Lesson) -> None:
        context, page = lab_page.new_page(self.browser)
        failed = self.failed_requests.setdefault(lesson.path.name, [])
        page.on("response", lambda r: failed.append(f"{r.status} {r.url.split('?')[0]}")
                if r.status >= 400 else None)
        self.running[lesson.path.name] = (context, page, lesson, time.monotonic())
        with self._screenshot_on_error(page, lesson, "start"):
            lab_page.open_notebook(page, self.server.notebook_url(lesson.served_path))
            lab_page.run_all(page)

    @staticmethod
    @contextlib.contextmanager
    def _screenshot_on_error(page, lesson, stage):
        try:
            yield
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(ARTIFACTS / f"{lesson.path.stem}-{stage}.png"))
            except Exception:
                pass
            raise

    def get(self, lesson: lab_page.Lesson):
        """The page of ``lesson`` once every cell has run, and how long Run All took."""
        name = lesson.path.name
        for other in self.closable - {name}:
            self.close(other)
        self.closable &= {name}
        if name in self.finished:
            return self.finished[name]
        if name not in self.running:
            self.pending = [p for p in self.pending if p.path.name != name]
            self._start(lesson)
        while self.pending and self.concurrency > sum(
                other not in self.finished for other in self.running):
            self._start(self.pending.pop(0))
        context, page, lesson, started = self.running[name]
        with self._screenshot_on_error(page, lesson, "run"):
            lab_page.wait_finished(page, lesson, self.timeout)
        self.finished[name] = (page, time.monotonic() - started)
        return self.finished[name]

    def alone(self, lesson: lab_page.Lesson) -> None:
        """Wait until no other lesson is still running its cells, so that ``lesson`` has the
        machine to itself, as a learner's lesson has (no lesson starts until the next get)."""
        for name, (_, page, other, _) in list(self.running.items()):
            if name != lesson.path.name and name not in self.finished:
                with self._screenshot_on_error(page, other, "run"):
                    lab_page.wait_finished(page, other, self.timeout)
                self.finished[name] = (page, time.monotonic() - self.running[name][3])

    def done(self, lesson: lab_page.Lesson) -> None:
        """One test of ``lesson`` is over; after its last one, close the page and kernel."""
        name = lesson.path.name
        self.tests_left[name] = self.tests_left.get(name, 1) - 1
        if self.tests_left[name] <= 0:
            self.closable.add(name)  # closed later: a failure screenshot may still need it

    def close(self, name: str) -> None:
        if name not in self.running:
            return
        context, _, lesson, _ = self.running.pop(name)
        self.finished.pop(name, None)
        context.close()
        try:
            lab_server.shutdown_kernels(self.server, lesson.served_path)
        except OSError:
            pass


@pytest.fixture(scope="session")
def runner(browser, lab, request):
    order, counts = [], {}
    for item in request.session.items:
        lesson = getattr(item, "callspec", None) and item.callspec.params.get("lesson")
        if isinstance(lesson, lab_page.Lesson):
            if lesson.path.name not in counts:
                order.append(lesson)
            counts[lesson.path.name] = counts.get(lesson.path.name, 0) + 1
    concurrency = int(os.environ.get("BROWSER_CONCURRENCY", "2"))
    timeout = float(os.environ.get("BROWSER_TIMEOUT", "900"))
    instance = LessonRunner(browser, lab, order, counts, concurrency, timeout)
    yield instance
    for name in list(instance.running):
        instance.close(name)


@pytest.fixture
def screenshot_on_failure(request):
    """Call with (page, name): saves test-artifacts/browser/<name>.png if the test fails."""
    shots = []
    yield lambda page, name: shots.append((page, name))
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for page, name in shots:
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
            except Exception as error:  # a screenshot must not hide the real failure
                print(f"screenshot {name} failed: {error}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
