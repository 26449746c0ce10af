"""The installed dependencies are above the floors the package trusts (RELIABILITY.md row 29), and the package's
declared requirements (pyproject.toml, as installed) keep those floors, so that an install cannot resolve to a
known-bad release."""

import importlib.metadata
import inspect

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

# Known malicious releases of lightning (and of its mirror package pytorch-lightning).
MALICIOUS = {"lightning": {"2.6.2", "2.6.3"}, "pytorch-lightning": {"2.6.2", "2.6.3"}}
FLOORS = {"torch": "2.10", "pillow": "12.2", "jsonargparse": "4.52"}


def installed(name: str) -> Version | None:
    try:
        return Version(importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_no_known_malicious_lightning_release_is_installed(name):
    version = installed(name)
    assert version is None or str(version) not in MALICIOUS[name], f"{name} {version} is a known malicious release"


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_installed_versions_are_above_the_floors(name):
    assert installed(name) >= Version(FLOORS[name]), f"{name} {installed(name)} is below {FLOORS[name]}"


def test_jsonargparse_has_the_import_path_allowlist_the_package_relies_on():
    import jsonargparse

    assert "import_path_allowlist" in inspect.signature(jsonargparse.set_parsing_settings).parameters


def test_the_declared_requirements_refuse_the_bad_releases():
    declared = [Requirement(line) for line in importlib.metadata.requires("lit_mlcourse") or []]
    requirements = {requirement.name: requirement.specifier for requirement in declared if not requirement.marker}
    for version in MALICIOUS["lightning"]:
        assert not requirements["lightning"].contains(version), f"pyproject.toml allows lightning {version}"
    for name, floor in FLOORS.items():
        below = (*Version(floor).release[:-1], Version(floor).release[-1] - 1)
        assert not requirements[name].contains(".".join(map(str, below))), f"pyproject.toml allows {name} < {floor}"
        assert requirements[name].contains(floor), f"pyproject.toml refuses {name} {floor}"
