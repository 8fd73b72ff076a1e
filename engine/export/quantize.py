"""Quantize an f16 GGUF with llama.cpp's own quantizer (through llama-cpp-python).

``llama_model_quantize`` gives no progress callback, so a watcher thread reports the bytes
written to the output file against the size the quantization type predicts.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.export import ExportError, Progress, no_progress

#: Quantization → (llama.cpp file type constant name, nominal bits per weight for estimates).
QUANTS: dict[str, tuple[str, float]] = {
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.9),
    "q5_k_m": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.7),
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
}


@dataclass(frozen=True)
class QuantResult:
    path: Path
    quant: str
    bytes: int
    source_bytes: int
    n_params: int
    bits_per_weight: float
    seconds: float

    def summary(self) -> str:
        return (f"{self.quant.upper()} {self.bytes / 1e6:.1f} MB "
                f"({self.bits_per_weight:.2f} bits/weight, from {self.source_bytes / 1e6:.1f} MB "
                f"f16, {self.seconds:.1f} s)")


def quantize(src: Path, dst: Path, quant: str, *, threads: int = 0,
             progress: Progress = no_progress) -> QuantResult:
    """Write ``dst`` as ``quant`` from the f16 GGUF ``src`` (atomic: temp file, then rename)."""
    if quant not in QUANTS:
        raise ExportError(f"export.quant {quant!r} is not one of {', '.join(QUANTS)}")
    import llama_cpp

    from engine.export.convert import read_metadata

    const, nominal_bpw = QUANTS[quant]
    meta = read_metadata(src)
    expected = max(1, int(meta["n_params"] * nominal_bpw / 8))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, const)
    params.nthread = threads or (os.cpu_count() or 1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            size = tmp.stat().st_size if tmp.exists() else 0
            progress(min(size, expected), expected, f"quantizing to {quant.upper()}")

    t0 = time.monotonic()
    progress(0, expected, f"quantizing to {quant.upper()}")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(),
                                            ctypes.byref(params))
    finally:
        done.set()
        watcher.join()
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise ExportError(f"llama.cpp's quantizer failed on {src} (code {rc}); see engine.log")
    os.replace(tmp, dst)
    out_meta = read_metadata(dst)
    seconds = time.monotonic() - t0
    progress(expected, expected, f"{quant.upper()} written")
    bpw = out_meta["data_bytes"] * 8 / max(1, out_meta["n_params"])
    return QuantResult(dst, quant, dst.stat().st_size, src.stat().st_size,
                       out_meta["n_params"], bpw, seconds)
