"""The `elt` command line: a thin Click layer; each command calls one Context method."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from elt.core import diskfull, log, secrets
from elt.core.console import Console
from elt.core.errors import EltError

if TYPE_CHECKING:
    from elt.context import Context

_FORMATS = click.Choice(["table", "csv", "json"])


def _project_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command shares, defined once."""
    f = click.option("--project-dir", type=click.Path(file_okay=False), default=None,
                     envvar="ELT_PROJECT_DIR",
                     help="Project root (default: the current folder or the nearest parent "
                     "holding profiles.yml; env: ELT_PROJECT_DIR).")(f)
    f = click.option("--profiles-dir", type=click.Path(file_okay=False), default=None,
                     envvar="ELT_PROFILES_DIR",
                     help="Folder holding profiles.yml (default: the project root; env: "
                     "ELT_PROFILES_DIR).")(f)
    f = click.option("--target", "-t", default=None, envvar="ELT_TARGET",
                     help="Output of profiles.yml to use (env: ELT_TARGET).")(f)
    f = click.option("--debug", is_flag=True, envvar="ELT_DEBUG",
                     help="Show tracebacks (env: ELT_DEBUG=1).")(f)
    f = click.option("--quiet", "-q", is_flag=True, envvar="ELT_QUIET",
                     help="Only errors and results (env: ELT_QUIET=1).")(f)
    f = click.option("--log-format", type=click.Choice(log.FORMATS), default="text",
                     envvar="ELT_LOG_FORMAT", show_default=True,
                     help="Format of target/logs/elt.log (env: ELT_LOG_FORMAT).")(f)
    f = click.option("--log-level", type=click.Choice(log.LEVELS), default="info",
                     envvar="ELT_LOG_LEVEL", show_default=True,
                     help="Lowest level written to target/logs/elt.log; debug adds every "
                     "SQL statement (env: ELT_LOG_LEVEL).")(f)
    return f


def _selection(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--select", "-s", multiple=True,
                     help="dbt's syntax: name, glob, name+, +name, 2+name+1, @name, tag:x, "
                     "path:models/x, file:x.sql, kind:seed|model|api|test|published, "
                     "resource_type:x, config.materialized:view, state:modified; a,b "
                     "intersects, spaces or repeats unite (README: Selection).")(f)
    f = click.option("--exclude", multiple=True, help="Same syntax as --select.")(f)
    return f


def _node_selection(f: Callable[..., Any]) -> Callable[..., Any]:
    """--select/--exclude over nodes, with --state for `state:` selectors."""
    f = click.option("--state", type=click.Path(path_type=Path), default=None,
                     envvar="ELT_STATE",
                     help="Folder (or file) with the manifest.json `state:` selectors compare "
                     "with (default: target/state/, the last good build of each node; env: "
                     "ELT_STATE).")(f)
    return _selection(f)


def _quiet_broken_pipe() -> None:
    """The reader went away (`elt status | head -2`): stop writing, exit 0 like other CLIs.
    stdout is pointed at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests)
        pass
    finally:
        os.close(devnull)
    sys.exit(0)


def _start_log(opts: dict[str, Any], command: str) -> None:
    """target/logs/elt.log of the project this command runs in (when there is one)."""
    from elt.project.config import find_root

    fmt, level = opts.pop("log_format", "text"), opts.pop("log_level", "info")
    here = Path(opts.get("project_dir") or ".").resolve()
    root = here if opts.get("project_dir") else find_root(here)
    if root is None or not root.is_dir():
        return
    try:
        log.configure(root / "target" / "logs", fmt=fmt, level=level)
    except OSError:
        return  # a read-only checkout still runs; it just keeps no log
    log.root.info("command: %s", command)


def _target_dir(ctx: Context) -> Path:
    try:
        return ctx.project.target_dir
    except Exception:  # noqa: BLE001 - no project: the current folder is all we know
        return Path.cwd()


def _run(opts: dict[str, Any], action: Callable[[Context], Any]) -> None:
    """Build the Context, run one method, turn errors into one line and an exit code."""
    from elt.context import Context  # here, not at the top: `elt --help` needs none of it

    debug = opts.pop("debug", False)
    console = Console(quiet=opts.pop("quiet", False), debug=debug)
    _start_log(opts, click.get_current_context().command_path)
    ctx = Context(opts.pop("project_dir", None), opts.pop("profiles_dir", None),
                  opts.pop("target", None), console, state=opts.pop("state", None))
    try:
        outcome = action(ctx)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except EltError as exc:
        console.error(console.failure(exc))  # --debug: the traceback first, redacted too
        sys.exit(1)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)
    except Exception as exc:  # an elt bug, not a user error: still one line unless --debug
        full = diskfull.describe(exc, _target_dir(ctx))
        if full:
            console.failure(exc)
            console.error(full)
            sys.exit(1)
        console.failure(exc)
        console.error(f"internal error: {type(exc).__name__}: {secrets.redact(str(exc))}"
                      + ("" if debug else " (run with --debug for the traceback)"))
        log.root.exception("internal error")
        sys.exit(2)
    failed = getattr(outcome, "failed", outcome is False)
    log.root.info("finished: %s", "failed" if failed else "ok")
    if failed:
        sys.exit(1)


def _global_takes_value() -> dict[str, bool]:
    """Every spelling of the shared options (from `_project_options`, the one definition),
    and whether it takes a value."""
    params = click.command()(_project_options(lambda **_: None)).params
    return {name: not getattr(p, "is_flag", False)
            for p in params for name in [*p.opts, *p.secondary_opts]}


def move_global_options(args: list[str]) -> list[str]:
    """`elt --log-format json status` -> `elt status --log-format json`: the shared options
    given before the subcommand go after it (before a `--`), where the command reads them;
    so every command taking `_project_options` accepts them on either side, as dbt does."""
    takes_value = _global_takes_value()
    moved: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        name = args[i].split("=", 1)[0]
        if name not in takes_value:
            break  # --help, --version: the group's own
        width = 2 if takes_value[name] and "=" not in args[i] else 1
        moved += args[i:i + width]
        i += width
    rest = args[i:]
    if not moved:
        return rest
    cut = rest.index("--") if "--" in rest else len(rest)
    return [*rest[:cut], *moved, *rest[cut:]]


class _GlobalOptionsGroup(click.Group):
    """The `elt` group: shared options are welcome before the subcommand too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, move_global_options(list(args)))


