"""Project and profile configuration: where things are, and which target we run against.

profiles.yml is dbt-shaped: `{profile: {target: NAME, outputs: {NAME: {...}}}}`. Values may
use `{{ env_var('X') }}` or `{{ env_var('X', 'default') }}`; only the chosen output is rendered,
so a production target's secrets are not needed to build against the sandbox. Rendered
values are strings; only keys that expect a number or boolean convert them
(profile_schema.py), and unknown keys are errors naming the line.

The project root is the folder holding profiles.yml: `--project-dir`, else the current
folder or the nearest parent that has one, so commands work from any subfolder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from elt.core import secrets
from elt.core.errors import ConfigError
from elt.project import profile_schema


def _sandbox_call(tag: str) -> str:
    return rf"sandbox_url\(\s*(?:(?P<q{tag}>['\"])(?P<path{tag}>[^'\"]*)(?P=q{tag})\s*)?\)"


# {{ env_var('X') }}, {{ env_var('X', 'default') }}, {{ env_var('X', sandbox_url('/v1')) }},
# {{ sandbox_url('/v1') }}: the address `elt sandbox serve` listens on (sandbox_url)
_ENV_VAR = re.compile(
    r"\{\{\s*(?:env_var\(\s*(?P<q>['\"])(?P<name>[^'\"]+)(?P=q)\s*"
    r"(?:,\s*(?:(?P<qd>['\"])(?P<default>.*?)(?P=qd)|(?P<sd>" + _sandbox_call("a") + r"))\s*)?"
    r"\)|(?P<sb>" + _sandbox_call("b") + r"))\s*\}\}"
)
SANDBOX_FILE = "sandbox.json"  # target/sandbox.json: written by `elt sandbox serve`
_LEFTOVER = re.compile(r"\{\{.*?\}\}")
# Values read into keys (or from variables) named like these are secrets: redacted from all
# output. URLs, user names and client ids stay readable in messages.
_SECRET_KEY = re.compile(r"secret|password|passwd|token|api_?key|credential|private",
                         re.IGNORECASE)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", where=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", where=str(path)) from exc
    return parse_yaml(text, str(path))


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


def parse_yaml(text: str, where: str, line_offset: int = 0) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1 + line_offset}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", where=f"{where}{line}") from exc


class UnsetVariableError(ConfigError):
    """An `env_var()` without default whose variable is not set."""


class UnsetEndpoint(dict):
    """An endpoint whose settings read an unset environment variable (its secret, most
    often): empty, carrying the error, raised by whatever talks to it (the transport). So
    `elt sql`, `elt ls` or a build that calls no API run without the publish secrets."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__()
        self.error = error


def sandbox_url(root: Path | None, path: str = "") -> str:
    """The address of the `elt sandbox serve` of this project (target/sandbox.json, which
    it writes when it listens and removes when it stops) followed by `path`."""
    file = (root or Path(".")) / "target" / SANDBOX_FILE
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        url, pid = str(doc["url"]), int(doc.get("pid") or 0)
    except FileNotFoundError:
        raise UnsetVariableError("sandbox_url(): no sandbox is serving this project (no "
                                 f"target/{SANDBOX_FILE}); start `elt sandbox serve`, it "
                                 "writes its address there") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnsetVariableError(f"sandbox_url(): cannot read target/{SANDBOX_FILE}: "
                                 f"{exc}") from None
    if pid and not _alive(pid):
        raise UnsetVariableError(f"sandbox_url(): the sandbox that wrote target/"
                                 f"{SANDBOX_FILE} (pid {pid}) is not running; start `elt "
                                 "sandbox serve` again")
    return url.rstrip("/") + path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: it exists
        return True
    return True


