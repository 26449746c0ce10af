"""wandb offline: what a run pushes (the full config, the metrics of every epoch, the pictures), the run id kept
in the run folder and continued by a resumed fit, and one wandb run under DDP (rank 0 logs)."""

import json
import struct
from pathlib import Path

import pytest
from conftest import CONFIGS, run_lit

from lit_mlcourse.cli import main

WANDB = str(CONFIGS / "logger" / "wandb.yaml")


def wandb_records(path: Path) -> list:
    """The records of an offline run's ``run-<id>.wandb`` file: wandb's LevelDB-style log (32 KiB blocks of
    chunks, each with a 7-byte header: crc32c, length, type 1 full / 2 first / 3 middle / 4 last) after the
    7-byte file header ``:W&B``, magic 0xBEE1, version; each record is a protobuf ``Record``. wandb's own reader
    is private and moved into its Go core, so the test reads the documented format itself."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), f"{path} is not a wandb transaction log"
    records, position, pending, block = [], 7, b"", 32768
    while position + 7 <= len(data):
        left = block - position % block
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the zero padding at the end of a block
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        assert len(chunk) == length, f"{path} ends inside a record: wandb is still writing it"
        pending += chunk
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    assert not pending and not data[position:].strip(b"\0"), f"{path} ends inside a record: wandb is still writing it"
    return records


def key_of(item) -> str:
    return item.key or "/".join(item.nested_key)  # wandb stores "val/rmse" as a key or as nested keys


def offline_run(run_dir: Path) -> tuple[Path, dict, list[dict]]:
    """The one offline wandb run under ``run_dir``: its folder, its config and its history rows (JSON values)."""
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one wandb run in {run_dir}, found {runs}"
    records = wandb_records(next(runs[0].glob("run-*.wandb")))
    # Complete once `lit` has returned, in its own process or in this one (wandb.finish alone returned before
    # wandb's service had written the file: main() now waits for it).
    assert records and records[-1].WhichOneof("record_type") == "exit", f"{runs[0]} is not a finished run"
    config, history = {}, []
    for record in records:
        kind = record.WhichOneof("record_type")
        # The config comes as config records, or inside the run record when it was set before the run started
        # (which of the two depends on timing: wandb's writer thread).
        if kind in ("config", "run"):
            updates = record.config.update if kind == "config" else record.run.config.update
            config.update({key_of(item): json.loads(item.value_json) for item in updates})
        elif kind == "history":
            history.append({key_of(item): json.loads(item.value_json) for item in record.history.item})
    return runs[0], config, history


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_an_offline_run_holds_the_full_config_every_epochs_metrics_and_the_pictures(tmp_path, pm25_dir):
    # In this process, read as soon as main() returns: before main() waited for wandb's service to write the run's
    # file, CI twice found it without its config (and once cut inside a record).
    main(["fit", "--config", str(CONFIGS / "pm25_mlp.yaml"), "--config", WANDB, "--data.data_dir", str(pm25_dir),
          "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "3"])  # fmt: skip
    run_dir = tmp_path / "pm25_mlp" / "version_0"
    folder, config, history = offline_run(run_dir)
    # The resolved config of the whole run (data, trainer, checkpointing), not only the model's hyperparameters.
    assert "config" in config, f"no resolved config in {folder}: {sorted(config)}"
    resolved = config["config"]
    assert resolved["data"]["class_path"] == "lit_mlcourse.data.PM25DataModule"
    assert resolved["data"]["init_args"]["data_dir"] == str(pm25_dir)
    assert resolved["trainer"]["max_epochs"] == 3
    assert resolved["model"]["init_args"]["lr_scheduler"]["class_path"] == "lit_mlcourse.schedules.WarmupDecay"
    assert resolved["checkpoint"]["monitor"] == "val/rmse"
    # Every epoch's metrics, equal to the CSV logger's.
    val_rmse = [row["val/rmse"] for row in history if "val/rmse" in row]
    assert len(val_rmse) == 3 and len([row for row in history if "train/loss" in row]) == 3
    csv_rows = (run_dir / "metrics.csv").read_text().splitlines()
    column = csv_rows[0].split(",").index("val/rmse")
    from_csv = [float(row.split(",")[column]) for row in csv_rows[1:] if row.split(",")[column]]
    assert val_rmse == pytest.approx(from_csv, rel=1e-6)
    # The pictures: the prediction-vs-truth plot and the learning-rate schedule, as files of the run.
    pictures = {key.rsplit("/", 1)[0]: json.loads(json.dumps(row[key])) for row in history for key in row
                if key.endswith("/filenames")}  # fmt: skip
    assert set(pictures) == {"val/prediction_vs_truth", "lr_schedule"}
    for filenames in pictures.values():
        assert (folder / "files" / filenames[0]).stat().st_size > 10_000  # a drawn PNG, not an empty canvas
    assert (run_dir / "prediction_vs_truth_val.png").is_file() and (run_dir / "lr_schedule.png").is_file()
    # The run id is kept in the run folder.
    assert folder.name.endswith("-" + (run_dir / "wandb_run_id").read_text().strip())


def test_a_resumed_fit_under_ddp_continues_the_wandb_run_and_only_rank_zero_logs(tmp_path):
    quickstart = ["--config", str(CONFIGS / "quickstart.yaml"), "--config", WANDB,
                  "--trainer.default_root_dir", str(tmp_path), "--trainer.limit_train_batches", "4"]  # fmt: skip
    main(["fit", *quickstart, "--trainer.max_epochs", "1"])
    first = tmp_path / "quickstart" / "version_0"
    run_id = (first / "wandb_run_id").read_text().strip()
    assert len(run_id) == 8 and offline_run(first)[0].name.endswith("-" + run_id)
    # The resumed fit runs in a new run folder, on 2 processes, and continues the same wandb run.
    run_lit("fit", *quickstart, "--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"), "--trainer.max_epochs", "2",
            "--ckpt_path", str(first / "checkpoints" / "last.ckpt"))  # fmt: skip
    second = tmp_path / "quickstart" / "version_1"
    assert (second / "wandb_run_id").read_text().strip() == run_id
    folder, _config, history = offline_run(second)  # one run: rank 1 logged nothing
    assert folder.name.endswith("-" + run_id)
    assert [row["epoch"] for row in history if "val/acc" in row] == [1]  # only the epoch trained after resuming
    assert {"val/confusion_matrix/filenames", "test/confusion_matrix/filenames"} <= {
        key for row in history for key in row
    }
    # A fresh fit (no checkpoint) starts a new wandb run.
    main(["fit", *quickstart, "--trainer.max_epochs", "1"])
    assert (tmp_path / "quickstart" / "version_2" / "wandb_run_id").read_text().strip() != run_id


def test_online_without_a_reachable_server_logs_offline_with_a_warning_instead_of_failing(tmp_path, monkeypatch):
    # wandb itself would retry for 90 s, then fail the run with a traceback (CommError) from inside Lightning.
    import socket

    with socket.socket() as closed:  # a port nobody listens on: connection refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    with pytest.warns(UserWarning, match=rf"wandb: its server http://127.0.0.1:{port} cannot be reached "
                                         r"\(ConnectionRefusedError.*this run logs offline instead"):  # fmt: skip
        main(["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--config", str(CONFIGS / "logger" / "wandb.yaml"),
              "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
              "--test_after_fit", "false", "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    (run_dir,) = tmp_path.glob("quickstart/version_*")
    assert len(list(run_dir.glob("wandb/offline-run-*"))) == 1
