"""Reusable widgets of the staff TUI."""
