"""Optimizer, scheduler and RNG state of the torch trainer as safetensors + JSON, never pickle.

A run folder may be copied from anywhere, so nothing in a checkpoint may be able to run code
when it is read: tensors go to safetensors files (a JSON header and raw bytes), everything
else to JSON, and every value read back is type-checked before torch sees it. A file that is
not what this module wrote raises :class:`StateError` naming the file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.backends import StateError

OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
RNG_JSON = "rng.json"
STATE_FILES = (OPTIMIZER_TENSORS, OPTIMIZER_JSON, SCHEDULER_JSON, RNG_JSON)


# -- plain values -----------------------------------------------------------------------------
def _plain(value: Any, where: str) -> Any:
    """JSON-able copy of a state value (tuples become lists); refuses anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: cannot store a {type(value).__name__} as plain state")


def _is_plain(value: Any, depth: int = 0) -> bool:
    if depth > 16:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        obj = json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise StateError(f"{path}: missing") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise StateError(f"{path}: not a JSON state file ({type(exc).__name__})") from None
    if not _is_plain(obj):
        raise StateError(f"{path}: holds values a state file never has")
    return obj


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise StateError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise StateError(f"{path}: not a safetensors file ({str(exc)[:120]})") from None


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


# -- optimizer --------------------------------------------------------------------------------
def save_optimizer(state: dict[str, Any], folder: Path) -> None:
    """``opt.state_dict()``: its tensors by ``<param>.<name>``, the rest as JSON."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{int(param)}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(int(param)), {})[name] = _plain(value, f"state.{name}")
    save_file(tensors, str(folder / OPTIMIZER_TENSORS))
    _write_json(folder / OPTIMIZER_JSON, {
        "param_groups": _plain(state["param_groups"], "param_groups"), "scalars": scalars,
        "params": sorted(int(p) for p in state["state"])})


def load_optimizer(folder: Path) -> dict[str, Any]:
    meta = _read_json(folder / OPTIMIZER_JSON)
    tensors = _read_tensors(folder / OPTIMIZER_TENSORS)
    where = folder / OPTIMIZER_JSON
    if not (isinstance(meta, dict) and isinstance(meta.get("param_groups"), list)
            and isinstance(meta.get("scalars"), dict) and isinstance(meta.get("params"), list)
            and all(isinstance(p, int) and not isinstance(p, bool) for p in meta["params"])
            and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                    for g in meta["param_groups"])):
        raise StateError(f"{where}: not an optimizer state written by this trainer")
    state: dict[int, dict[str, Any]] = {p: {} for p in meta["params"]}
    for key, value in tensors.items():
        param, _, name = key.partition(".")
        if not param.isdigit() or int(param) not in state or not name:
            raise StateError(f"{folder / OPTIMIZER_TENSORS}: unexpected tensor {key!r}")
        state[int(param)][name] = value
    for param, entry in meta["scalars"].items():
        if not param.isdigit() or int(param) not in state or not isinstance(entry, dict):
            raise StateError(f"{where}: unexpected entry {param!r}")
        state[int(param)].update(entry)
    groups = [dict(g, betas=tuple(g["betas"])) if isinstance(g.get("betas"), list) else g
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# -- scheduler --------------------------------------------------------------------------------
def save_scheduler(state: dict[str, Any], folder: Path) -> None:
    _write_json(folder / SCHEDULER_JSON, _plain(state, "scheduler"))


def load_scheduler(folder: Path) -> dict[str, Any]:
    state = _read_json(folder / SCHEDULER_JSON)
    if not (isinstance(state, dict) and isinstance(state.get("last_epoch"), int)
            and isinstance(state.get("base_lrs"), list)):
        raise StateError(f"{folder / SCHEDULER_JSON}: not a scheduler state")
    return state


# -- random number generators -----------------------------------------------------------------
def save_rng(folder: Path) -> None:
    np_state = np.random.get_state()
    _write_json(folder / RNG_JSON, {
        "python": _plain(random.getstate(), "python"),
        "numpy": [np_state[0], np_state[1].tolist(), *map(_np_scalar, np_state[2:])],
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available() else []})


def _np_scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _bytes_tensor(value: Any, where: Path) -> torch.Tensor:
    if not (isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value)):
        raise StateError(f"{where}: a generator state must be a list of bytes")
    return torch.tensor(value, dtype=torch.uint8)


def load_rng(folder: Path) -> None:
    """Put every generator back as it was when the checkpoint was written."""
    where = folder / RNG_JSON
    rng = _read_json(where)
    if not isinstance(rng, dict):
        raise StateError(f"{where}: not a generator state")
    try:
        py = rng["python"]
        py_state = (py[0], tuple(py[1]), py[2])
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        torch_state = _bytes_tensor(rng["torch"], where)
        cuda = [_bytes_tensor(s, where) for s in rng.get("cuda") or []]
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
    except StateError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise StateError(f"{where}: not a generator state ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
