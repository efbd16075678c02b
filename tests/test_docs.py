"""elt docs: the static site, read back as data and rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import elt
from test_lineage import _project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    _project(root)
    for command in ("build", "docs"):
        run = elt(root, command)
        assert run.code == 0, run.output
    return root / "target" / "docs"


def test_site_carries_every_node_publication_and_field(site: Path) -> None:
    data = json.loads((site / "data.json").read_text())
    names = {node["name"] for node in data["nodes"]}
    assert {"people_api", "stg_people", "raw.people", "raw.cities"} <= names
    pubs = {pub["name"]: pub for pub in data["publications"]}
    assert set(pubs) == {"people", "people_text", "people_rows"}
    fields = {f["field"]: f for f in pubs["people"]["fields"]}
    assert {"name", "version", "contact.email", "contact.city"} <= set(fields)
    assert [(s["node"], s["column"]) for s in fields["contact.email"]["sources"]] == [
        ("raw.people", "mail")]
    assert (site / "index.html").read_text().count('id="elt-data"') == 1  # no server needed


def _render(page: Path, profile: Path, *args: str) -> str:
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args,
                          page.as_uri().replace("%23", "#")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian's `chromium`; "
                    ".ci/run installs it)")
def test_page_in_a_real_browser_shows_the_dag_and_a_fields_sources(
        site: Path, tmp_path: Path) -> None:
    index = site / "index.html"
    dom = _render(index, tmp_path / "p1", "--dump-dom")
    dag = dom.split('id="dag-svg"', 1)[1].split("</svg>", 1)[0]  # drawn by the page's script
    for name in ("published.people", "published.people_text", "people_api", "stg_people",
                 "raw.people", "endpoint:api"):
        assert f'data-node="{name}"' in dag, name
    # a link to a field clicks its chip: the lineage panel lists the seed column it comes from
    linked = Path(f"{index}#field=people/contact.email")
    dom = _render(linked, tmp_path / "p2", "--dump-dom")
    sources = dom.split('id="lineage-sources"', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r'<li class="source">([^ <]+)', sources) == ["raw.people.mail"]
    assert 'class="field on"' in dom
    shot = tmp_path / "lineage.png"  # kept as the test's artifact (pytest's tmp_path)
    _render(linked, tmp_path / "p3", f"--screenshot={shot}", "--window-size=1400,900")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
