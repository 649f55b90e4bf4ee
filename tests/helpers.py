"""Helpers shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

from mrtranslate.cli import main


def usage_error(capsys, args: list[str]) -> str:
    """Run the CLI and check it fails as a usage error: exit 2, one line on stderr, no traceback."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mrtranslate: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def trained_and_evaluated(models: tuple[str, ...], data, root) -> list:
    """Train each model with the tiny profile into ``root/<model>`` and evaluate it."""
    from mrtranslate.training.run import train_run

    runs = []
    for model in models:
        train_run(model, data, root / model, profile="tiny", progress=False)
        assert main(["evaluate", "--run", str(root / model), "--quiet"]) == 0
        runs.append(root / model)
    return runs
