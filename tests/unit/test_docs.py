"""The documentation a newcomer finds their way in: README.md short and pointing into docs/,
every link and anchor resolving, and the reference pages complete against the code they
describe (every setting, every Redis key, every `grants` command)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

README_MAX_LINES = 250

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text without fenced code blocks: a link in an example is not a link."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_prose(path.read_text())):
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[str]:
    text = _INLINE_CODE.sub("", _prose(path.read_text()))
    return [match.group(1) for match in _LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
            continue
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination.relative_to(ROOT)}")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.relative_to(ROOT)}")
    assert broken == []


def test_the_readme_is_short_and_says_how_to_install() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "pip install" in text
    for command in ("make demo", "make test", "grants doctor", "grants worker", "grants submit"):
        assert command in text, command


def test_the_readme_links_every_reference_page() -> None:
    linked = {Path(target.partition("#")[0]) for target in links(README)}
    missing = [page.name for page in DOCS.glob("*.md") if Path("docs", page.name) not in linked]
    assert missing == []


def test_every_setting_is_documented_by_its_environment_variable() -> None:
    text = (DOCS / "settings.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert missing == []


def _key_members() -> set[str]:
    return {
        name
        for name, member in vars(Keys).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


def test_every_redis_key_is_in_the_key_table() -> None:
    documented = set(re.findall(r"`Keys\.(\w+)", (DOCS / "redis-keys.md").read_text()))
    members = _key_members()
    assert sorted(members - documented) == [], "Keys members missing from docs/redis-keys.md"
    assert sorted(documented - members) == [], "docs/redis-keys.md names Keys members that are gone"


def _command_paths(group: click.Group, prefix: str) -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        paths.append(path)
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, path))
    return paths


def test_every_grants_command_is_in_the_command_reference() -> None:
    text = (DOCS / "cli.md").read_text()
    headings = {match.group(2) for match in _HEADING.finditer(_prose(text))}
    paths = _command_paths(cli, "grants")
    assert len(paths) > 10
    missing = []
    for path in paths:
        top = " ".join(path.split()[:2])
        if top not in headings:
            missing.append(f"{path}: no heading '{top}'")
        elif path not in text:
            missing.append(path)
    assert missing == []


def test_every_option_of_every_command_is_in_the_command_reference() -> None:
    text = (DOCS / "cli.md").read_text()
    missing = []

    def walk(group: click.Group, path: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{path} {name}")
                continue
            for param in command.params:
                for option in (*param.opts, *param.secondary_opts):
                    if option.startswith("--") and option not in text:
                        missing.append(f"{path} {name} {option}")

    walk(cli, "grants")
    assert missing == []
