"""Backend-independent training parts: data per stage, loss curves, memory, checkpoints."""
