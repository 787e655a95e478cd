"""Browser smoke check: Kedro-Viz and the MLflow UI render the project in headless Chromium.

1. builds the static Kedro-Viz site (``kedro viz build`` -> ``build/``, skipped with
   ``--no-build``) and serves it on loopback;
2. serves the MLflow UI on loopback (``mlflow server`` on the project's tracking database);
3. loads every registered pipeline in Kedro-Viz and asserts its node names render;
4. loads the experiment in the MLflow UI and asserts that the latest runs (named
   ``<pipeline>:<run name>``) render, then opens the latest run carrying headline metrics and
   asserts that they render with their values;
5. with ``--screenshots DIR``, saves one PNG per pipeline (``kedro_viz_<pipeline>.png``) and of
   the MLflow run (``mlflow_run.png``).

Usage (from the repository root; needs a Chromium binary, see docs/getting_started.md)::

    python scripts/browser_check.py                       # after `kedro run`
    python scripts/browser_check.py --screenshots docs/images
    python scripts/browser_check.py --tracking-uri sqlite:///path/mlflow.db --experiment NAME

Exit status 0 when everything rendered, 1 with the failed checks listed, 2 without Chromium.
Nothing leaves the machine: servers bind to 127.0.0.1, Chromium runs with a fresh profile and
background networking off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
#: Kedro-Viz shows a feature walkthrough on first visit unless its localStorage says otherwise:
#: this page (written into the served site) sets that, then opens ``?next=<path>``.
VIZ_SETUP_PAGE = "ddr-browser-check.html"
VIZ_SETUP_HTML = """<!doctype html><script>
localStorage.setItem("KedroViz", JSON.stringify({showFeatureHints: false}));
location.replace(new URLSearchParams(location.search).get("next"));
</script>"""


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM`` or the first of :data:`CHROMIUM_NAMES` on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200 (``TimeoutError`` after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(1.0)


@contextlib.contextmanager
def serve(command: list[str], cwd: Path) -> Iterator[Callable[[str, float], None]]:
    """Run a server ``command`` until the block ends; yields ``ready(url, timeout)``, which
    waits until it answers ``url`` (``TimeoutError`` with the end of its output)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

        def ready(url: str, timeout: float) -> None:
            try:
                wait_for(url, timeout)
            except TimeoutError:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise TimeoutError(f"{' '.join(command)} did not start:\n{tail}") from None

        try:
            yield ready
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


class Browser:
    """Headless Chromium with a fresh profile: the rendered DOM or a screenshot of a URL."""

    def __init__(self, binary: str, budget_ms: int = 20000) -> None:
        self.binary = binary
        self.budget_ms = budget_ms
        self.profile = Path(tempfile.mkdtemp(prefix="ddr-chromium-"))

    def _run(self, url: str, *extra: str) -> str:
        command = [
            self.binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self.profile}",
            f"--virtual-time-budget={self.budget_ms}",
            "--window-size=1600,1000",
            *extra,
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"chromium failed on {url}: {result.stderr[-1500:]}")
        return result.stdout

    def dom(self, url: str) -> str:
        """The DOM after the page's scripts ran (virtual time budget)."""
        return self._run(url, "--dump-dom")

    def screenshot(self, url: str, path: Path) -> None:
        """A 1600x1000 PNG of the rendered page."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(url, f"--screenshot={path}")

    def close(self) -> None:
        """Delete the profile."""
        shutil.rmtree(self.profile, ignore_errors=True)


def viz_pipelines(build: Path) -> dict[str, list[str]]:
    """``{pipeline id: node names}`` from the static site's API files."""
    main = json.loads((build / "api" / "main").read_text())
    out = {}
    for pipeline in main["pipelines"]:
        path = build / "api" / "pipelines" / pipeline["id"]
        data = json.loads(path.read_text()) if path.exists() else main
        out[pipeline["id"]] = [n["name"] for n in data["nodes"] if n.get("type") == "task"]
    return out


def check_viz(
    browser: Browser, base: str, build: Path, shots: Path | None, only: list[str] | None = None
) -> list[str]:
    """Each pipeline's page (or those in ``only``) renders its node names (pretty or raw)."""
    failures = []
    (build / VIZ_SETUP_PAGE).write_text(VIZ_SETUP_HTML)
    for pipeline, names in viz_pipelines(build).items():
        if (only is None and pipeline == "__default__") or (only and pipeline not in only):
            continue
        target = urllib.parse.quote(f"/?pid={pipeline}&expandAllPipelines=true")
        url = f"{base}/{VIZ_SETUP_PAGE}?next={target}"
        dom = browser.dom(url)
        shown = [n for n in names if _rendered(n, dom)]
        if not names or len(shown) < len(names):
            missing = sorted(set(names) - set(shown))
            failures.append(f"Kedro-Viz {pipeline}: nodes not rendered: {missing[:8]}")
        else:
            print(f"ok  Kedro-Viz pipeline {pipeline}: {len(names)} nodes rendered")
        if shots is not None:
            browser.screenshot(url, shots / f"kedro_viz_{pipeline}.png")
    return failures


