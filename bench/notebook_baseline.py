"""The notebook method that elt replaces, re-implemented faithfully as the benchmark baseline.

It is deliberately NOT optimised: this is what the analysts ran by hand, and the figures
elt is judged against. Per CSV export: pandas read_csv / dropna / sort_values / rename /
to_csv (the cleaned CSV is written back out); then a csv.DictReader loop with
dateutil.parser builds the datasets in Python dicts keyed by (indicator, date); then per
dataset json.dumps + gzip.compress of the POST /data body, sent with httpx.AsyncClient and
asyncio.gather in chunks of 50 requests, counting 201/204 as success.

Each stage runs as its own process (`clean`, `build`, `send`) so run.py can measure peak
RSS per stage. The timed region of each stage excludes interpreter start-up and the
hand-over between stages (a pickle of the datasets, which the notebook kept in memory);
both are reported in the stage's result file.

    python bench/notebook_baseline.py clean --seeds SEEDS --work DIR --result r.json
    python bench/notebook_baseline.py build --work DIR --result r.json
    python bench/notebook_baseline.py send --work DIR --endpoint '{"url":..,"auth":{..}}'
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import math
import pickle
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dateutil.parser
import httpx
import pandas as pd

CHUNK = 50  # requests per asyncio.gather, as in the notebook
REVISION = "bench"
SRID = 3  # admin3, communal sections
MISSING = {"", "nan", "inf", "-inf", "+inf", "infinity", "-infinity"}


@dataclass(frozen=True)
class Export:
    """One of the four FlowKit CSV export formats (see the FlowKit API contract)."""

    category: str
    data_type: str  # single_location | flow
    trid: int  # 2 = month, 4 = day
    header: tuple[str, ...]

    @property
    def units(self) -> tuple[str, ...]:
        return self.header[1:3] if self.data_type == "flow" else self.header[1:2]

    @property
    def indicators(self) -> tuple[str, ...]:
        return self.header[1 + len(self.units):]


EXPORTS = {
    e.category: e
    for e in (
        Export("residents", "single_location", 2, (
            "month", "pcod", "residents", "residents_perKm2", "arrived", "departed",
            "delta_arrived", "residents_diffwithref", "abnormality",
            "residents_pctchangewithref")),
        Export("relocations", "flow", 2, (
            "date", "pcod_from", "pcod_to", "relocations", "relocations_diffwithref",
            "abnormality", "relocations_pctchangewithref")),
        Export("presence", "single_location", 4, (
            "date", "pcod", "presence", "presence_perKm2", "trips_in", "trips_out",
            "abnormality", "presence_diffwithref", "presence_pctchangewithref")),
        Export("movements", "flow", 4, (
            "date", "pcod_from", "pcod_to", "travellers", "abnormality",
            "travellers_diffwithref", "travellers_pctchangewithref")),
    )
}


def detect(path: Path) -> Export | None:
    """Which export a CSV is, by its header (file names vary between exports)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        header = tuple(next(csv.reader(f), []))
    for export in EXPORTS.values():
        if header == export.header:
            return export
    return None


def find_exports(seeds: Path) -> list[tuple[Path, Export]]:
    """Every FlowKit export below `seeds`, in a stable order."""
    found = []
    for path in sorted([*seeds.rglob("*.csv"), *seeds.rglob("*.csv.gz")]):
        export = detect(path)
        if export is not None:
            found.append((path, export))
    return found


# -- stage 1: clean, with pandas ---------------------------------------------------------------
def clean(seeds: Path, out: Path) -> dict[str, Any]:
    """read_csv / dropna / sort_values / rename / to_csv per export, as the notebook did."""
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"files": 0, "rows_in": 0, "rows_out": 0, "bytes_in": 0,
                             "rows_by_category": {}}
    for n, (path, export) in enumerate(find_exports(seeds)):
        df = pd.read_csv(path)
        stats["rows_in"] += len(df)
        stats["bytes_in"] += path.stat().st_size
        keys = list(export.header[: 1 + len(export.units)])
        df = df.dropna(subset=keys)
        df = df.sort_values(keys)
        df = df.rename(columns={export.header[0]: "date"})
        df.to_csv(out / f"{export.category}__{n:03d}.csv", index=False)
        stats["files"] += 1
        stats["rows_out"] += len(df)
        by_cat = stats["rows_by_category"]
        by_cat[export.category] = by_cat.get(export.category, 0) + len(df)
    return stats


