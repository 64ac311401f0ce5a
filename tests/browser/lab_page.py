"""Drive one notebook in a JupyterLab page: open it, run all cells, read cells, move controls.

Everything is found from what JupyterLab and ipywidgets put in the page, so
any lesson and any ``bnlib.course.widgets.Explorer`` is handled the same way:

- a cell is ``.jp-Notebook .jp-Cell`` (the suite turns JupyterLab's windowing
  off, so the page holds every cell, in notebook order);
- an explorer is a widget displayed in the output of an explorer cell
  (found from the notebook file: a code cell whose output nbval ignores, by
  the cell tag ``nbval-ignore-output``, and that mentions "explorer");
- a diagram is an ``<img>`` in a rendered Markdown cell; it loaded if the
  browser decoded it (``naturalWidth > 0``) and no ``error`` event fired;
- its readout is the ``<pre>`` of its HTML widget and its plot the image(s)
  under it; its controls are ipywidgets sliders, drop-downs, check boxes and
  buttons.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools import course_lab  # noqa: E402

VIEWPORT = {"width": 1400, "height": 900}
CELLS = ".jp-Notebook .jp-Cell"
CONTROLS = ".noUi-handle, select, input[type=checkbox], button.widget-toggle-button"
RUN_BUTTONS = "button.widget-button"  # explorers that recompute only when "Run" is pressed
WIDGET_ERRORS = ("Error displaying widget", "Error rendering", "model not found")
# Markdown images as a notebook file writes them (what the page must show, one <img> each).
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)\s]+[^)]*\)|<img\s", re.IGNORECASE)

# Run in every page before JupyterLab's own scripts: remember every <img> that
# fails to load (error events do not bubble, so listen in the capture phase).
TRACK_IMAGE_ERRORS_JS = """
window.__imageErrors = [];
document.addEventListener('error', e => {
  const t = e.target;
  if (t && t.tagName === 'IMG') window.__imageErrors.push(t.currentSrc || t.src || '(no src)');
}, true);
"""

# Every image of a rendered Markdown cell: its cell, alt text, URL and whether it loaded.
MARKDOWN_IMAGES_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const errors = window.__imageErrors || [];
  return cells.flatMap((c, i) => !c.classList.contains('jp-MarkdownCell') ? [] :
    [...c.querySelectorAll('.jp-MarkdownOutput img')].map(img => ({
      cell: i, alt: img.getAttribute('alt') || '', src: img.currentSrc || img.src || '',
      complete: img.complete, width: img.naturalWidth,
      error: errors.includes(img.currentSrc || img.src)})));
}"""
# A notification toast JupyterLab shows, e.g. "Would you like to get notified about official Jupyter news?"
TOASTS_JS = "() => [...document.querySelectorAll('.Toastify__toast')].map(t => t.textContent.trim())"

# The state of the page's notebook in one round trip.
STATE_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = cells.map(c => c.classList.contains('jp-CodeCell')
      ? (c.querySelector('.jp-InputPrompt')?.textContent || '').trim() : null);
  const errors = [];
  cells.forEach((c, i) => c.querySelectorAll('.jp-OutputArea-output').forEach(o => {
    const text = o.textContent || '';
    if (o.dataset.mimeType === 'application/vnd.jupyter.stderr' || WIDGET_ERRORS.some(w => text.includes(w)))
      errors.push([i, text.slice(0, 1500)]);
  }));
  return {status: indicator ? indicator.dataset.status : null, prompts, errors};
}""".replace("WIDGET_ERRORS", repr(list(WIDGET_ERRORS)))

# What an explorer shows: its readout text and a fingerprint of every image
# (data: URLs as they are; blob: URLs, as ipywidgets.Image uses, by their bytes).
SHOWN_JS = """async (root) => {
  const readout = [...root.querySelectorAll('.widget-html-content pre')].map(e => e.textContent).join('\\n');
  const images = [];
  for (const img of root.querySelectorAll('img')) {
    let key = img.src || '';
    if (key.startsWith('blob:')) {
      const bytes = new Uint8Array(await (await fetch(key)).arrayBuffer());
      let h = 2166136261;
      for (const b of bytes) { h ^= b; h = Math.imul(h, 16777619) >>> 0; }
      key = 'bytes:' + bytes.length + ':' + h;
    }
    images.push(key);
  }
  for (const canvas of root.querySelectorAll('canvas')) images.push(canvas.toDataURL());
  return {readout, images, imagesVisible: [...root.querySelectorAll('img, canvas')]
          .some(e => e.getBoundingClientRect().width > 10 && e.getBoundingClientRect().height > 10)};
}"""


@dataclass
class Lesson:
    """What the notebook file says: its cells' kinds and which cells hold explorers."""

    path: Path
    n_cells: int
    code_cells: list[int]
    explorer_cells: list[int]
    n_images: int  # images in its Markdown cells

    @classmethod
    def read(cls, path: Path) -> "Lesson":
        nb = nbformat.read(path, as_version=4)
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        explorers = [i for i in code if _output_ignored(nb.cells[i])
                     and "explorer" in nb.cells[i].source.lower()]
        images = sum(len(MARKDOWN_IMAGE.findall(c.source))
                     for c in nb.cells if c.cell_type == "markdown")
        return cls(path, len(nb.cells), code, explorers, images)

    @property
    def served_path(self) -> str:
        """Its path on the course server: the learner's copy, as ``make lab`` opens it
        (the repository's root is served, the copies are in ``my-notebooks/``)."""
        return f"{course_lab.WORK}/{self.path.name}"


