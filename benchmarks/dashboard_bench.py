"""Dashboard responsiveness: the Gating page's compute per α change, and the time from `streamlit run` to the overview.

(a) ``--gating``: what the Gating page recomputes when α moves, on N × C synthetic predictions (default the
    issue's 20,000 × 30 with the cxrlt2026 classes, Normal among them, prevalences from 0.3 % to 35 %): the
    ungated and gated ``compute_report`` plus ``normal_gating`` (the figures shown at the top of the page), and
    separately the calibration + thresholds table below them (``study_stages``, fitted on a 5,000-image split).
    Median over repeats; predictions are already in memory, as with the page's cached loads.
(b) ``--overview WORKSPACE``: starts ``streamlit run app.py`` headless on a free port with that workspace, opens it
    in Chromium (Playwright) and reports the seconds from launching the server to the overview on screen (its last
    section drawn, its tables visible; a later start: the workspace is already built). Needs /usr/bin/chromium.

    .venv/bin/python benchmarks/dashboard_bench.py --gating
    .venv/bin/python benchmarks/dashboard_bench.py --overview workspace/demo --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxrlt_core.inference.gating import normal_gating  # noqa: E402
from cxrlt_core.labels import get_label_space  # noqa: E402
from cxrlt_core.metrics import compute_report  # noqa: E402
from cxrlt_core.postprocess_study import study_stages  # noqa: E402
from cxrlt_dashboard.server import free_port, start_dashboard  # noqa: E402


def synthetic(n: int, classes: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with long-tailed prevalences and scores that rank positives higher (AUC ≈ 0.8)."""
    rng = np.random.default_rng(seed)
    prevalence = np.geomspace(0.35, 0.003, len(classes))
    labels = (rng.random((n, len(classes))) < prevalence).astype(np.float64)
    logits = rng.normal(size=labels.shape) + 1.2 * labels + np.log(prevalence / (1 - prevalence))
    return labels, 1.0 / (1.0 + np.exp(-logits))


def bench_gating(n: int, repeats: int) -> None:
    classes = list(get_label_space("cxrlt2026").in_distribution)
    labels, scores = synthetic(n, classes, seed=0)
    v_labels, v_scores = synthetic(5000, classes, seed=1)
    alphas = np.linspace(0.05, 2.0, repeats)

    def alpha_change(alpha: float) -> None:
        compute_report(labels, scores, classes)
        compute_report(labels, normal_gating(scores, classes, alpha=alpha, form="power"), classes)

    def stages(alpha: float) -> None:
        study_stages(
            v_scores,
            v_labels,
            scores,
            labels,
            classes,
            gating_alpha=alpha,
            gating_form="power",
            calibration_method="temperature",
            tune_thresholds=True,
        )

    alpha_change(0.5)  # warm-up
    for name, fn in (("gated metrics (page top)", alpha_change), ("calibration + thresholds table", stages)):
        times = []
        for alpha in alphas:
            start = time.perf_counter()
            fn(float(alpha))
            times.append(1000 * (time.perf_counter() - start))
        print(
            f"{n:,} x {len(classes)}: {name}: median {statistics.median(times):.0f} ms "
            f"(min {min(times):.0f}, max {max(times):.0f}, {len(times)} α values)"
        )


def bench_overview(workspace: Path, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        for i in range(repeats):
            port = free_port()
            start = time.perf_counter()
            server = start_dashboard(workspace, port)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                while True:
                    try:
                        page.goto(f"http://127.0.0.1:{port}/", timeout=2000)
                        break
                    except Exception:  # noqa: BLE001 - the server is not listening yet
                        if time.perf_counter() - start > 120:
                            raise
                        time.sleep(0.1)
                served = time.perf_counter() - start
                # the last section of the overview, and the run table (a canvas grid) drawn
                page.get_by_role("heading", name="Prompt sets").wait_for(timeout=120_000)
                page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=120_000)
                shown = time.perf_counter() - start
                print(
                    f"start {i + 1}: page served after {served:.1f} s, overview with runs on screen after {shown:.1f} s"
                )
                page.close()
            finally:
                server.terminate()
                server.wait(timeout=30)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gating", action="store_true", help="time the Gating page's compute per α change")
    parser.add_argument("--n", type=int, default=20000, help="images for --gating (default 20,000)")
    parser.add_argument("--overview", type=Path, metavar="WORKSPACE", help="time dashboard starts on this workspace")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if not args.gating and not args.overview:
        parser.error("choose --gating and/or --overview WORKSPACE")
    if args.gating:
        bench_gating(args.n, args.repeats)
    if args.overview:
        bench_overview(args.overview, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
