"""A `type: spark` target with `remote: sc://host:port` (Spark Connect, no master): the
test starts pyspark's own Connect server (sbin/start-connect-server.sh) on a free loopback
port, builds a small project through it (seeds, a table, a view, a data test, twice: the
second build is up to date), compares every model with the DuckDB build of the same
seeds, and stops the server. A Connect target with a remote URI warehouse is refused."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from helpers import statuses, write_files

from elt.context import Console, Context
from elt.core.errors import ConfigError

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
pytest.importorskip("grpc", reason="the Spark Connect client needs the `spark` extra's grpcio")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime: the Connect server cannot start", allow_module_level=True)

SEED = "id,city,amount,day\n1,Paris,2.5,2024-01-03\n2,Lyon,,2024-02-29\n3,Paris,-1.25,2024-03-01\n"
TOTALS = """/* elt
columns:
  city: {tests: [not_null, unique]}
*/
SELECT city, count(*) AS n, sum(amount) AS total, max(day) AS last_day,
       string_agg(CAST(id AS VARCHAR), ',' ORDER BY id) AS ids
FROM raw.sales GROUP BY city"""
PARIS = "/* elt\nmaterialized: view\n*/\nSELECT * FROM totals WHERE city = 'Paris'"
FIRSTS = "SELECT city, n, date_diff('day', DATE '2024-01-01', last_day) AS days FROM paris"
MODELS = ("totals", "paris", "firsts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pyspark's Connect server on 127.0.0.1:<free port> (local[2]), in its own process
    group so that stopping it stops its JVM; waited for by polling the port (wide limit)."""
    import pyspark

    home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("connect")
    port = _free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_PID_DIR": str(work),
           "SPARK_LOG_DIR": str(work), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_IDENT_STRING": f"elt-test-{port}"}
    log = (work / "server.out").open("wb")
    server = subprocess.Popen(
        [str(home / "sbin" / "start-connect-server.sh"), "--wait", "--master", "local[2]",
         "--driver-memory", "768m",
         "--conf", f"spark.connect.grpc.binding.port={port}",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
         "--conf", "spark.ui.enabled=false",
         "--conf", f"spark.sql.warehouse.dir={work / 'server-warehouse'}"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # a busy machine: wide, only a hang fails it
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Connect server did not start:\n" +
                            (work / "server.out").read_text(errors="replace")[-3000:])
            time.sleep(0.5)  # polling the port, not waiting for a guessed duration
        yield f"sc://127.0.0.1:{port}"
    finally:
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        active = ConnectSession.getActiveSession()
        if active is not None:
            active.stop()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _project(root: Path, remote: str, warehouse: str = "target/warehouse") -> None:
    write_files(root, {"seeds/sales.csv": SEED, "models/totals.sql": TOTALS,
                       "models/paris.sql": PARIS, "models/firsts.sql": FIRSTS})
    outputs = {"duck": {"type": "duckdb", "path": "target/duck.duckdb"},
               "connect": {"type": "spark", "remote": remote, "path": "target/elt.duckdb",
                           "warehouse": warehouse}}
    (root / "profiles.yml").write_text(yaml.safe_dump(
        {"elt": {"target": "connect", "outputs": outputs}}))


def _rows(path: Path, model: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute(f"SELECT * FROM main.{model} ORDER BY ALL")
        return [d[0] for d in cur.description], cur.fetchall()


def test_a_connect_target_builds_what_duckdb_builds(tmp_path: Path, connect_url: str) -> None:
    root = tmp_path / "p"
    _project(root, connect_url)
    out = io.StringIO()
    ctx = Context(root, console=Console(out, out))
    assert ctx.project.target.remote == connect_url and ctx.project.target.master is None
    results = ctx.build()
    assert not results.failed, out.getvalue()
    assert set(statuses(results).values()) == {"success"}, out.getvalue()
    assert (root / "target" / "warehouse" / "main" / "totals").is_dir()
    assert (root / "target" / "compiled" / "spark" / "firsts.sql").is_file()
    duck = Context(root, target="duck", console=Console(out, out))
    assert not duck.build().failed, out.getvalue()
    state, duckdb_file = root / "target" / "elt.duckdb", root / "target" / "duck.duckdb"
    with duckdb.connect(str(state), read_only=True) as con:  # built by Spark, not DuckDB
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema"
                                 ".tables WHERE table_schema = 'main'").fetchall())
    assert kinds.get("totals") == "VIEW", kinds
    for model in ("totals", "firsts"):  # the view lives in the Spark session only
        assert _rows(state, model) == _rows(duckdb_file, model), model
    assert _rows(duckdb_file, "firsts")[1] == [("Paris", 2, 60)]
    # the same runner's up-to-date checks through Connect: nothing rebuilt
    again = statuses(ctx.build())
    assert set(again.values()) == {"up_to_date"}, out.getvalue()


def test_a_connect_target_refuses_a_uri_warehouse_and_a_master(tmp_path: Path) -> None:
    _project(tmp_path, "sc://127.0.0.1:1", warehouse="s3a://bucket/wh")
    with pytest.raises(ConfigError) as err:
        _ = Context(tmp_path).project
    assert "s3a://bucket/wh over Spark Connect" in str(err.value)
    assert "profiles.yml" in str(err.value)
    doc = yaml.safe_load((tmp_path / "profiles.yml").read_text())
    doc["elt"]["outputs"]["connect"].update(warehouse="target/wh", master="local[2]")
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="sets `master`.*and `remote`"):
        _ = Context(tmp_path).project
