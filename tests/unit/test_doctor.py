"""``retail-etl doctor``: each check's verdict on a real project folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from retail_etl.cli import doctor
from retail_etl.config import checks as config_checks

SRC = Path(__file__).resolve().parents[2] / "src"


def _verdicts(config: Path, env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in doctor.run_checks(config, env=env or {})}


def test_a_fresh_project_is_ready(scaffold_config: Path) -> None:
    verdicts = _verdicts(scaffold_config)
    assert [name for name in verdicts] == ["configuration", "lake", "disk space", "engine", "channel 1 (console)"]
    assert verdicts["configuration"] == ("ok", f"{scaffold_config}: 2 source(s), engine duckdb")
    assert verdicts["lake"] == ("ok", f"{scaffold_config.parent / 'lake'} can be created (in {scaffold_config.parent})")
    assert verdicts["engine"][0] == "ok" and "memory_limit 1.5GB" in verdicts["engine"][1]
    assert not (scaffold_config.parent / "lake").exists()  # the probe leaves nothing behind
    assert [p.name for p in scaffold_config.parent.iterdir()] == ["retail-etl.yaml"]


def test_a_lake_under_a_file_fails(scaffold_config: Path) -> None:
    (scaffold_config.parent / "afile").write_text("x")
    status, detail = _verdicts(scaffold_config, {"RETAIL_ETL__LAKE__ROOT": "afile/lake"})["lake"]
    assert status == "fail" and "afile is a file, not a folder" in detail


def test_a_configuration_that_does_not_load_is_the_only_verdict(scaffold_config: Path) -> None:
    verdicts = _verdicts(scaffold_config, {"RETAIL_ETL__ENGINE__MEMORY_LIMIT": "lots"})
    assert list(verdicts) == ["configuration"]
    status, detail = verdicts["configuration"]
    assert status == "fail" and "engine.memory_limit: 'lots' is not a size" in detail and "(hint: " in detail


def test_channels_need_their_environment_variables(scaffold_config: Path) -> None:
    text = scaffold_config.read_text()
    start = text.index("notifications:")
    block = ("notifications:\n  channels:\n    - console\n    - webhook: {url_env: HOOK_URL, headers_env: {X-Token: "
             "HOOK_TOKEN}}\n    - email: {host: smtp.example.com, sender: etl@example.com, to: [ops@example.com], "
             "username_env: SMTP_USER, password_env: SMTP_PASSWORD}\n")
    assert not re.search(r"^\w", text[text.index("\n", start):], re.MULTILINE)  # the last section: replaced whole
    scaffold_config.write_text(text[:start] + block)
    verdicts = _verdicts(scaffold_config, {"HOOK_URL": "https://hooks.example.com/x", "SMTP_USER": "u"})
    assert verdicts["channel 2 (webhook)"] == (
        "fail", "environment variable(s) not set: HOOK_TOKEN (hint: export HOOK_TOKEN=...)")
    assert verdicts["channel 3 (email)"][0] == "fail" and "SMTP_PASSWORD" in verdicts["channel 3 (email)"][1]
    assert "https://hooks.example.com/x" not in json.dumps(list(verdicts.values()))  # values never shown
    ready = _verdicts(scaffold_config, {"HOOK_URL": "u", "HOOK_TOKEN": "t", "SMTP_USER": "u", "SMTP_PASSWORD": "p"})
    assert ready["channel 2 (webhook)"] == ("ok", "2 environment variable(s) set")


def test_spark_needs_pyspark_and_java(scaffold_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_checks, "_installed", lambda module: True)  # the config loads
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "")
    verdicts = _verdicts(scaffold_config, {"RETAIL_ETL__ENGINE__NAME": "spark"})
    assert verdicts["engine"] == ("fail", "engine spark needs pyspark (hint: pip install 'retail-etl[spark]')")
    assert verdicts["java"][0] == "fail" and "JAVA_HOME" in verdicts["java"][1]


def test_the_command_exits_1_on_a_failure_and_prints_json(scaffold_config: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    ok = subprocess.run([sys.executable, "-m", "retail_etl", "doctor", "-c", str(scaffold_config), "--format", "json"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert {c["status"] for c in json.loads(ok.stdout)} == {"ok"}
    bad = subprocess.run([sys.executable, "-m", "retail_etl", "doctor", "-c", str(scaffold_config), "-f", "json"],
                         capture_output=True, text=True, timeout=120,
                         env={**env, "RETAIL_ETL__SOURCES__SALES__CSV__ENCODING": "utf-9"})
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    (check,) = json.loads(bad.stdout)
    assert check["status"] == "fail" and "did you mean 'utf-8'?" in check["detail"]
