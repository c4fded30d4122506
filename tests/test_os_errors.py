"""OS errors end in one ``error: PATH: what happened`` line (exit 1), temporaries removed, stale ones cleaned."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cxrlt_core.atomic import atomic_path, remove_stale_temporaries, write_json, write_text
from cxrlt_core.oserrors import as_os_error, describe_os_error
from tests.hostile_world import cxrlt, disk_full, leftovers, predict_args, read_only, world  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "no space left on the device"),
        (errno.EROFS, "read-only file system"),
        (errno.EISDIR, "is a folder, not a file"),
        (errno.EACCES, "permission denied"),
        (errno.EFBIG, "file too large (the file-size limit was reached)"),
    ],
)
def test_describe_os_error(code: int, words: str):
    assert describe_os_error(OSError(code, os.strerror(code), "/x/out.json")) == f"/x/out.json: {words}"
    assert describe_os_error(OSError(code, os.strerror(code))) == words


def test_hidden_os_errors_of_rust_and_torch_writers(tmp_path: Path):
    err = as_os_error(RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"), "/a/b")
    assert err.errno == errno.ENOSPC and err.filename == "/a/b"
    assert as_os_error(RuntimeError("shape mismatch"), "/a/b") is None


def _one_error(capsys, *words: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    for word in words:
        assert word in err[0], err[0]
    return err[0]


@pytest.mark.parametrize("command", ["calibrate", "thresholds", "evaluate"])
def test_out_naming_a_folder(world: dict[str, Path], tmp_path: Path, capsys, command: str):  # noqa: F811
    folder = tmp_path / "somewhere"
    folder.mkdir()
    labels = world["data"] / "val.csv"
    out_flag = "--json" if command == "evaluate" else "--out"
    assert cxrlt(command, "--pred", world["val_pred"], "--labels", labels, out_flag, folder) == 1
    assert _one_error(capsys) == f"error: {folder}: is a folder, not a file"
    assert list(folder.iterdir()) == [] and leftovers(tmp_path) == []


def test_disk_full_while_predicting(world: dict[str, Path], tmp_path: Path, capsys, monkeypatch):  # noqa: F811
    out = tmp_path / "pred.parquet"
    disk_full(monkeypatch)
    assert cxrlt(*predict_args(world, world["data"] / "test.csv", out)) == 1
    _one_error(capsys, f"error: {out}: no space left on the device")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["calibrate", "thresholds"])
def test_disk_full_and_read_only_for_small_writers(world, tmp_path: Path, capsys, monkeypatch, command):  # noqa: F811
    out = tmp_path / "out.json"
    args = (command, "--pred", world["val_pred"], "--labels", world["data"] / "val.csv", "--out", out)
    with monkeypatch.context() as patch:
        disk_full(patch)
        assert cxrlt(*args) == 1
    _one_error(capsys, f"error: {out}: no space left on the device")
    with monkeypatch.context() as patch:
        read_only(patch)
        assert cxrlt(*args) == 1
    _one_error(capsys, f"error: {out}: read-only file system")
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_by_permissions(world: dict[str, Path], tmp_path: Path, capsys):  # noqa: F811
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        out = locked / "thr.json"
        labels = world["data"] / "val.csv"
        assert cxrlt("thresholds", "--pred", world["val_pred"], "--labels", labels, "--out", out) == 1
        _one_error(capsys, f"error: {out}: permission denied")
    finally:
        locked.chmod(0o755)


def test_file_size_limit_of_the_os_in_a_child_process(world: dict[str, Path], tmp_path: Path):  # noqa: F811
    """RLIMIT_FSIZE makes the kernel refuse writes past N bytes (EFBIG): a real OS-level failing writer."""
    out = tmp_path / "pred.csv"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    argv = [sys.executable, "-m", "cxrlt_core.cli", *map(str, predict_args(world, world["data"] / "test.csv", out))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limit, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {out}: file too large (the file-size limit was reached)"]
    assert not out.exists() and leftovers(tmp_path) == []


def test_atomic_write_naming_a_folder_or_failing_leaves_nothing(tmp_path: Path, monkeypatch):
    with pytest.raises(IsADirectoryError) as caught:
        write_json(tmp_path, {"a": 1})
    assert caught.value.filename == str(tmp_path)
    target = tmp_path / "x.json"
    disk_full(monkeypatch)
    with pytest.raises(OSError) as caught:
        write_text(target, "hello" * 10000)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path: Path):
    target = tmp_path / "pred.parquet"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".pred.parquet.{dead.pid}-abcd1234.tmp"
    live = tmp_path / f".pred.parquet.{os.getpid()}-abcd1234.tmp"
    other = tmp_path / f".other.parquet.{dead.pid}-abcd1234.tmp"
    old = tmp_path / ".pred.parquet.zz99yy88.tmp"
    for path in (stale, live, other, old):
        path.write_text("partial")
    os.utime(old, (1, 1))
    assert sorted(remove_stale_temporaries(target)) == sorted([stale, old])
    assert live.exists() and other.exists()
    with atomic_path(target) as tmp:  # a new write cleans again and uses a pid-stamped temporary
        assert tmp.name.startswith(f".pred.parquet.{os.getpid()}-")
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_disk_full_while_training(tmp_path: Path, capsys, monkeypatch):
    from tests.test_resume_equal import _recipe
    from tests.test_training import make_tiny_dataset

    recipe = _recipe(make_tiny_dataset(tmp_path / "data", n=12, size=32), 0, tmp_path / "r.yaml")
    disk_full(monkeypatch)
    assert cxrlt("train", "--config", recipe, "--workspace", tmp_path / "ws", "--run-name", "r", "--no-progress") == 1
    _one_error(capsys, f"{tmp_path / 'ws' / 'runs' / 'r'}", "no space left on the device")
    assert leftovers(tmp_path) == []