@click.group(cls=_GlobalOptionsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="elt")
def cli() -> None:
    """elt: raw exports -> DuckDB staging -> SQL models -> REST and GraphQL backends.

    The shared options (--project-dir, --target, --debug, --quiet, --log-format ...) go
    before or after the command; each also reads an ELT_ environment variable.
    """


@cli.command()
@_project_options
@_node_selection
@click.option("--full-refresh", is_flag=True, help="Reload every seed and rebuild every model.")
def build(select: tuple[str, ...], exclude: tuple[str, ...], full_refresh: bool,
          **opts: Any) -> None:
    """Load changed seeds, build changed models, run their data tests."""
    _run(opts, lambda c: c.build(select, exclude, full_refresh))


@cli.command("compile")
@_project_options
@_node_selection
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default=None,
              help="SQL dialect to compile to (default: the target's type).")
def compile_cmd(select: tuple[str, ...], exclude: tuple[str, ...], engine: str | None,
                **opts: Any) -> None:
    """Write the SQL each selected model and test runs to target/compiled/ (spark:
    target/compiled/spark/, checked by Spark's analyzer)."""
    _run(opts, lambda c: c.compile(select, exclude, engine))


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Only errors.")
def init_cmd(directory: Path, quiet: bool) -> None:
    """Create a minimal working project in DIRECTORY (then: cd DIRECTORY && elt build)."""
    from elt.project.scaffold import init_project

    console = Console(quiet=quiet)
    try:
        written = init_project(directory)
    except EltError as exc:
        console.error(str(exc))
        sys.exit(1)
    for path in written:
        console.info(f"created {path}")
    console.info(f"next: cd {directory} && elt build")


@cli.command("test")
@_project_options
@_node_selection
def test_cmd(select: tuple[str, ...], exclude: tuple[str, ...], **opts: Any) -> None:
    """Run data tests only."""
    _run(opts, lambda c: c.test(select, exclude))


@cli.command()
@_project_options
@click.argument("query", required=False)
@click.option("--format", "fmt", type=_FORMATS, default="table")
@click.option("--limit", type=int, default=None, help="Print at most N rows.")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Another DuckDB file, e.g. target/sandbox.duckdb (what the sandbox got).")
def sql(query: str | None, fmt: str, limit: int | None, database: Path | None,
        **opts: Any) -> None:
    """Run SQL against the staging database (QUERY or stdin), read-only."""
    text = query if query is not None else sys.stdin.read()
    _run(opts, lambda c: c.sql(text, fmt, limit, database))


@cli.command()
@_project_options
@click.argument("model")
@click.option("--limit", type=int, default=10)
@click.option("--format", "fmt", type=_FORMATS, default="table")
def show(model: str, limit: int, fmt: str, **opts: Any) -> None:
    """Print the first rows of a model, seed or source."""
    _run(opts, lambda c: c.show(model, limit, fmt))


@cli.command("ls")
@_project_options
@_node_selection
@click.option("--format", "fmt", type=_FORMATS, default="table")
def ls_cmd(select: tuple[str, ...], exclude: tuple[str, ...], fmt: str, **opts: Any) -> None:
    """List nodes with kind, materialization, rows and last build."""
    _run(opts, lambda c: c.ls(select, exclude, fmt))


