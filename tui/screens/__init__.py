"""One module per screen of the staff TUI."""
