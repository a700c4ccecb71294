"""`python -m client.cli`: the `opsflow` console script."""

from client.cli import main

main()
