"""Render a study's ``report.html`` in headless Chromium and check that the figures drew.

Usage::

    python benchmarks/render_report.py [REPORT_HTML] [--chromium /usr/bin/chromium]

Without REPORT_HTML, it writes the report of a synthetic study
(:func:`gnn_convergence.study.demo.demo_study`, 30 trials) into a temporary folder first. Chromium
(Debian's ``chromium`` package) runs twice, with the flags of :data:`FLAGS`, a fresh profile
and a virtual-time budget that lets the page's scripts finish:

- ``--dump-dom``: the DOM after rendering. Every figure div (``plotly-graph-div``) must have
  become a drawn plot (``js-plotly-plot`` with its ``main-svg`` layers), and the SVG must hold
  at least one marker (``class="point"``) per trial.
- ``--screenshot``: the PNG must not be blank: its pixel rows, inflated, hold more than
  :data:`MIN_BYTE_VALUES` distinct byte values, and the file is at least
  :data:`MIN_SIZE_RATIO` times the size of a screenshot of an empty page of the same size.
  (This catches an empty page, not missing figures: the tables alone pass it; the DOM check
  is the one that sees the figures.)

Prints the counts and times; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1300,4000",
    "--virtual-time-budget=20000",
)
MIN_BYTE_VALUES = 64
MIN_SIZE_RATIO = 5
TIMEOUT_S = 180


def chromium(binary: str, args: list[str], profile: Path) -> str:
    """Run Chromium once with a fresh profile; its stdout."""
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
    return done.stdout


def png_rows(path: Path) -> bytes:
    """The inflated IDAT data of a PNG (filtered pixel rows)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return zlib.decompress(b"".join(chunks))


def dom_counts(dom: str) -> dict[str, int]:
    """Figure divs, drawn plots, SVG layers and markers in a dumped DOM."""
    return {
        "figures": len(re.findall(r'class="[^"]*plotly-graph-div', dom)),
        "drawn": len(re.findall(r'class="[^"]*js-plotly-plot', dom)),
        "main_svg": dom.count('class="main-svg"'),
        "points": dom.count('class="point"'),
    }


def check(report: Path, binary: str, n_trials: int) -> list[str]:
    """Render ``report`` and return the failed checks (empty when the figures drew)."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        counts = dom_counts(chromium(binary, ["--dump-dom", report.as_uri()], tmp_path / "p1"))
        shot, blank = tmp_path / "report.png", tmp_path / "blank.png"
        chromium(binary, [f"--screenshot={shot}", report.as_uri()], tmp_path / "p2")
        chromium(binary, [f"--screenshot={blank}", "about:blank"], tmp_path / "p3")
        values = len(set(png_rows(shot)))
        ratio = shot.stat().st_size / blank.stat().st_size
        print(f"{counts}, screenshot: {values} byte values, {ratio:.0f}x an empty page's size")
        print(f"render time: {time.perf_counter() - start:.1f} s for 3 Chromium runs")
    if counts["figures"] == 0 or counts["drawn"] < counts["figures"]:
        failures.append(f"figures not all drawn: {counts}")
    if counts["main_svg"] < counts["figures"] or counts["points"] < n_trials:
        failures.append(f"too few SVG layers or markers: {counts} for {n_trials} trials")
    if values <= MIN_BYTE_VALUES or ratio < MIN_SIZE_RATIO:
        failures.append(f"screenshot looks blank: {values} byte values, {ratio:.1f}x empty")
    return failures


def demo_report(folder: Path, n_trials: int) -> Path:
    """Write the report of a synthetic study into ``folder``."""
    import optuna

    from gnn_convergence.study.demo import demo_study
    from gnn_convergence.study.pages import write_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, params = demo_study(n_trials=n_trials)
    return write_study(study, params, folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path, help="report.html (default: a demo's)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--trials", type=int, default=30, help="markers expected at least")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or demo_report(Path(tmp), args.trials)
        failures = check(report.resolve(), args.chromium, args.trials)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if failures:
        return 1
    print("ok: the figures drew")
    return 0


if __name__ == "__main__":
    sys.exit(main())
