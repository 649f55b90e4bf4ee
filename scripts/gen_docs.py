"""Write the generated docs pages: the CLI reference (docs/reference/cli.md), the layer table
of docs/architecture.md (between its markers) and docs/changelog.md (a copy of CHANGELOG.md).
``--check``: write nothing, exit 1 if a page is out of date (the test suite runs this)."""

from __future__ import annotations

import sys
from pathlib import Path

from mrtranslate.architecture import layers_markdown
from mrtranslate.cli.reference import cli_reference_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"
START, END = "<!-- layers: generated from mrtranslate/architecture.py -->", "<!-- end layers -->"


def pages() -> dict[Path, str]:
    architecture = (DOCS / "architecture.md").read_text(encoding="utf-8")
    head, rest = architecture.split(START, 1)
    tail = rest.split(END, 1)[1]
    changelog = (DOCS.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    return {
        DOCS / "changelog.md": changelog,
        DOCS / "reference" / "cli.md": cli_reference_markdown(),
        DOCS / "architecture.md": f"{head}{START}\n{layers_markdown()}\n{END}{tail}",
    }


def main(argv: list[str]) -> int:
    stale = []
    for path, text in pages().items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if "--check" not in argv:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if "--check" in argv and stale:
        print("out of date (run python scripts/gen_docs.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
