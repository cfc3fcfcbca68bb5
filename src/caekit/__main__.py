"""``python -m caekit`` (and ``torchrun -m caekit train ...``)."""

from caekit.cli import main

main()
