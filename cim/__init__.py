"""The `cim` command line: one entry point for the server, the TUI and the operations of CIM."""
