"""RELIABILITY row 26's safety items: a SLURM job id that is not a number is refused before anything runs (Lightning
would hand it to `scontrol requeue`), and the checkpoints saved on SLURM's signal do not pile up."""

import pytest
import torch
from conftest import CONFIGS, lit_in_process

from lit_mlcourse.checkpoints import AtomicCheckpointIO

SLURM = {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
         "SLURM_JOB_NAME": "lit", "SLURM_NODELIST": "localhost"}  # fmt: skip


@pytest.mark.parametrize("variable", ["SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID"])
def test_a_job_id_that_is_not_a_number_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, variable):
    sentinel = tmp_path / "pwned"
    for name, value in {**SLURM, "SLURM_JOB_ID": "4242", variable: f"4242;touch {sentinel}"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        lit_in_process("fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.default_root_dir",
                       str(tmp_path / "runs"))  # fmt: skip
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"lit: error: {variable}='4242;touch {sentinel}' is not a SLURM job id (digits only): refused" in error
    assert not sentinel.exists() and not (tmp_path / "runs").exists()


def test_a_new_hpc_checkpoint_replaces_the_older_ones_once_it_is_written(tmp_path):
    io = AtomicCheckpointIO()
    state = {"state_dict": {"w": torch.ones(2)}}
    for name in ("hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt", "last.ckpt", "hpc_ckpt_notes.ckpt"):
        io.save_checkpoint(state, tmp_path / name)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hpc_ckpt_2.ckpt", "hpc_ckpt_notes.ckpt", "last.ckpt"]
    io.save_checkpoint(state, tmp_path / "hpc_ckpt_3.ckpt")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hpc_ckpt_3.ckpt", "hpc_ckpt_notes.ckpt", "last.ckpt"]
    assert torch.equal(torch.load(tmp_path / "hpc_ckpt_3.ckpt", weights_only=True)["state_dict"]["w"], torch.ones(2))
