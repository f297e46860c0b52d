"""`make pins`: move every pinned action to its newest release, in the one pin table.

The table is the comment block of pins in templates/github.jinja (one action per line). Every
`uses:` line is written out in full where it is used (the macros there, the generated workflows
and local action, the template's own .github/workflows/ci.yml) so that GitHub, Dependabot and
pin audits read real pins; this script rewrites the table and all of those lines together.
Each action's newest release tag (vX.Y.Z, or vX.Y where an action tags no patch releases; no
floating vX, no pre-releases) and its
commit come from `git ls-remote --tags https://github.com/<owner>/<repo>`: this needs network.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "templates" / "github.jinja"
OWN_CI = ROOT / ".github" / "workflows" / "ci.yml"


def pinned_files() -> list[Path]:
    """Every file with `uses:` lines the table governs (the table's own file included)."""
    generated = sorted((ROOT / "{{cookiecutter.project}}" / ".github").rglob("*.yml"))
    return [TABLE, OWN_CI, *generated]


ROW = re.compile(
    r'^(?P<indent>\s*)"(?P<action>[\w.-]+/[\w.-]+)": "(?P<sha>[0-9a-f]{40}) # (?P<tag>v[\d.]+)",$',
    re.MULTILINE,
)
# A full release: no floating v4, no -beta (vX.Y where an action tags no patch releases).
RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")
# owner/repo, then the path of an action inside the repository (actions/cache/restore), if any.
USES = re.compile(r"uses: (?P<action>[\w.-]+/[\w.-]+)(?P<path>/[\w./-]+)?@[0-9a-f]{40} # v[\d.]+")


def read_table(text: str) -> dict[str, tuple[str, str]]:
    """action -> (commit, tag), in the table's order."""
    return {m["action"]: (m["sha"], m["tag"]) for m in ROW.finditer(text)}


def newest_release(ls_remote: str) -> tuple[str, str]:
    """(commit, tag) of the highest vX.Y.Z in `git ls-remote --tags` output; an annotated tag's
    peeled line (`refs/tags/v1.2.3^{}`) gives the commit the tag points at."""
    commits: dict[str, str] = {}
    for line in ls_remote.splitlines():
        sha, _, ref = line.partition("\t")
        tag = ref.removeprefix("refs/tags/")
        peeled = tag.endswith("^{}")
        tag = tag.removesuffix("^{}")
        if RELEASE.match(tag) and (peeled or tag not in commits):
            commits[tag] = sha
    if not commits:
        raise ValueError("no vX.Y.Z release tag in the ls-remote output")

    def version(tag: str) -> tuple[int, ...]:
        return tuple(int(part or 0) for part in RELEASE.match(tag).groups())

    newest = max(commits, key=version)
    return commits[newest], newest


def rewrite_table(text: str, pins: dict[str, tuple[str, str]]) -> str:
    def row(match: re.Match[str]) -> str:
        sha, tag = pins.get(match["action"], (match["sha"], match["tag"]))
        return f'{match["indent"]}"{match["action"]}": "{sha} # {tag}",'

    return ROW.sub(row, text)


def rewrite_uses(text: str, pins: dict[str, tuple[str, str]]) -> str:
    def uses(match: re.Match[str]) -> str:
        if match["action"] not in pins:
            raise ValueError(f"{match['action']} is not in the pin table ({TABLE.name})")
        sha, tag = pins[match["action"]]
        return f"uses: {match['action']}{match['path'] or ''}@{sha} # {tag}"

    return USES.sub(uses, text)


def ls_remote(action: str) -> str:
    url = f"https://github.com/{action}"
    done = subprocess.run(
        ["git", "ls-remote", "--tags", url], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise SystemExit(f"git ls-remote {url} failed (network?): {done.stderr.strip()}")
    return done.stdout


def main() -> None:
    text = TABLE.read_text()
    pins = read_table(text)
    for action, (sha, tag) in pins.items():
        pins[action] = newest_release(ls_remote(action))
        if pins[action] != (sha, tag):
            print(f"{action}: {tag} -> {pins[action][1]} ({pins[action][0]})")
    TABLE.write_text(rewrite_table(text, pins))
    for path in pinned_files():
        path.write_text(rewrite_uses(path.read_text(), pins))


if __name__ == "__main__":
    sys.exit(main())
