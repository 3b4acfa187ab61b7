"""`python -m cim` runs the `cim` command."""

from cim.cli import main

main()