def _output_ignored(cell) -> bool:
    return "nbval-ignore-output" in cell.get("metadata", {}).get("tags", [])


def new_page(browser):
    """A page in a browser context of its own that remembers every image failing to load."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(TRACK_IMAGE_ERRORS_JS)
    return context, context.new_page()


def kernel_status(page) -> str:
    """The kernel status the status bar shows, e.g. "Idle", "Busy", "Starting" ("" if none)."""
    text = page.evaluate("() => document.querySelector('.jp-StatusBar-Widget .jp-StatusBar-TextItem')"
                         " ? [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                         ".map(e => e.textContent).join(' ') : ''")
    match = re.search(r"\|\s*(\w+)", text)
    return match.group(1) if match else ""


def open_notebook(page, url: str, timeout: float = 180, settle: float = 3) -> None:
    """Open a notebook; wait until its kernel has been idle for ``settle`` seconds.

    (JupyterLab may replace the first kernel it starts for a notebook a moment
    later; running cells before that settles loses their outputs.)
    """
    page.goto(url, timeout=timeout * 1000)
    page.wait_for_selector(CELLS, state="attached", timeout=timeout * 1000)
    deadline, idle_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        handle_dialog(page)
        if kernel_status(page) == "Idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= settle:
                return
        else:
            idle_since = None
        page.wait_for_timeout(250)
    raise TimeoutError(f"{url}: the kernel did not become idle within {timeout:.0f} s")


def markdown_images(page, timeout: float = 60) -> list[dict]:
    """Every image of the page's rendered Markdown cells, once each has loaded or failed.

    JupyterLab first resolves a relative link (``../images/x.png``) to a
    ``/files/`` URL, then the browser fetches it; an image still pending after
    ``timeout`` seconds is returned as it is (``complete`` false).
    """
    deadline = time.monotonic() + timeout
    while True:
        images = page.evaluate(MARKDOWN_IMAGES_JS)
        if all(i["complete"] for i in images) or time.monotonic() > deadline:
            return images
        page.wait_for_timeout(250)


def broken_images(images: list[dict]) -> list[str]:
    """What is wrong with each image of :func:`markdown_images` that did not load."""
    problems = []
    for image in images:
        why = ("not loaded yet" if not image["complete"] else "error event" if image["error"]
               else "nothing decoded (naturalWidth 0)" if image["width"] == 0 else "")
        if why:
            url = image["src"].split("?")[0] or "(no URL)"
            problems.append(f"cell {image['cell']}: ![{image['alt']}]({url}): {why}")
    return problems


def toasts(page) -> list[str]:
    return page.evaluate(TOASTS_JS)


def menu(page, top: str, entry: str) -> None:
    """Click a menu-bar entry, e.g. ``menu(page, "Run", "Run All Cells")``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator("li.lm-Menu-item", has_text=re.compile(f"^{re.escape(entry)}")).first.click()


def run_all(page) -> None:
    """Clear the committed outputs, then Run > Run All Cells, as a learner would.

    Clearing first means every prompt number and output seen afterwards comes
    from this run, not from the notebook file.
    """
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function("() => ![...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]"
                           ".some(p => /\\d/.test(p.textContent))", timeout=120_000)
    menu(page, "Run", "Run All Cells")


# Dialogs JupyterLab may show on the way; any other dialog is a failure.
ACCEPTED_DIALOGS = ("Select Kernel",)


def handle_dialog(page) -> None:
    dialog = page.locator(".jp-Dialog")
    if dialog.count() == 0:
        return
    title = dialog.first.locator(".jp-Dialog-header").inner_text().strip()
    if title not in ACCEPTED_DIALOGS:
        raise AssertionError(f"unexpected dialog: {dialog.first.inner_text()[:500]}")
    dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()


def state(page) -> dict:
    return page.evaluate(STATE_JS)


def finished(page, lesson: Lesson) -> bool:
    """True once the kernel is idle and every code cell ran (or one failed and Run All stopped)."""
    now = state(page)
    if now["status"] != "idle" or any(p and "*" in p for p in now["prompts"]):
        return False
    numbered = [i for i, p in enumerate(now["prompts"]) if p and re.fullmatch(r"\[\d+\]:", p)]
    return set(lesson.code_cells) <= set(numbered) or bool(now["errors"])


