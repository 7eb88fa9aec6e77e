"""Render a ``seer report`` page in headless Chromium and save a screenshot of the whole page.

    python scripts/report_screenshot.py RUN_DIR/report.html [--out shot.png] [--width 1400]

It is a check that the page renders in a real browser, offline: Chromium runs with its
network features off and a fresh profile, opens the file, and writes a PNG of the page's
full height (measured first with ``--dump-dom`` on a page that writes its own height, then
captured at that height). Needs a Chromium on the PATH (Debian: ``apt-get install chromium``;
or ``--chromium PATH``). Prints the PNG's path and size; exit 1 when Chromium is missing or
writes nothing, 2 for a page that is not there.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Flags that keep Chromium from reaching out on a machine without internet (every start would
# otherwise try Google's hosts) and let it run as root in a container.
OFFLINE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--allow-file-access-from-files",
)
HEIGHT_PROBE = (
    "<script>window.addEventListener('load',()=>{const p=document.createElement('pre');"
    "p.id='seer-height';p.textContent='SEER_PAGE_HEIGHT='+document.documentElement.scrollHeight;"
    "document.body.appendChild(p);});</script>"
)


def chromium_path(given: str | None) -> str | None:
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(chromium: str, profile: Path, args: list[str],
                 timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def page_height_px(chromium: str, profile: Path, page: Path, width: int, timeout_s: float) -> int | None:
    """The page's full height at ``width`` CSS pixels, read from a copy that prints it."""
    html = page.read_text(encoding="utf-8")
    probe = page.with_name(f".{page.stem}.height-probe.html")
    probe.write_text(html.replace("</body>", HEIGHT_PROBE + "</body>", 1), encoding="utf-8")
    try:
        done = run_chromium(chromium, profile, [f"--window-size={width},1000", "--dump-dom",
                                                probe.resolve().as_uri()], timeout_s)
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r"SEER_PAGE_HEIGHT=(\d+)", done.stdout)
    return int(found.group(1)) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", help="the report.html to render")
    parser.add_argument("--out", help="the PNG to write (default: PAGE with .png)")
    parser.add_argument("--width", type=int, default=1400, help="window width in CSS pixels")
    parser.add_argument("--chromium", help="the Chromium binary (default: found on the PATH)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per Chromium start")
    args = parser.parse_args(argv)
    page = Path(args.page)
    if not page.is_file():
        print(f"report_screenshot: {page}: no such file", file=sys.stderr)
        return 2
    chromium = chromium_path(args.chromium)
    if chromium is None:
        print("report_screenshot: no Chromium on the PATH (Debian: apt-get install chromium)",
              file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else page.with_suffix(".png")
    with tempfile.TemporaryDirectory(prefix="seer-chromium-") as tmp:
        height = page_height_px(chromium, Path(tmp) / "a", page, args.width, args.timeout)
        if height is None:
            print("report_screenshot: could not read the page's height; using 4000 px", file=sys.stderr)
            height = 4000
        out.unlink(missing_ok=True)
        done = run_chromium(chromium, Path(tmp) / "b", [f"--window-size={args.width},{height}",
                                                        f"--screenshot={out.resolve()}",
                                                        page.resolve().as_uri()], args.timeout)
    if not out.is_file() or out.stat().st_size == 0:
        print(f"report_screenshot: Chromium wrote no screenshot (exit {done.returncode}):\n"
              f"{done.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"screenshot: {out} ({args.width}x{height} px, {out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
