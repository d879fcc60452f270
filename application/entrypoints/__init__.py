"""Entrypoints: the two programs, their commands, argument parsing and presenters."""
