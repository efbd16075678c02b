"""elt docs: the static site, read back as data, served over HTTP, and used in a real headless
Chromium driven over the DevTools protocol (tests/cdp.py: real mouse clicks)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cdp import CHROMIUM, WAIT, Browser
from click.testing import CliRunner
from helpers import Watched, elt, elt_argv
from test_lineage import _project, flowkit  # noqa: F401 - a fixture

from elt.cli import cli

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian's `chromium`; .ci/run installs it)")
# set to a path to keep the lineage screenshot there too (docs/lineage.png: the README's)
SCREENSHOT = os.environ.get("ELT_DOCS_SCREENSHOT")


def _site(root: Path, *build: str) -> Path:
    for command in (("build", *build), ("docs",)):
        run = elt(root, *command)
        assert run.code == 0, run.output
    return root / "target" / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    _project(root)
    return _site(root)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


def test_site_carries_every_node_publication_and_field(site: Path) -> None:
    data = json.loads((site / "data.json").read_text())
    names = {node["name"] for node in data["nodes"]}
    assert {"people_api", "stg_people", "raw.people", "raw.cities"} <= names
    pubs = {pub["name"]: pub for pub in data["publications"]}
    assert set(pubs) == {"people", "people_text", "people_rows", "scores"}
    fields = {f["field"]: f for f in pubs["people"]["fields"]}
    assert {"name", "version", "contact.email", "contact.city"} <= set(fields)
    assert [(s["node"], s["column"]) for s in fields["contact.email"]["sources"]] == [
        ("raw.people", "mail")]
    assert (site / "index.html").read_text().count('id="elt-data"') == 1  # no server needed


def _dag_nodes(browser: Browser) -> list[str]:
    return browser.wait_for("[...document.querySelectorAll('#dag-svg .node')]"
                            ".map(g => g.dataset.node)")


def _sources(browser: Browser) -> list[str]:
    return browser.wait_for("[...document.querySelectorAll('#lineage-sources li.source')]"
                            ".map(li => li.firstChild.textContent.trim())")


@needs_chromium
def test_clicking_a_field_in_a_real_browser_shows_its_source_columns(
        site: Path, browser: Browser, tmp_path: Path) -> None:
    data = json.loads((site / "data.json").read_text())
    browser.open((site / "index.html").as_uri())
    dag = _dag_nodes(browser)  # drawn by the page's script
    assert {p["node"] for p in data["publications"]} <= set(dag)  # every publication
    assert {"people_api", "stg_people", "raw.people", "endpoint:api"} <= set(dag)
    assert browser.js("document.getElementById('lineage-sources')") is None  # nothing yet
    browser.click('#publications .field[data-pub="people"][data-field="contact.email"]')
    assert _sources(browser) == ["raw.people.mail"]
    assert browser.js("document.querySelector('.field.on').dataset.field") == "contact.email"
    lit = browser.js("[...document.querySelectorAll('#dag-svg .node.lit')]"
                     ".map(g => g.dataset.node).sort()")
    assert lit == ["people_api", "published.people", "raw.people", "stg_people"]
    shot = browser.screenshot(tmp_path / "lineage.png")  # the test's artifact (tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    if SCREENSHOT:
        shutil.copy(shot, SCREENSHOT)


@needs_chromium
def test_a_link_to_a_field_opens_its_lineage(site: Path, browser: Browser) -> None:
    browser.open((site / "index.html").as_uri() + "#field=people_text/tags[]")
    assert _sources(browser) == ["raw.people.city_code"]


@needs_chromium
def test_clicking_a_dag_node_shows_its_sql_columns_and_tests(site: Path,
                                                            browser: Browser) -> None:
    browser.open((site / "index.html").as_uri())
    browser.click('#dag-svg .node[data-node="stg_people"] rect')
    title = browser.wait_for("document.querySelector('#details h2')?.textContent")
    assert title.startswith("stg_people")
    details = browser.js("document.getElementById('details').innerText")
    assert "lower(trim(mail)) AS email" in details and "given_name" in details


@needs_chromium
def test_the_page_of_an_elt_init_project(tmp_path: Path, browser: Browser) -> None:
    root = tmp_path / "fresh"
    run = CliRunner().invoke(cli, ["init", str(root)])
    assert run.exit_code == 0, run.output
    site = _site(root)
    browser.open((site / "index.html").as_uri())
    assert set(_dag_nodes(browser)) == {"raw.people", "people_clean",
                                        "not_null_people_clean_id", "unique_people_clean_id",
                                        "not_null_people_clean_name"}
    assert browser.js("document.getElementById('publications').innerText") == \
        "no publications"
    browser.click('#dag-svg .node[data-node="people_clean"] rect')
    browser.wait_for("document.querySelector('#details h2')?.textContent"
                     ".startsWith('people_clean')")
    details = browser.js("document.getElementById('details').innerText")
    assert "CAST(signed_up AS DATE) AS signed_up" in details
    assert re.search(r"unique_people_clean_id\s+success", details), details


@pytest.fixture(scope="module")
def flowkit_site(flowkit: Path) -> Path:  # noqa: F811 - test_lineage's fixture
    run = elt(flowkit, "docs")
    assert run.code == 0, run.output
    return flowkit / "target" / "docs"


@needs_chromium
def test_the_page_of_the_flowkit_and_uois_project(flowkit_site: Path, browser: Browser,
                                                  tmp_path: Path) -> None:
    data = json.loads((flowkit_site / "data.json").read_text())
    pubs = {p["name"] for p in data["publications"]}
    assert {"flowkit_setup", "flowkit_data", "uois_users", "uois_memberships"} <= pubs
    browser.open((flowkit_site / "index.html").as_uri())
    dag = _dag_nodes(browser)
    assert {f"published.{p}" for p in pubs} <= set(dag)
    assert {"endpoint:flowkit", "endpoint:uois", "flowkit_values"} <= set(dag)
    browser.click('#publications .field[data-pub="flowkit_data"][data-field="data_input[].data"]')
    sources = _sources(browser)  # through flowkit_values' UNPIVOT to the export columns
    assert {"raw.flowkit_residents.residents", "raw.flowkit_movements.travellers"} <= \
        set(sources)
    assert not [s for s in sources if s.endswith(".*")]
    shot = browser.screenshot(tmp_path / "flowkit-lineage.png")
    assert shot.stat().st_size > 10_000


def test_docs_serve_answers_index_html_over_http(site: Path) -> None:
    root = site.parent.parent
    served = Watched(elt_argv(root, "docs", "--serve", "--port", "0"))
    try:
        deadline = time.monotonic() + WAIT
        while not any("serving " in line for line in served.lines):
            assert served.proc.poll() is None, served.lines
            assert time.monotonic() < deadline, served.lines
            time.sleep(0.05)  # polling the process's output, not synchronisation
        line = next(line for line in served.lines if "serving " in line)
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)  # the port it was given
        page = httpx.get(f"{url}index.html", timeout=WAIT)
        assert page.status_code == 200 and 'id="elt-data"' in page.text
        assert page.text == (site / "index.html").read_text()
        assert httpx.get(f"{url}data.json", timeout=WAIT).json()["project"] == root.name
        assert httpx.get(f"{url}../profiles.yml", timeout=WAIT).status_code == 404
    finally:
        served.proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, elt exits
        code = served.proc.wait(timeout=WAIT)
    assert code == 0, served.lines
