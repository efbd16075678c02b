"""The docs page: one self-contained HTML file (data embedded, no network, no library).

The DAG is an SVG laid out in columns by depth (seeds left, endpoints right); clicking a
node shows its SQL, columns, tests with their last status and, for a publication, its
ledger counts and fields. Clicking a field draws its lineage: the field, the columns it is
computed from, model by model, down to the seed and API source columns (listed under
"Source columns"), and lights those nodes up in the DAG.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent  # page.css and page.js, inlined: the file opens anywhere


def render(data: dict[str, Any]) -> str:
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    title = html.escape(f"elt docs: {data.get('project', '')}")
    generated = html.escape(str(data.get("generated_at") or ""))
    css = (HERE / "page.css").read_text(encoding="utf-8")
    js = (HERE / "page.js").read_text(encoding="utf-8")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body><header><h1>{title}</h1><span class="muted">{generated}</span></header>
<main><div>
<section><h2>DAG</h2><div id="dag"></div></section>
<section><h2>Publications</h2><div id="publications"></div></section>
<section id="lineage"><p class="muted">Click a field to see where it comes from.</p></section>
</div><section id="details"><p class="muted">Click a node of the DAG.</p></section></main>
<script id="elt-data" type="application/json">{payload}</script>
<script>{js}</script></body></html>
"""