def _rendered(name: str, dom: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    pretty = leaf.replace("_", " ").title()
    return leaf in dom or pretty in dom or pretty.lower() in dom.lower()


def _save_dom(dom: str, name: str) -> Path:
    """Keep a DOM that failed a check, for debugging."""
    with tempfile.NamedTemporaryFile("w", prefix=f"{name}-", suffix=".html", delete=False) as f:
        f.write(dom)
    return Path(f.name)


def latest_runs(tracking_uri: str, experiment: str, n: int = 5) -> tuple[str, list]:
    """The experiment id and its ``n`` latest runs."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no experiment {experiment!r} in {tracking_uri}: run the pipelines first")
    runs = client.search_runs(
        [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=n
    )
    return found.experiment_id, runs


def check_mlflow(
    browser: Browser, base: str, tracking_uri: str, experiment: str, shots: Path | None
) -> list[str]:
    """The latest runs render in the experiment view; the headline metrics on the run page."""
    experiment_id, runs = latest_runs(tracking_uri, experiment)
    if not runs:
        return [f"MLflow: experiment {experiment!r} has no runs"]
    failures = []
    dom = browser.dom(f"{base}/#/experiments/{experiment_id}/runs")
    # nested runs (evaluation / routing under their training run) show once it is expanded
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    missing = [r.info.run_name for r in top if r.info.run_name not in dom]
    if missing:
        saved = _save_dom(dom, "mlflow_runs")
        failures.append(f"MLflow runs view: runs not rendered: {missing} (DOM in {saved})")
    else:
        print(f"ok  MLflow experiment {experiment}: latest runs rendered {[r.info.run_name for r in top]}")
    headline = [r for r in runs if any(k.startswith("headline/") for k in r.data.metrics)]
    if not headline:
        return [*failures, "MLflow: none of the latest runs has headline metrics (run evaluation)"]
    run = headline[0]
    url = f"{base}/#/experiments/{experiment_id}/runs/{run.info.run_id}"
    dom = browser.dom(url)
    names = sorted(k for k in run.data.metrics if k.startswith("headline/"))
    absent = [k for k in names if k not in dom]
    if absent:
        saved = _save_dom(dom, "mlflow_run")
        failures.append(
            f"MLflow run {run.info.run_name}: headline metrics not rendered: {absent} "
            f"(DOM in {saved})"
        )
    else:
        print(f"ok  MLflow run {run.info.run_name}: {len(names)} headline metrics rendered")
    if shots is not None:
        browser.screenshot(url, shots / "mlflow_run.png")
    return failures


def main(argv: list[str] | None = None) -> int:
    """Run the checks; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="ddr_pipeline")
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="Kedro-Viz site")
    parser.add_argument("--no-build", action="store_true", help="reuse the built site")
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for PNGs")
    parser.add_argument("--timeout", type=float, default=600.0, help="server start-up, s")
    parser.add_argument(
        "--viz-pipelines", nargs="+", default=None,
        help="pipelines to load in Kedro-Viz (default: each registered one; __default__ = all)",
    )
    args = parser.parse_args(argv)

    chromium = find_chromium()
    if chromium is None:
        print("no Chromium binary (set CHROMIUM or install chromium)", file=sys.stderr)
        return 2
    env_bin = BIN if (BIN / "kedro").exists() else Path()
    viz_port, mlflow_port = free_port(), free_port()
    viz_base, mlflow_base = f"http://127.0.0.1:{viz_port}", f"http://127.0.0.1:{mlflow_port}"
    http = [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(args.build)]
    ui = [
        str(env_bin / "mlflow"), "server", "--backend-store-uri", args.tracking_uri,
        "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
    ]
    browser = Browser(chromium)
    try:
        with serve(ui, ROOT) as mlflow_ready:  # starts while the site builds
            if not args.no_build:
                subprocess.run([str(env_bin / "kedro"), "viz", "build"], cwd=ROOT, check=True)
            with serve([*http, str(viz_port)], ROOT) as viz_ready:
                viz_ready(viz_base, args.timeout)
                mlflow_ready(f"{mlflow_base}/health", args.timeout)
                failures = check_viz(
                    browser, viz_base, args.build, args.screenshots, args.viz_pipelines
                )
                failures += check_mlflow(
                    browser, mlflow_base, args.tracking_uri, args.experiment, args.screenshots
                )
    finally:
        browser.close()
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
