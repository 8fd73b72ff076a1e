"""Training backends: torch_lora (transformers + peft) and, on Apple Silicon, mlx_lora."""
