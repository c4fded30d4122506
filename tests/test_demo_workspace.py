"""The demo workspace build: complete, idempotent, resumable step by step, with one progress figure across steps."""

from __future__ import annotations

import pytest

from cxrlt_core import demo_workspace as dw
from cxrlt_core.errors import InputError
from cxrlt_core.runs import checkpoint_path, read_status
from cxrlt_core.workspace import Workspace


def test_progress_of_steps_running_side_by_side(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    dw.build_dir(ws).mkdir(parents=True)
    (dw.build_dir(ws) / "data.done").write_text("1\n")
    seen = []
    tracker = dw._ProgressFile(ws, lambda step, fraction, message: seen.append((step, fraction)))
    tracker.update_many({"demo_csra": 0.5, "demo_mlp": 0.25}, "training", force=True)
    expected = dw.STEP_WEIGHTS["data"] + 0.5 * dw.STEP_WEIGHTS["demo_csra"] + 0.25 * dw.STEP_WEIGHTS["demo_mlp"]
    assert seen[-1] == ("demo_csra", pytest.approx(expected, abs=1e-4))
    assert dw.read_progress(ws)["fraction"] == pytest.approx(expected, abs=1e-4)
    tracker.update("clip", 2.0, "clamped", force=True)  # a step's own fraction is clamped to [0, 1]
    assert seen[-1][1] == pytest.approx(dw.STEP_WEIGHTS["data"] + dw.STEP_WEIGHTS["clip"], abs=1e-4)


def test_step_weights_cover_every_step_once():
    assert set(dw.STEP_WEIGHTS) == set(dw.STEPS)
    assert sum(dw.STEP_WEIGHTS.values()) == pytest.approx(1.0)


def test_unknown_profile_is_named(tmp_path):
    with pytest.raises(InputError, match="unknown demo profile 'huge'"):
        dw.build_demo_workspace(tmp_path / "ws", profile="huge")


@pytest.mark.slow
def test_built_workspace_is_complete_and_a_rebuild_redoes_only_missing_steps(tiny_workspace):
    ws = tiny_workspace
    assert dw.is_complete(ws) and dw.read_progress(ws)["state"] == "finished"
    for run in dw.RUNS:  # both trained (side by side on a multi-core CPU) and finished
        assert read_status(ws.run(run))["state"] == "finished"
        assert checkpoint_path(ws.run(run), "best").is_file()
        assert (ws.run(run) / "predictions" / "test.parquet").is_file()
    stamps = {run: checkpoint_path(ws.run(run), "best").stat().st_mtime_ns for run in dw.RUNS}

    # Lose one step's output and its marker: the rebuild redoes that step only.
    lost = ws.run("demo_mlp") / "predictions" / "val.parquet"
    lost.unlink()
    (dw.build_dir(ws) / "predictions.done").unlink()
    steps = []
    dw.build_demo_workspace(ws, profile="tiny", progress=lambda step, fraction, message: steps.append(step))
    assert lost.is_file() and dw.is_complete(ws)
    assert set(steps) == {"predictions"}
    assert {run: checkpoint_path(ws.run(run), "best").stat().st_mtime_ns for run in dw.RUNS} == stamps
