"""profiles.yml: targets, env_var rendering, errors that name the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from elt.core import secrets
from elt.core.errors import ConfigError
from elt.project.config import load_project

PROFILE = """\
p:
  target: "{{ env_var('T_TARGET', 'dev') }}"
  outputs:
    dev:
      type: duckdb
      path: target/dev.duckdb
      threads: "{{ env_var('T_THREADS', '3') }}"
      endpoints:
        api:
          url: "{{ env_var('T_URL', 'http://localhost/v1') }}"
          auth: {type: bearer, token: "{{ env_var('T_TOKEN', 'none') }}"}
    prod:
      type: duckdb
      path: "{{ env_var('T_DB') }}"
      memory_limit: 1GB
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "profiles.yml").write_text(PROFILE)
    return tmp_path


def test_defaults_render_and_coerce(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELT_TARGET", raising=False)
    project = load_project(project_dir)
    assert project.target.name == "dev"
    assert project.target.threads == 3
    assert project.db_path == project_dir / "target" / "dev.duckdb"
    assert project.target.endpoints["api"]["url"] == "http://localhost/v1"
    assert project.target.row_group_size == 16384


@pytest.mark.parametrize("value", ["1000", "0", "-2048"])
def test_row_group_size_must_be_a_multiple_of_2048(tmp_path: Path, value: str) -> None:
    (tmp_path / "profiles.yml").write_text(
        PROFILE.replace("      type: duckdb\n      path: target/dev.duckdb\n",
                        f"      type: duckdb\n      path: target/dev.duckdb\n"
                        f"      row_group_size: {value}\n", 1))
    with pytest.raises(ConfigError, match=r"profiles.yml:7: .*row_group_size must be a "
                                          r"multiple of 2048"):
        load_project(tmp_path)
    (tmp_path / "profiles.yml").write_text(PROFILE.replace("threads:", "row_group_size: 4096\n"
                                                           "      threads:", 1))
    assert load_project(tmp_path).target.row_group_size == 4096


@pytest.mark.parametrize("key, value, expected", [
    ("threads", "0", "expected a whole number >= 1, not 0"),
    ("threads", "-3", "expected a whole number >= 1, not -3"),
    ("threads", "true", "expected a whole number >= 1, not True"),
    ("threads", "2.5", "expected a whole number >= 1, not 2.5"),
    ("gzip_level", "10", "expected a whole number from 1 to 9, not 10"),
    ("concurrency", "0", "expected a whole number >= 1, not 0"),
    ("timeout", "0", "expected a number above 0, not 0"),
    ("settle", "-1", "expected a number >= 0, not -1"),
])
def test_numbers_out_of_range_stop_every_command(tmp_path: Path, key: str, value: str,
                                                 expected: str) -> None:
    """Checked when the profile is read: `gzip_level: 0` used to pass until a publish, and
    `threads: 0` became 1 without a word."""
    text = (re.sub(r"threads: .*", f"threads: {value}", PROFILE, count=1) if key == "threads"
            else PROFILE.replace("          auth:", f"          {key}: {value}\n          auth:",
                                 1))
    (tmp_path / "profiles.yml").write_text(text)
    with pytest.raises(ConfigError, match=r"profiles.yml:\d+: .*" + re.escape(expected)):
        load_project(tmp_path)


@pytest.mark.parametrize("value", ["soon", "-1", "true"])
def test_checkpoint_every_must_be_seconds(tmp_path: Path, value: str) -> None:
    (tmp_path / "profiles.yml").write_text(PROFILE.replace(
        "threads:", f"checkpoint_every: {value}\n      threads:", 1))
    with pytest.raises(ConfigError, match=r"profiles.yml:\d+: .*checkpoint_every.*(expected "
                                          r"a number|must be a number of seconds >= 0)"):
        load_project(tmp_path)


def test_checkpoint_every_reaches_the_target(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles.yml").write_text(PROFILE)
    assert load_project(tmp_path).target.checkpoint_every is None  # db's default, 60 s
    monkeypatch.setenv("T_EVERY", "2.5")  # rendered from the environment: a number again
    (tmp_path / "profiles.yml").write_text(PROFILE.replace(
        "threads:", "checkpoint_every: \"{{ env_var('T_EVERY') }}\"\n      threads:", 1))
    assert load_project(tmp_path).target.checkpoint_every == 2.5


def test_env_var_overrides_and_is_registered_secret(project_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELT_TARGET", raising=False)
    monkeypatch.setenv("T_TOKEN", "tok-canary-123")
    project = load_project(project_dir)
    assert project.target.endpoints["api"]["auth"]["token"] == "tok-canary-123"
    assert secrets.redact("Bearer tok-canary-123") == "Bearer ***"


@pytest.mark.parametrize("token", ["tok{{-canary-}}123", "{{ env_var('T_OTHER') }}"])
def test_a_value_from_the_environment_is_data_not_a_template(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """A password may hold "{{": taken as it is, never rendered again nor quoted in an error
    (the error quoted the part after "{{", which the full-value redaction missed)."""
    monkeypatch.delenv("ELT_TARGET", raising=False)
    monkeypatch.setenv("T_TOKEN", token)
    auth = load_project(project_dir).target.endpoints["api"]["auth"]
    assert auth["token"] == token
    assert secrets.redact(f"Bearer {token}") == "Bearer ***"


def test_credentials_in_an_url_are_secret(project_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELT_TARGET", raising=False)
    monkeypatch.setenv("T_URL", "https://admin:url-canary-pw@api.example/v1")
    assert load_project(project_dir).target.endpoints["api"]["url"].endswith("/v1")
    assert secrets.redact("cannot connect to https://admin:url-canary-pw@api.example/v1") == (
        "cannot connect to https://admin:***@api.example/v1")


def test_target_precedence(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_DB", str(project_dir / "prod.duckdb"))
    monkeypatch.setenv("ELT_TARGET", "prod")
    assert load_project(project_dir).target.name == "prod"
    assert load_project(project_dir).target.memory_limit == "1GB"
    # an explicit option wins over ELT_TARGET
    assert load_project(project_dir, target_name="dev").target.name == "dev"


def test_missing_env_var_names_it(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_DB", raising=False)
    with pytest.raises(ConfigError, match="T_DB is not set"):
        load_project(project_dir, target_name="prod")


def test_unselected_target_is_not_rendered(project_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_DB", raising=False)
    monkeypatch.delenv("ELT_TARGET", raising=False)
    assert load_project(project_dir).target.name == "dev"  # prod's T_DB not needed


def test_unknown_target_lists_outputs(project_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown target 'nope' \(outputs: dev, prod\)"):
        load_project(project_dir, target_name="nope")


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text("p:\n  target: dev\n  outputs: [\n")
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert f"{tmp_path / 'profiles.yml'}:" in str(info.value)
    assert "invalid YAML" in str(info.value)


def test_missing_profiles_and_profiles_dir(tmp_path: Path, project_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"empty: not an elt project \(no profiles.yml in it;"):
        load_project(empty)
    assert load_project(empty, profiles_dir=project_dir, target_name="dev").root == empty


def test_unsupported_template(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n    dev: {path: \"{{ var('x') }}\"}\n")
    with pytest.raises(ConfigError, match="unsupported template"):
        load_project(tmp_path)


def test_repo_profiles_local_target_matches_the_sandbox(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """`elt sandbox serve` + `-t local` must work with no env vars set: the URLs come from
    the address the sandbox writes to target/sandbox.json, the credentials are its own."""
    import json
    import os
    import shutil

    from elt.sandbox.server import Sandbox

    for name in ("FLOWKIT_URL", "FLOWKIT_TOKEN_URL", "FLOWKIT_AUDIENCE", "FLOWKIT_CLIENT_ID",
                 "FLOWKIT_CLIENT_SECRET", "FLOWKIT_ADMIN_CLIENT_ID",
                 "FLOWKIT_ADMIN_CLIENT_SECRET", "UOIS_URL", "UOIS_USERNAME", "UOIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(Path(__file__).resolve().parents[1] / "profiles.yml", tmp_path)
    with Sandbox(None) as sandbox:
        (tmp_path / "target").mkdir()
        (tmp_path / "target" / "sandbox.json").write_text(
            json.dumps({"url": sandbox.url, "port": sandbox.port, "pid": os.getpid()}))
        local = load_project(tmp_path, target_name="local").target.endpoints
        for name in ("flowkit", "flowkit_admin", "uois"):
            expected = sandbox.endpoint_config(name)
            got = local[name]
            assert got["url"] == expected["url"], name
            for field in ("client_id", "client_secret", "audience", "username", "password",
                          "token_url", "login_url"):
                assert got["auth"].get(field) == expected["auth"].get(field), (name, field)


def test_only_secret_looking_values_are_redacted(project_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL from the environment stays readable in messages; a token never shows."""
    monkeypatch.delenv("ELT_TARGET", raising=False)
    monkeypatch.setenv("T_URL", "http://api.internal.example/v1")
    monkeypatch.setenv("T_TOKEN", "tok-other-canary-456")
    load_project(project_dir)
    assert secrets.redact("GET http://api.internal.example/v1") == \
        "GET http://api.internal.example/v1"
    assert secrets.redact("token tok-other-canary-456") == "token ***"


STRINGS = """\
p:
  target: dev
  outputs:
    dev:
      path: target/dev.duckdb
      threads: "{{ env_var('T_THREADS', '2') }}"
      endpoints:
        api:
          url: http://localhost/v1
          timeout: "{{ env_var('T_TIMEOUT', '2.5') }}"
          retry_timeouts: "{{ env_var('T_RETRY', 'false') }}"
          auth: {type: login3, login_url: http://x, username: "{{ env_var('T_USER') }}",
                 password: "{{ env_var('T_PW') }}"}
"""


def test_env_var_values_stay_strings_except_numeric_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles.yml").write_text(STRINGS)
    monkeypatch.delenv("ELT_TARGET", raising=False)
    monkeypatch.setenv("T_PW", "007")
    monkeypatch.setenv("T_USER", "true")
    monkeypatch.setenv("T_THREADS", "4")
    target = load_project(tmp_path).target
    auth = target.endpoints["api"]["auth"]
    assert auth["password"] == "007" and auth["username"] == "true"   # strings, as given
    assert target.threads == 4
    assert target.endpoints["api"]["timeout"] == 2.5
    assert target.endpoints["api"]["retry_timeouts"] is False
    monkeypatch.setenv("T_THREADS", "four")
    with pytest.raises(ConfigError, match=r"profiles.yml:\d+: p.outputs.dev.threads: expected "
                                          r"a whole number, not 'four'"):
        load_project(tmp_path)


def test_unknown_profile_key_names_line_and_suggests(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text(STRINGS.replace(" threads:", " treads:")
                                           .replace(" timeout:", " timout:"))
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'profiles.yml'}:6: unknown key `treads`")
    assert "(did you mean threads?)" in str(info.value)
    (tmp_path / "profiles.yml").write_text(STRINGS.replace(" timeout:", " timout:"))
    with pytest.raises(ConfigError, match=r"profiles.yml:10: unknown key `timout` in "
                                          r"p.outputs.dev.endpoints.api \(did you mean timeout"):
        load_project(tmp_path)
    (tmp_path / "profiles.yml").write_text(STRINGS.replace("login_url:", "login_ur1:"))
    with pytest.raises(ConfigError, match=r"unknown key `login_ur1` .*did you mean login_url"):
        load_project(tmp_path)


def test_repo_profiles_and_published_json_schema_agree() -> None:
    """The committed JSON Schema is the one the validator's table produces."""
    import json

    from elt.project import profile_schema

    repo = Path(__file__).resolve().parents[1]
    published = repo / "elt" / "project" / "profiles.schema.json"
    assert json.loads(published.read_text()) == profile_schema.json_schema()
    for name in ("sandbox", "local"):
        assert load_project(repo, target_name=name).target.threads == 2


def test_root_is_found_from_a_subfolder(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = project_dir / "models" / "staging"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.delenv("ELT_TARGET", raising=False)
    assert load_project().root == project_dir
    elsewhere = project_dir.parent / "not_a_project"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError, match=rf"^{elsewhere}: not an elt project \(no profiles.yml"
                                          " in it or a parent folder"):
        load_project()
