"""``python -m fcn_lightning.cli``: the ``fcn-lightning`` command."""

from fcn_lightning.cli import main

main()
