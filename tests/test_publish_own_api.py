"""README's "Publishing to your own API" example, as a new user copies it, against the
sandbox's crud receiver over loopback: one request per row, a re-run sends nothing, one
changed row one PUT, one removed row (mirror) one DELETE; then forget and full refresh."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, elt, write_files
from own_api import crud_items, crud_stats, new_statuses

from elt.sandbox.server import Sandbox

SECTION = "## Publishing to your own API"


def readme_example() -> dict[str, str]:
    """The files of the README section's code blocks: each block's first line names it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    files = {}
    for block in re.findall(r"```\w*\n(.*?)```", section, re.DOTALL):
        first, _, rest = block.partition("\n")
        named = re.match(r"^(?:#|--) ((?:models|seeds)/\S+|profiles\.yml)$", first.strip())
        if named:
            content = rest if named.group(1).endswith(".csv") else block
            files[named.group(1)] = content
    return files


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def test_readme_put_things_example_end_to_end(tmp_path: Path, sb: Sandbox) -> None:
    files = readme_example()
    assert set(files) == {"profiles.yml", "seeds/things.csv", "models/things_out.sql",
                          "models/things.yml"}
    root = tmp_path / "proj"
    write_files(root, files)
    env = {"THINGS_URL": f"{sb.url}/crud"}  # the README's default is `elt sandbox serve`'s

    def run(*args: str) -> str:
        result = elt(root, *args, env=env)
        assert result.code == 0, result.output
        return result.output

    run("build")
    before = crud_stats(sb)
    out = run("publish")
    assert "3/3 acknowledged" in out, out
    assert new_statuses(before, crud_stats(sb)) == {"201": 3}  # one PUT per row
    assert crud_items(sb, "things") == {
        "1": {"id": 1, "name": "bolt", "price": 0.1, "added": "2024-01-05"},
        "2": {"id": 2, "name": "nut", "price": 0.05, "added": "2024-01-06"},
        "3": {"id": 3, "name": "washer", "price": 0.02, "added": "2024-01-07"}}

    before = crud_stats(sb)
    run("publish")
    assert crud_stats(sb)["requests"] == before["requests"]  # nothing sent

    csv = root / "seeds" / "things.csv"
    csv.write_text(csv.read_text().replace("2,nut,0.05", "2,nut,0.07"))
    run("build")
    before = crud_stats(sb)
    run("publish")
    after = crud_stats(sb)
    assert new_statuses(before, after) == {"200": 1}  # one PUT replaced it
    assert after["crud"]["2"]["replaced"] == 1
    assert crud_items(sb, "things")["2"]["price"] == 0.07

    csv.write_text("\n".join(line for line in csv.read_text().splitlines()
                             if not line.startswith("3,")) + "\n")
    run("build")
    before = crud_stats(sb)
    run("publish")
    after = crud_stats(sb)
    assert new_statuses(before, after) == {"204": 1}  # one DELETE
    assert after["crud"]["3"]["deleted"] == 1
    assert set(crud_items(sb, "things")) == {"1", "2"}

    # forget one row: the next publish sends it again; same row, same Idempotency-Key,
    # so the receiver replays its first answer (201) instead of writing twice
    out = run("ledger", "forget", "-s", "things", "--where", "id = '1'")
    assert "forgot 1 row" in out, out
    before = crud_stats(sb)
    run("publish")
    after = crud_stats(sb)
    assert new_statuses(before, after) == {"201": 1}
    assert after["crud"]["1"]["replayed"] == 1

    # the API lost its data: a full refresh sends every row again
    assert sb.store is not None
    sb.store.query("DELETE FROM crud_items")
    sb.store.query("DELETE FROM crud_idempotency")
    before = crud_stats(sb)
    out = run("publish", "--full-refresh", "-s", "things", "--yes")
    assert new_statuses(before, crud_stats(sb)) == {"201": 2}, out
    assert set(crud_items(sb, "things")) == {"1", "2"}
    before = crud_stats(sb)
    run("publish")
    assert crud_stats(sb)["requests"] == before["requests"]


def test_full_refresh_without_a_terminal_needs_yes(tmp_path: Path, sb: Sandbox) -> None:
    root = tmp_path / "proj"
    write_files(root, readme_example())
    env = {"THINGS_URL": f"{sb.url}/crud"}
    assert elt(root, "build", env=env).code == 0
    assert elt(root, "publish", env=env).code == 0
    before = crud_stats(sb)
    refused = elt(root, "publish", "--full-refresh", env=env)
    assert refused.code == 1
    assert "--yes" in refused.output, refused.output
    declined = elt(root, "publish", "--full-refresh", "--yes", "--dry-run", env=env)
    assert declined.code == 0 and "3 changed" in declined.output, declined.output
    assert crud_stats(sb)["requests"] == before["requests"]