# -- stage 2: build datasets with csv.DictReader and dateutil ----------------------------------
def parse_value(text: str) -> float | None:
    """A cell as a number, or None when it is not a value (empty, NaN, infinities)."""
    if text.strip().lower() in MISSING:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def build_datasets(clean_dir: Path) -> list[dict[str, Any]]:
    """One dataset per (category, indicator, date), built in dicts keyed by (indicator, date)."""
    datasets: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(clean_dir.glob("*.csv")):
        export = EXPORTS[path.name.split("__")[0]]
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                dt = dateutil.parser.parse(row["date"]).strftime("%Y-%m-%d %H:%M:%S")
                units = [row[u] for u in export.units]
                for column in export.indicators:
                    value = parse_value(row[column])
                    if value is None:
                        continue
                    indicator = f"{export.category}.{column}"
                    dataset = datasets.get((indicator, dt))
                    if dataset is None:
                        dataset = datasets[(indicator, dt)] = {
                            "metadata": {
                                "revision": REVISION, "category_id": export.category,
                                "indicator_id": indicator, "srid": SRID,
                                "trid": export.trid, "dt": dt,
                            },
                            "data_type": export.data_type,
                            "data_input": [],
                        }
                    dataset["data_input"].append({"spatial_unit_ids": units, "data": value})
    return list(datasets.values())


# -- stage 3: encode and send ------------------------------------------------------------------
def encode_body(dataset: dict[str, Any]) -> bytes:
    """The POST /data body as the notebook made it: json.dumps, then gzip.compress."""
    return gzip.compress(json.dumps(dataset).encode("utf-8"))


async def fetch_token(client: httpx.AsyncClient, auth: dict[str, Any]) -> str:
    """OAuth2 client-credentials token from the receiver's token endpoint."""
    response = await client.post(auth["token_url"], json={
        "client_id": auth["client_id"], "client_secret": auth["client_secret"],
        "audience": auth.get("audience", ""), "grant_type": "client_credentials",
    })
    response.raise_for_status()
    return str(response.json()["access_token"])


async def send(datasets: list[dict[str, Any]], endpoint: dict[str, Any]) -> dict[str, Any]:
    """POST every dataset, 50 at a time with asyncio.gather; 201/204 count as success."""
    stats: dict[str, Any] = {"sent": 0, "ok": 0, "failed": 0, "statuses": {},
                             "body_bytes": 0, "json_bytes": 0}
    url = endpoint["url"].rstrip("/") + "/data"
    async with httpx.AsyncClient(timeout=30) as client:
        token = await fetch_token(client, endpoint["auth"])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Content-Encoding": "gzip"}
        for start in range(0, len(datasets), CHUNK):
            bodies = []
            for dataset in datasets[start:start + CHUNK]:
                text = json.dumps(dataset).encode("utf-8")
                stats["json_bytes"] += len(text)
                bodies.append(gzip.compress(text))
            stats["body_bytes"] += sum(len(b) for b in bodies)
            answers = await asyncio.gather(
                *(client.post(url, content=body, headers=headers) for body in bodies),
                return_exceptions=True,
            )
            for answer in answers:
                stats["sent"] += 1
                code = str(answer.status_code) if isinstance(answer, httpx.Response) else (
                    type(answer).__name__)
                stats["statuses"][code] = stats["statuses"].get(code, 0) + 1
                if code in ("201", "204"):
                    stats["ok"] += 1
                else:
                    stats["failed"] += 1
    return stats


# -- stage processes ---------------------------------------------------------------------------
class Timer:
    """Wall and CPU seconds (all threads of this process) of the stage proper."""

    def __enter__(self) -> Timer:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        self.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(path: Path | None, stage: str, timer: Timer, **extra: Any) -> None:
    """One JSON object per stage; run.py reads it, a human can too."""
    result = {"stage": stage, "wall_s": timer.wall, "cpu_s": timer.cpu,
              "peak_rss_mb": timer.peak_rss_mb, **extra}
    text = json.dumps(result, indent=1)
    if path is None:
        print(text)
    else:
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["clean", "build", "send", "all"])
    ap.add_argument("--seeds", type=Path, help="folder with the raw CSV exports (clean)")
    ap.add_argument("--work", type=Path, required=True, help="baseline scratch folder")
    ap.add_argument("--endpoint", help='JSON {"url": ".../v1", "auth": {...oauth2...}} (send)')
    ap.add_argument("--result", type=Path, default=None, help="write the stage's figures here")
    args = ap.parse_args(argv)
    clean_dir, pickled = args.work / "clean", args.work / "datasets.pickle"
    if args.stage in ("clean", "all"):
        with Timer() as t:
            stats = clean(args.seeds, clean_dir)
        write_result(args.result, "clean", t, **stats)
    if args.stage in ("build", "all"):
        with Timer() as t:
            datasets = build_datasets(clean_dir)
        values = sum(len(d["data_input"]) for d in datasets)
        handover = time.perf_counter()
        with open(pickled, "wb") as f:
            pickle.dump(datasets, f, protocol=pickle.HIGHEST_PROTOCOL)
        write_result(args.result, "build", t, datasets=len(datasets), values=values,
                     handover_s=time.perf_counter() - handover)
    if args.stage in ("send", "all"):
        handover = time.perf_counter()
        with open(pickled, "rb") as f:
            datasets = pickle.load(f)
        handover_s = time.perf_counter() - handover
        with Timer() as t:
            stats = asyncio.run(send(datasets, json.loads(args.endpoint)))
        write_result(args.result, "send", t, datasets=len(datasets), handover_s=handover_s,
                     **stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
