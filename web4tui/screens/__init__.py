"""Screens and dialogs: the main screen, runs, confirmations, help, the loss plot."""
