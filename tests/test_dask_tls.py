"""`adpath sweep --scheduler tls://...` with Dask's TLS options: all three or a clear error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.loader import ScenarioError
from sim.app.sweep.executors import dask_security, make_executor

pytest.importorskip("distributed")


@pytest.fixture
def tls_files(tmp_path):
    paths = {}
    for name in ("ca_file", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        paths[name] = str(path)
    return paths


def test_the_three_tls_options_make_a_security_that_requires_encryption(tls_files):
    security = dask_security(tls_files)
    assert security.require_encryption is True
    assert security.tls_ca_file == tls_files["ca_file"]
    assert security.tls_client_cert == tls_files["cert"]
    assert security.tls_client_key == tls_files["key"]


def test_no_tls_options_mean_no_security():
    assert dask_security({"ca_file": None, "cert": None, "key": None}) is None


def test_some_tls_options_without_the_others_are_refused(tls_files):
    with pytest.raises(ScenarioError, match="missing: --tls-key"):
        dask_security({"ca_file": tls_files["ca_file"], "cert": tls_files["cert"], "key": None})


def test_tls_without_a_scheduler_is_refused(tls_files):
    with pytest.raises(ScenarioError, match="add --scheduler tls://"):
        make_executor(1, None, False, tls_files)


def test_the_command_line_refuses_tls_without_a_scheduler(tls_files, tmp_path):
    result = CliRunner().invoke(main, ["sweep", "csa_cap", "--out", str(tmp_path / "s"), "--quiet",
                                       "--tls-ca-file", tls_files["ca_file"], "--tls-cert", tls_files["cert"],
                                       "--tls-key", tls_files["key"]])
    assert result.exit_code == 2, result.output
    assert "add --scheduler tls://" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()
