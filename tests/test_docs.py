"""The documentation: a short README that leads into a MkDocs site that builds strictly, a CLI
reference with every option, generated pages in step with the code, no README anchors cited in
the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mrtranslate.cli.main import build_parser
from mrtranslate.cli.reference import commands, options

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _slug(heading: str) -> str:
    """The anchor MkDocs' toc extension gives a heading (its default slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown)


def test_the_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    # exactly the two set-up commands of a fresh machine
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && "
        ".venv/bin/mrtranslate study" in text
    )
    assert "bash scripts/test.sh" in text
    assert text.count("```bash") >= 2


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        ("docs/commands/data.md", "Your own data: `mrtranslate data import`"),
        ("docs/commands/study.md", "The budget: how the plan is made"),
    ],
)
def test_the_readme_leads_to_raw_data_and_the_budget_in_one_click(page, heading):
    """A newcomer reaches how to bring BIDS data in, and what the budget does, from the
    README's own links."""
    target = f"{page}#{_slug(heading)}"
    assert target in _links(README.read_text(encoding="utf-8"))
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    assert f"## {heading}" in lines


def test_every_local_link_of_the_readme_exists():
    for link in _links(README.read_text(encoding="utf-8")):
        if "://" in link:
            continue
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, link


def test_every_command_and_option_is_in_the_cli_reference():
    """Walks the parsers themselves (not the generator's output): a command or option without an
    entry in docs/reference/cli.md fails."""
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## `|\Z)", text, re.M | re.S))
    missing = []
    for name, parser in commands(build_parser()):
        if name not in sections:
            missing.append(name)
            continue
        for action in options(parser):
            for flag in action.option_strings or [action.metavar or action.dest.upper()]:
                if f"`{flag}`" not in sections[name]:
                    missing.append(f"{name} {flag}")
    assert not missing, missing


def test_generated_pages_are_in_step_with_the_code():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_cites_docs_pages_not_readme_sections():
    cited = []
    for path in (ROOT / "src" / "mrtranslate").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"README(\.md)?(#|, \"| section|, below|, above)|see (the )?README", line):
                cited.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not cited, cited
    for path in (ROOT / "src" / "mrtranslate").rglob("*.py"):
        for page in re.findall(r"docs/[\w/.-]+\.md", path.read_text(encoding="utf-8")):
            assert (ROOT / page).is_file(), f"{path.relative_to(ROOT)} cites missing {page}"


def test_the_site_builds_strictly(tmp_path):
    """mkdocs build --strict: a broken link or anchor, or a page missing from the navigation,
    fails (mkdocs.yml's validation settings)."""
    env = {"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "s" / "reference" / "cli" / "index.html").is_file()
