"""`elt init DIR`: the smallest project that builds with `elt build` out of the box.

One profile with a local DuckDB target (no endpoints yet), one seed, one model with data
tests, and a .gitignore for target/. Never overwrites: an existing profiles.yml, seed or
model in DIR is an error naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

from elt.core.errors import ConfigError

_FILES = {
    "profiles.yml": """\
# Targets: where the staging database lives and which endpoints `elt publish` sends to.
# Values may use {{{{ env_var('NAME') }}}} or {{{{ env_var('NAME', 'default') }}}}.
{name}:
  target: "{{{{ env_var('ELT_TARGET', 'dev') }}}}"
  outputs:
    dev:
      type: duckdb
      path: target/elt.duckdb
      threads: 2
      endpoints: {{}}
""",
    "seeds/people.csv": """\
id,name,email,signed_up
1,Ann,ann@example.com,2024-01-05
2,Bob,bob@example.com,2024-02-11
3,Cid,,2024-03-02
""",
    "models/people_clean.sql": """\
/* elt
materialized: table
columns:
  id: {{tests: [not_null, unique]}}
  name: {{tests: [not_null]}}
*/
SELECT id, trim(name) AS name, lower(email) AS email, CAST(signed_up AS DATE) AS signed_up
FROM raw.people
""",
    ".gitignore": "target/\n",
}


def init_project(folder: Path) -> list[Path]:
    """Write the starter files into `folder` (created if needed); returns what was written."""
    existing = [folder / rel for rel in _FILES if rel != ".gitignore" and (folder / rel).exists()]
    if existing:
        raise ConfigError("already exists; elt init never overwrites", where=str(existing[0]))
    name = re.sub(r"[^A-Za-z0-9_]", "_", folder.resolve().name) or "elt"
    written = []
    for rel, text in _FILES.items():
        path = folder / rel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=name), encoding="utf-8")
        written.append(path)
    return written
