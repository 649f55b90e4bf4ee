"""``python -m mrtranslate`` runs the command-line interface."""

from mrtranslate.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