def wait_finished(page, lesson: Lesson, timeout: float, settle: int = 3) -> None:
    """Poll :func:`finished` until it holds ``settle`` times in a row (0.5 s apart)."""
    deadline, streak = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        handle_dialog(page)
        streak = streak + 1 if finished(page, lesson) else 0
        if streak >= settle:
            return
        page.wait_for_timeout(500)
    raise TimeoutError(f"{lesson.path.name}: not finished after {timeout:.0f} s: {state(page)}")


def cell(page, index: int):
    return page.locator(CELLS).nth(index)


def explorer_roots(page, index: int):
    """The widgets displayed by the cell at ``index``: one locator per displayed widget."""
    outputs = cell(page, index).locator(
        ".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output")
    return outputs.filter(has=page.locator(".jupyter-widgets"))


def shown(root) -> dict:
    return root.evaluate(SHOWN_JS)


def _slider_value(handle) -> str:
    """The value a slider shows in its readout (``aria-valuenow`` rounds it, e.g. 0.99 to 1.0)."""
    return handle.evaluate("""h => {
        const readout = h.closest('.widget-slider')?.querySelector('.widget-readout');
        return readout ? readout.textContent.trim() : h.getAttribute('aria-valuenow');
    }""")


def move(control) -> str:
    """Change one control as a learner would (keyboard on a slider); describe what was done."""
    kind = control.evaluate("e => e.tagName.toLowerCase() + '.' + e.className")
    if "noUi-handle" in kind:
        before = _slider_value(control)
        control.focus()
        control.press("ArrowRight")
        if _slider_value(control) == before:  # already at the maximum
            control.press("ArrowLeft")
        return f"slider {before} -> {_slider_value(control)}"
    if kind.startswith("select"):
        values = control.locator("option").evaluate_all("os => os.map(o => o.value)")
        current = control.input_value()
        target = next(v for v in values if v != current)
        control.select_option(value=target)
        return f"drop-down -> option {target}"
    control.click()
    return f"clicked {kind}"


# Latency as the learner sees it: from the key press on a slider to the frame that shows the
# explorer's new image. Installed before each press: the keydown (capture phase, so it is
# the first thing the page sees) starts the clock; the first <img> under the explorer whose
# src changes (or that is added) stops it once decoded, at the next animation frame.
LATENCY_JS = """([root, timeout]) => {
  const srcs = new WeakMap();
  root.querySelectorAll('img').forEach(i => srcs.set(i, i.src));
  let t0 = null, finished = false, observer = null;
  const start = () => { if (t0 === null) t0 = performance.now(); };
  window.__latency = new Promise(resolve => {
    const done = value => {
      if (finished) return;
      finished = true;
      if (observer) observer.disconnect();
      ['keydown', 'change'].forEach(k => document.removeEventListener(k, start, true));
      resolve(value);
    };
    window.__latencyCancel = () => done(null);
    const seen = img => {
      if (t0 === null || srcs.get(img) === img.src || !img.src) return;
      srcs.set(img, img.src);
      const shown = () => requestAnimationFrame(() => done(performance.now() - t0));
      img.decode().then(shown, shown);
    };
    observer = new MutationObserver(records => records.forEach(r => {
      if (r.type === 'attributes' && r.target.tagName === 'IMG') seen(r.target);
      r.addedNodes.forEach(n => n.tagName === 'IMG' ? seen(n)
                                : n.querySelectorAll && n.querySelectorAll('img').forEach(seen));
    }));
    observer.observe(root, {subtree: true, childList: true, attributes: true,
                            attributeFilter: ['src']});
    ['keydown', 'change'].forEach(k => document.addEventListener(k, start, true));
    setTimeout(() => done(null), timeout);
  });
}"""


def _wait_idle(page, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while state(page)["status"] != "idle" and time.monotonic() < deadline:
        page.wait_for_timeout(50)


def slider_latencies(page, root, handle, presses: int, timeout: float = 60) -> list[float | None]:
    """Press an arrow key on a slider ``presses`` times (turning round at either end) and
    time each press to the new image shown, in milliseconds (None: no new image within
    ``timeout`` seconds). Each press waits for the kernel to be idle first."""
    element = root.element_handle()
    direction, samples, stuck = "ArrowRight", [], 0
    while len(samples) < presses:
        _wait_idle(page)
        page.wait_for_timeout(100)
        before = _slider_value(handle)
        page.evaluate(LATENCY_JS, [element, timeout * 1000])
        handle.focus()
        handle.press(direction)
        if _slider_value(handle) == before:  # at an end: this press changed nothing
            page.evaluate("() => window.__latencyCancel()")
            direction = "ArrowLeft" if direction == "ArrowRight" else "ArrowRight"
            stuck += 1
            if stuck >= 2:
                raise AssertionError(f"the slider at {before} moves in neither direction")
            continue
        stuck = 0
        samples.append(page.evaluate("() => window.__latency"))
    return samples
