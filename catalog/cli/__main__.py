"""`python -m catalog.cli` runs the same app as the `goldpath` console script."""

from .main import main

main()
