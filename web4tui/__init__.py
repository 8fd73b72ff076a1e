"""web4tui: the Textual app and the command line. Never imports torch, transformers or mlx."""

__version__ = "0.1.0"
