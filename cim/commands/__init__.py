"""One module per area of the `cim` command line; each has `register(cli)`."""
