"""`lit` starts no slower than Lightning's own CLI: heavy optional libraries load only when used."""

import subprocess
import sys

HEAVY = ("wandb", "matplotlib", "sklearn", "pandas", "scipy")


def loaded_after(imports: str) -> set[str]:
    code = f"import sys, {imports}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(filter(None, result.stdout.strip().split(",")))


def test_cli_import_loads_no_heavy_library_beyond_lightning():
    ours = loaded_after("lit_mlcourse.cli, lit_mlcourse.data, lit_mlcourse.models, lit_mlcourse.callbacks")
    lightning = loaded_after("lightning.pytorch.cli")
    assert ours <= lightning, f"imported at start-up by lit_mlcourse: {sorted(ours - lightning)}"
    assert {"wandb", "sklearn", "pandas"}.isdisjoint(ours)
