"""web4tui's headless engine: stages, backends, run folders. Never imports the UI."""

__version__ = "0.1.0"
