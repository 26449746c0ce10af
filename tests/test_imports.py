"""`lit` starts no slower than Lightning's own CLI: heavy optional libraries load only when used."""

import subprocess
import sys

HEAVY = ("wandb", "matplotlib", "sklearn", "pandas", "scipy")


def start(imports: str) -> subprocess.Popen:
    """A fresh interpreter that imports ``imports``, then prints which of HEAVY are loaded (``loaded``)."""
    code = f"import sys, {imports}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loaded(process: subprocess.Popen) -> set[str]:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    return set(filter(None, stdout.strip().split(",")))


def test_cli_import_loads_no_heavy_library_beyond_lightning():
    # Both interpreters at once: each spends seconds importing on one core.
    ours = start("lit_mlcourse.cli, lit_mlcourse.data, lit_mlcourse.models, lit_mlcourse.callbacks")
    lightning = start("lightning.pytorch.cli")
    ours, lightning = loaded(ours), loaded(lightning)
    assert ours <= lightning, f"imported at start-up by lit_mlcourse: {sorted(ours - lightning)}"
    assert {"wandb", "sklearn", "pandas"}.isdisjoint(ours)
