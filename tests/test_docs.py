"""The documentation site builds strictly and agrees with cookiecutter.json."""

from __future__ import annotations

import subprocess

from bakery import CHOICE_OPTIONS, COOKIECUTTER_JSON, ROOT, tool_env


def test_mkdocs_builds_strict(tmp_path) -> None:
    result = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "options" / "index.html").exists()


def test_options_page_lists_every_option_and_choice() -> None:
    page = (ROOT / "docs" / "options.md").read_text()
    for option in (key for key in COOKIECUTTER_JSON if not key.startswith("_")):
        assert f"| `{option}` |" in page, option
    for option, choices in CHOICE_OPTIONS.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{option}` |"))
        assert all(f"`{choice}`" in row for choice in choices), option


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
