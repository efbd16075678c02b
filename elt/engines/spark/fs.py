"""File operations on a Spark warehouse through Hadoop's FileSystem (over the JVM gateway),
so the same code replaces a table's directory on a local disk, HDFS or an object store:
Python's shutil and Path.rename only see the driver's local disk, and on a cluster would
leave the old files where the executors read them. A Spark Connect session has no JVM
gateway: its warehouse is a local folder the server shares (config.py refuses any other)
and the same calls go to the local disk (_LocalFS)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from elt.core.errors import EltError

Location = Path | str  # a local folder, or a URI (file://, hdfs://, s3a://...) kept as text


def join(base: Location, *parts: str) -> Location:
    """base/part/...: a path stays a path, a URI a URI (never a local folder named s3a:)."""
    if isinstance(base, Path):
        return base.joinpath(*parts)
    return "/".join([base.rstrip("/"), *parts])


def local(location: Location) -> Path | None:
    """The local folder of a location (a path, a file:// URI), None for a remote URI."""
    if isinstance(location, Path):
        return location
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return None if "://" in location else Path(location)


def duckdb_path(location: Location) -> str:
    """Where DuckDB (the state file's views that publish and `elt sql` read) finds a
    warehouse folder: its local path; a remote URI is a clear error."""
    path = local(location)
    if path is None:
        raise EltError(f"warehouse {location}: publish and `elt sql` read Spark's tables "
                       "through DuckDB, which cannot read this URI; use a local path or a "
                       "file:// URI")
    return str(path)


def is_dir(location: Location) -> bool:
    """A warehouse folder is there: on the local disk, or asked of Hadoop's FileSystem
    through the running Spark session."""
    path = local(location)
    if path is not None:
        return path.is_dir()
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    return spark is not None and exists(spark, location)


def uri(location: Path | str) -> str:
    """A warehouse location as a URI: a local path as file://, a URI as it is."""
    if isinstance(location, Path):
        return location.as_uri()
    return location if "://" in location else Path(location).absolute().as_uri()


def connected(spark: Any) -> bool:
    """A Spark Connect session: no JVM gateway on this side, so no Hadoop FileSystem."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


class _LocalFS:
    """Hadoop FileSystem's calls used here, on the local disk: a Spark Connect session,
    whose server shares the warehouse folder (config.py refuses any other URI there)."""

    def exists(self, path: Path) -> bool:
        return path.exists()

    def delete(self, path: Path, recursive: bool) -> bool:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return True

    def rename(self, src: Path, dst: Path) -> bool:
        src.rename(dst)
        return True

    def copyFromLocalFile(self, delete: bool, overwrite: bool, src: Path,  # noqa: N802
                          dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _fs_path(spark: Any, location: Path | str) -> tuple[Any, Any]:
    if connected(spark):
        path = local(location)
        if path is None:
            raise EltError(f"warehouse {location}: a Spark Connect session cannot reach "
                           "Hadoop's FileSystem; use a local path or file:// URI")
        return _LocalFS(), path
    jvm = spark._jvm  # noqa: SLF001 - the JVM gateway: Hadoop's FileSystem has no Python API
    path = jvm.org.apache.hadoop.fs.Path(uri(location))
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path  # noqa: SLF001


def put(spark: Any, local_file: Path, location: Location) -> None:
    """Copy a file of the driver's disk to a warehouse location (replacing it)."""
    fs, dst = _fs_path(spark, location)
    src = local_file if connected(spark) else \
        spark._jvm.org.apache.hadoop.fs.Path(local_file.as_uri())  # noqa: SLF001
    fs.copyFromLocalFile(False, True, src, dst)


def exists(spark: Any, location: Path | str) -> bool:
    fs, path = _fs_path(spark, location)
    return bool(fs.exists(path))


def delete(spark: Any, location: Path | str) -> None:
    """Remove a directory tree (nothing when it is not there)."""
    fs, path = _fs_path(spark, location)
    if fs.exists(path):
        fs.delete(path, True)


def replace(spark: Any, fresh: Path | str, final: Path | str) -> None:
    """Move the complete `fresh` directory to `final`, dropping what was there."""
    fs, src = _fs_path(spark, fresh)
    _, dst = _fs_path(spark, final)
    if not fs.exists(src):
        raise OSError(f"could not move {uri(fresh)} to {uri(final)}: it is not there")
    if fs.exists(dst):
        fs.delete(dst, True)
    if not fs.rename(src, dst):
        raise OSError(f"could not move {uri(fresh)} to {uri(final)}")