def render_env(value: Any, where: str, root: Path | None = None) -> Any:
    """Replace env_var() and sandbox_url() calls in every string of a nested structure."""
    if isinstance(value, dict):
        return {k: render_env(v, f"{where}.{k}", root) for k, v in value.items()}
    if isinstance(value, list):
        return [render_env(v, f"{where}[{i}]", root) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("sb") is not None:
            return sandbox_url(root, match.group("pathb") or "")
        name, default = match.group("name"), match.group("default")
        if name in os.environ:
            resolved = os.environ[name]
            if _SECRET_KEY.search(where.rsplit(".", 1)[-1]) or _SECRET_KEY.search(name):
                secrets.register(resolved)  # never printed, logged or stored
            return resolved
        if default is not None:
            return default
        if match.group("sd") is not None:
            return sandbox_url(root, match.group("patha") or "")
        raise UnsetVariableError(f"environment variable {name} is not set (and has no "
                                 "default)", where=where)

    # the file's own text is checked, not the result: a value from the environment is
    # data, never a template (a password may hold "{{"), and is never quoted in an error
    leftover = _LEFTOVER.search(_ENV_VAR.sub("", value))
    if leftover:
        raise ConfigError(f"unsupported template {leftover.group(0)!r}; only "
                          "{{ env_var('NAME'[, 'default']) }} and {{ sandbox_url('/path') }} "
                          "are supported", where=where)
    rendered = _ENV_VAR.sub(substitute, value)
    if where.endswith("url") and "@" in rendered:  # https://user:password@host/...
        with contextlib.suppress(ValueError):
            secrets.register(urlsplit(rendered).password)
    return rendered  # a string: numbers only where the key wants one (profile_schema.coerce)


def _endpoint(spec: Any, where: str, dotted: str, at: Any, root: Path) -> Any:
    """One endpoint's settings rendered and coerced; an unset variable (or no running
    sandbox for sandbox_url()) defers its error."""
    try:
        rendered = render_env(spec, where, root)
    except UnsetVariableError as exc:
        return UnsetEndpoint(exc)
    return profile_schema.coerce(rendered, "endpoint", dotted, at) if isinstance(
        rendered, dict) else rendered


def find_root(start: Path) -> Path | None:
    """`start` or the nearest parent folder holding profiles.yml."""
    for folder in (start, *start.parents):
        if (folder / "profiles.yml").is_file():
            return folder
    return None


def _key_line(text: str, dotted: str) -> int | None:
    """The line of a dotted key path (profile.outputs.dev.threads) in YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in dotted.split("."):
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                line, node = key.start_mark.line + 1, value
                break
        else:
            break
    return line


# Rows per row group of the tables elt writes (DuckDB's default: 122,880). DuckDB prunes
# scans and spreads them over threads by row group: at 16,384 the FlowKit build at scale 300
# took ~10% less CPU (its batches read a date range of the staging tables) and a 20,000-row
# table of 50 kB bodies is read by two threads (bench/README.md).
ROW_GROUP_SIZE = 16_384


@dataclass
class Target:
    """The chosen output of profiles.yml."""

    name: str
    type: str
    path: Path
    threads: int = 1
    memory_limit: str | None = None
    row_group_size: int = ROW_GROUP_SIZE
    checkpoint_every: float | None = None  # None: db.DeferredCheckpoint.EVERY
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    # type: spark only. `path` is then the DuckDB file that keeps raw seeds, `_elt` state
    # and the ledger; models are parquet tables under `warehouse`.
    master: str | None = None
    remote: str | None = None  # a Spark Connect server (sc://host:port), instead of master
    warehouse: Path | str | None = None  # a local folder, or a URI (kept as text)
    spark_conf: dict[str, str] = field(default_factory=dict)


@dataclass
class Project:
    """Paths of one elt project plus its rendered target."""

    root: Path
    target: Target
    profile_name: str

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def seeds_dir(self) -> Path:
        return self.root / "seeds"

    @property
    def target_dir(self) -> Path:
        return self.root / "target"

    @property
    def db_path(self) -> Path:
        return self.target.path

    def connect(self, **options: Any):  # noqa: ANN201 - a duckdb connection
        """The target's DuckDB file (db.connect), with the target's memory_limit and
        row_group_size unless `options` say otherwise: every writer must use the same row
        group size (db._open_attached says why), so none passes it by hand."""
        from elt.core import db

        settings = {"memory_limit": self.target.memory_limit,
                    "row_group_size": self.target.row_group_size, **options}
        return db.connect(self.target.path, **settings)


def load_project(
    project_dir: str | Path | None = None,
    profiles_dir: str | Path | None = None,
    target_name: str | None = None,
) -> Project:
    """Read profiles.yml and pick the target (option > ELT_TARGET > profile's `target:`)."""
    start = Path(project_dir or ".").resolve()
    if not start.is_dir():
        raise ConfigError("project directory does not exist", where=str(start))
    found = start if project_dir or profiles_dir else find_root(start)
    if found is None or (profiles_dir is None and not (found / "profiles.yml").is_file()):
        looked = "in it" if project_dir else "in it or a parent folder"
        raise ConfigError(f"not an elt project (no profiles.yml {looked}; `elt init DIR` "
                          "makes one)", where=str(start))
    root = found
    profiles_path = Path(profiles_dir or root).resolve() / "profiles.yml"
    raw = load_yaml(profiles_path)
    where = str(profiles_path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("expected a mapping `profile: {target: ..., outputs: {...}}`",
                          where=where)
    text = profiles_path.read_text(encoding="utf-8")

    def at(dotted: str) -> str:
        line = _key_line(text, dotted)
        return f"{where}:{line}" if line else where

    for name, body in raw.items():
        profile_schema.check_keys(body, "profile", str(name), at)
    profile_name, profile = next(iter(raw.items()))
    if not isinstance(profile, dict) or not isinstance(profile.get("outputs"), dict):
        raise ConfigError(f"profile {profile_name!r} needs an `outputs:` mapping", where=where)
    outputs: dict[str, Any] = profile["outputs"]
    chosen = (
        target_name
        or os.environ.get("ELT_TARGET")
        or render_env(profile.get("target"), f"{where}: {profile_name}.target")
    )
    if not chosen:
        raise ConfigError(f"profile {profile_name!r} has no `target:`", where=where)
    if chosen not in outputs:
        names = ", ".join(sorted(outputs))
        raise ConfigError(f"unknown target {chosen!r} (outputs: {names})", where=where)
    given = outputs[chosen] or {}
    if not isinstance(given, dict):
        raise ConfigError(f"output {chosen!r} must be a mapping", where=where)
    dotted = f"{profile_name}.outputs.{chosen}"
    output = profile_schema.coerce(
        render_env({k: v for k, v in given.items() if k != "endpoints"},
                   f"{where}: outputs.{chosen}", root), "output", dotted, at)
    if isinstance(given.get("endpoints"), dict):
        output["endpoints"] = {
            name: _endpoint(spec, f"{where}: outputs.{chosen}.endpoints.{name}",
                            f"{dotted}.endpoints.{name}", at, root)
            for name, spec in given["endpoints"].items()}
    elif "endpoints" in given:
        output["endpoints"] = given["endpoints"]
    db_type = output.get("type", "duckdb")
    if db_type not in ("duckdb", "spark"):
        raise ConfigError(f"output {chosen!r}: type {db_type!r} is not supported "
                          "(duckdb | spark)", where=where)
    path = Path(output.get("path", "target/elt.duckdb"))
    if not path.is_absolute():
        path = root / path
    endpoints = output.get("endpoints") or {}
    if not isinstance(endpoints, dict):
        raise ConfigError(f"output {chosen!r}: `endpoints` must be a mapping", where=where)
    rows = output.get("row_group_size", ROW_GROUP_SIZE)
    if not isinstance(rows, int) or rows < 2048 or rows % 2048:
        raise ConfigError(f"output {chosen!r}: row_group_size must be a multiple of 2048 "
                          f"(got {rows!r})", where=at(f"{profile_name}.outputs.{chosen}."
                                                      "row_group_size"))
    every = output.get("checkpoint_every")  # a number >= 0 (profile_schema.RANGES)
    target = Target(
        name=chosen,
        type=db_type,
        path=path,
        threads=int(output.get("threads", 1)),  # a whole number >= 1 (profile_schema.RANGES)
        memory_limit=output.get("memory_limit"),
        row_group_size=rows,
        checkpoint_every=None if every is None else float(every),
        endpoints=endpoints,
    )
    if db_type == "spark":
        text = str(output.get("warehouse", "target/spark-warehouse"))
        warehouse = Path(text)
        remote = output.get("remote")
        if remote is not None and output.get("master") is not None:
            raise ConfigError(f"output {chosen!r} sets `master` (a Spark elt drives) and "
                              "`remote` (a Spark Connect server): keep one",
                              where=at(f"{dotted}.remote"))
        if remote is not None and "://" in text and not text.startswith("file://"):
            raise ConfigError(
                f"output {chosen!r}: warehouse {text} over Spark Connect: elt replaces a "
                "table's folder through Hadoop's FileSystem, which a Connect client cannot "
                "reach; use a local path or file:// URI the server shares, or `master:`",
                where=at(f"{dotted}.warehouse"))
        target.remote = None if remote is None else str(remote)
        target.master = None if target.remote else str(output.get("master", "local[*]"))
        # a URI (file://, hdfs://, s3a://) stays a URI: Hadoop's FileSystem reads it
        target.warehouse = text if "://" in text else (
            warehouse if warehouse.is_absolute() else root / warehouse)
        target.spark_conf = {str(k): str(v) for k, v in (output.get("conf") or {}).items()}
    return Project(root=root, target=target, profile_name=profile_name)