@cli.command()
@_project_options
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text")
def dag(fmt: str, **opts: Any) -> None:
    """Print the dependency graph."""
    _run(opts, lambda c: c.dag(fmt))


@cli.command("lineage")
@_project_options
@click.argument("field", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def lineage_cmd(field: str | None, fmt: str, **opts: Any) -> None:
    """Where each API field comes from: PUB.FIELD (or PUB, or every publication) traced
    through the models to seed and API source columns; json also writes target/lineage.json."""
    _run(opts, lambda c: c.lineage(field, fmt))


@cli.command("docs")
@_project_options
@click.option("--serve", is_flag=True, help="Serve target/docs on 127.0.0.1 until Ctrl-C.")
@click.option("--port", type=int, default=8080, show_default=True)
def docs_cmd(serve: bool, port: int, **opts: Any) -> None:
    """Write a static site to target/docs/: the DAG, each model's SQL, columns and tests,
    each publication's ledger counts and the column lineage of its fields."""
    _run(opts, lambda c: c.docs(serve, port))


@cli.command()
@_project_options
@_selection
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
@click.option("--concurrency", type=int, default=None, help="Requests in flight per endpoint.")
@click.option("--export-results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one JSON line per row sent (key, status, HTTP status, answer).")
@click.option("--full-refresh", is_flag=True,
              help="Send every row of the selected publications again (update path).")
@click.option("--yes", is_flag=True, help="Do not ask before a --full-refresh.")
def publish(select: tuple[str, ...], exclude: tuple[str, ...], dry_run: bool,
            concurrency: int | None, export_results: Path | None, full_refresh: bool,
            yes: bool, **opts: Any) -> None:
    """Send new, changed and failed rows to their endpoints; record what they acknowledged."""
    confirm = None if yes else _confirm
    _run(opts, lambda c: c.publish(select, exclude, dry_run, concurrency, export_results,
                                   full_refresh, confirm))


def _confirm(question: str) -> bool:
    """Ask at a terminal; elsewhere (cron, CI) refuse: the caller adds --yes."""
    if not sys.stdin.isatty():
        raise EltError(f"{question.removesuffix(' Continue?')}: add --yes to confirm (no "
                       "terminal to ask)")
    return click.confirm(question, default=False, err=True)


@cli.command()
@_project_options
@click.option("--select", "-s", multiple=True, help="Publications: name, glob, tag:x.")
@click.option("--repair", is_flag=True,
              help="Send what differs through the normal publish path, then check again.")
def verify(select: tuple[str, ...], repair: bool, **opts: Any) -> None:
    """Read back what each endpoint holds; compare it with the models and the ledger."""
    _run(opts, lambda c: c.verify(select, repair))


@cli.group()
def ledger() -> None:
    """What the ledger knows of each publication's rows."""


@ledger.command("forget")
@_project_options
@click.option("--select", "-s", multiple=True, help="Publications: name, glob, tag:x.")
@click.option("--where", default=None,
              help="SQL condition on published.<pub>'s columns (key columns, status, ...).")
@click.option("--dry-run", is_flag=True, help="Count the rows; forget nothing.")
def ledger_forget(select: tuple[str, ...], where: str | None, dry_run: bool,
                  **opts: Any) -> None:
    """Forget rows (all, or those --where matches) so the next publish sends them again."""
    _run(opts, lambda c: c.forget(select, where, dry_run))


@cli.command()
@_project_options
@click.option("--dry-run", is_flag=True, help="List what would be dropped; drop nothing.")
def clean(dry_run: bool, **opts: Any) -> None:
    """Drop tables and state of seeds, models and tests that no longer exist."""
    _run(opts, lambda c: c.clean(dry_run))


@cli.command()
@_project_options
@click.option("--format", "fmt", type=_FORMATS, default="table")
def status(fmt: str, **opts: Any) -> None:
    """Per publication: rows, acknowledged, failed, pending."""
    _run(opts, lambda c: c.status(fmt))


@cli.command("debug")
@_project_options
def debug_cmd(**opts: Any) -> None:
    """Check profile, database, endpoints and credentials without sending data."""
    _run(opts, lambda c: c.debug())


@cli.group()
def sandbox() -> None:
    """The local FlowKit-compatible REST and UOIS-compatible GraphQL receiver."""


@sandbox.command("serve")
@_project_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--fresh", is_flag=True, help="Forget everything received so far.")
@click.option("--strict-tokens", is_flag=True,
              help="Reject expired and wrong-audience FlowKit tokens (the real service does not).")
def sandbox_serve(host: str, port: int, fresh: bool, strict_tokens: bool, **opts: Any) -> None:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM."""
    _run(opts, lambda c: c.sandbox_serve(host, port, fresh, strict_tokens))


def main() -> None:
    try:
        cli(prog_name="elt")
    except BrokenPipeError:  # raised outside a command (e.g. --help piped into head)
        _quiet_broken_pipe()


if __name__ == "__main__":
    main()
