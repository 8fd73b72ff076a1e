"""The panes and widgets of the main screen, one module each."""
