"""File operations on a Spark warehouse through Hadoop's FileSystem (over the JVM gateway),
so the same code replaces a table's directory on a local disk, HDFS or an object store:
Python's shutil and Path.rename only see the driver's local disk, and on a cluster would
leave the old files where the executors read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def uri(location: Path | str) -> str:
    """A warehouse location as a URI: a local path as file://, a URI as it is."""
    if isinstance(location, Path):
        return location.as_uri()
    return location if "://" in location else Path(location).absolute().as_uri()


def _fs_path(spark: Any, location: Path | str) -> tuple[Any, Any]:
    jvm = spark._jvm  # noqa: SLF001 - the JVM gateway: Hadoop's FileSystem has no Python API
    path = jvm.org.apache.hadoop.fs.Path(uri(location))
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path  # noqa: SLF001


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
