"""Checkpoints are whole or absent: a kill at any step of a save never leaves a partial one in
use, and ``latest`` falls back to the previous complete checkpoint."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine.training import checkpoint as ckpt


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even ``except Exception``)."""


def save(root: Path, step: int, payload: str) -> Path:
    tmp = ckpt.temp_dir(root, step)
    header = json.dumps({"__metadata__": {"p": payload * 1000}}).encode()
    (tmp / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    (tmp / "optimizer.json").write_text(f'{{"p": "{payload}"}}')
    ckpt.write_state(tmp, {"step": step, "losses": [1.0] * step, "grad_norms": [0.5] * step})
    return ckpt.commit(tmp, ckpt.step_dir(root, step), keep=3)


def content(folder: Path) -> str:
    return (folder / "optimizer.json").read_text()


def test_a_saved_checkpoint_verifies_and_a_damaged_one_does_not(tmp_path: Path) -> None:
    cp = save(tmp_path, 2, "a")
    assert ckpt.verify(cp) is None
    data = (cp / "adapter_model.safetensors").read_bytes()
    (cp / "adapter_model.safetensors").write_bytes(data.replace(b"a", b"b"))  # same size
    assert "hash" in ckpt.verify(cp)
    (cp / "adapter_model.safetensors").unlink()
    assert "adapter_model.safetensors is missing" in ckpt.verify(cp)
    (cp / ckpt.MANIFEST).unlink()
    assert "no manifest" in ckpt.verify(cp)


def test_latest_skips_an_incomplete_checkpoint_with_a_warning(tmp_path: Path) -> None:
    save(tmp_path, 2, "a")
    newest = save(tmp_path, 4, "b")
    (newest / "adapter_model.safetensors").unlink()  # what the old delete-then-move left
    warnings: list[str] = []
    assert ckpt.latest(tmp_path, warnings.append) == ckpt.step_dir(tmp_path, 2)
    assert warnings == ["checkpoint step-000004 is incomplete (adapter_model.safetensors is "
                        "missing); skipped"]


def test_only_incomplete_checkpoints_refuse_the_resume(tmp_path: Path) -> None:
    cp = save(tmp_path, 2, "a")
    (cp / "optimizer.json").write_text("{}")
    with pytest.raises(ckpt.CheckpointError, match="no complete checkpoint"):
        ckpt.latest(tmp_path)


@pytest.mark.parametrize("kill_at", range(1, 12))
def test_a_kill_at_any_point_of_resaving_a_step_leaves_a_complete_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: int) -> None:
    """The final save of a step that was just saved periodically (steps % checkpoint_every
    == 0) replaces an existing folder: kill it at every file-system step in turn."""
    save(tmp_path, 2, "a")
    save(tmp_path, 4, "b")
    calls = [0]

    def killing(real):  # type: ignore[no-untyped-def]
        def op(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[0] += 1
            if calls[0] == kill_at:
                raise Killed()
            return real(*args, **kwargs)
        return op

    def rmtree_killed_midway(path, ignore_errors=False):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == kill_at:  # like strace's unlinkat:signal=KILL: one file gone, then dead
            first = next(p for p in sorted(Path(path).rglob("*")) if p.is_file())
            first.unlink()
            raise Killed()
        return real_rmtree(path, ignore_errors=ignore_errors)

    real_rmtree = shutil.rmtree
    monkeypatch.setattr(ckpt.os, "replace", killing(os.replace))
    monkeypatch.setattr(ckpt.os, "fsync", killing(os.fsync))
    monkeypatch.setattr(ckpt.shutil, "rmtree", rmtree_killed_midway)
    try:
        save(tmp_path, 4, "c")
        finished = True
    except Killed:
        finished = False
    monkeypatch.undo()
    warnings: list[str] = []
    got = ckpt.latest(tmp_path, warnings.append)
    assert got == ckpt.step_dir(tmp_path, 4), (kill_at, warnings)
    assert ckpt.verify(got) is None
    assert content(got) in ('{"p": "b"}', '{"p": "c"}')
    if finished:
        assert content(got) == '{"p": "c"}'


def test_a_complete_copy_is_put_back_when_the_final_folder_is_missing(tmp_path: Path) -> None:
    save(tmp_path, 2, "a")
    cp = save(tmp_path, 4, "b")
    os.replace(cp, tmp_path / ".step-000004.tmp-4242")  # killed between the two renames
    warnings: list[str] = []
    assert ckpt.latest(tmp_path, warnings.append) == cp
    assert content(cp) == '{"p": "b"}' and "put back" in warnings[0]
    assert not (tmp_path / ".step-000004.tmp-4242").exists()


def test_a_half_written_temp_folder_is_never_used(tmp_path: Path) -> None:
    save(tmp_path, 2, "a")
    tmp = ckpt.temp_dir(tmp_path, 4)
    (tmp / "adapter_model.safetensors").write_text("x")
    ckpt.write_state(tmp, {"step": 4, "losses": [], "grad_norms": []})  # no manifest yet
    assert ckpt.latest(tmp_path) == ckpt.step_dir(tmp_path, 2)


def test_a_pickle_only_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    cp = save(tmp_path, 2, "a")
    (cp / "optimizer.json").unlink()
    (cp / "optimizer.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ckpt.CheckpointError, match=r"pickle files \(optimizer.pt\)"):
        ckpt.check_loadable(cp)


def test_a_state_file_that_is_not_safetensors_is_refused(tmp_path: Path) -> None:
    cp = save(tmp_path, 2, "a")
    (cp / "optimizer.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 40)
    with pytest.raises(ckpt.CheckpointError, match="optimizer.safetensors: not a safetensors"):
        ckpt.check_loadable(cp)
