"""Nothing a config or a checkpoint names runs unless it is allowed (RELIABILITY.md rows 10, 11, 13): each bad input
ends with exit status 2, an error naming the file or the value, no run folder, and no sign that the code ran."""

import http.server
import os
import threading

import pytest
import torch
from conftest import CONFIGS

from lit_mlcourse.cli import main
from lit_mlcourse.import_policy import ALLOW_ENV

EVIL_MODULE = """
from pathlib import Path
from lightning.pytorch.callbacks import Callback
Path({sentinel!r}).write_text("imported")  # the side effect of importing this module


class Noop(Callback):
    pass
"""


class PickledCommand:
    """A pickle payload that runs a shell command when unpickled."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    """A file that only code run by a bad input would create; ``evil_module`` (importable) creates it on import."""
    path = tmp_path / "sentinel"
    (tmp_path / "evil_module.py").write_text(EVIL_MODULE.format(sentinel=str(path)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    yield path
    assert not (tmp_path / "runs").exists(), "a run folder was made for a refused input"


def lit_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def quickstart(tmp_path, subcommand: str = "fit", *args: str) -> list[str]:
    return [subcommand, "--config", str(CONFIGS / "quickstart.yaml"),
            "--trainer.default_root_dir", str(tmp_path / "runs"), *args]  # fmt: skip


@pytest.mark.parametrize(
    ("layer", "named", "line"),
    [("model:\n  class_path: os.system\n", "os.system", 2),
     ("trainer:\n  callbacks:\n    - class_path: subprocess.Popen\n      init_args:\n"
      "        args: [touch, {sentinel}]\n", "subprocess.Popen", 3),
     ("trainer:\n  callbacks:\n    - class_path: evil_module.Noop\n", "evil_module.Noop", 3),
     ("model:\n  init_args:\n    optimizer: torch.hub.load\n", "torch.hub.load", 3)],
    ids=["os.system as the model", "subprocess.Popen as a callback", "a module that runs code on import",
         "a loader inside torch as the optimizer"],
)  # fmt: skip
def test_a_config_naming_code_outside_the_allowlist_is_refused_unimported(
    tmp_path, capsys, sentinel, layer, named, line
):
    config = tmp_path / "bad.yaml"
    config.write_text(layer.format(sentinel=sentinel))
    err = lit_error(capsys, *quickstart(tmp_path, "fit", "--config", str(config)))
    assert f"'{named}' ({config}:{line}) is not importable from a config" in err
    assert f"{ALLOW_ENV}=<module>" in err
    assert not sentinel.exists()


def test_a_callable_on_the_command_line_is_refused(tmp_path, capsys, sentinel):
    err = lit_error(capsys, *quickstart(tmp_path, "fit", "--optimizer", "os.system"))
    assert "'os.system' (the command line) is not importable from a config" in err


def test_the_user_allows_their_own_module_by_name(tmp_path, capsys, sentinel, monkeypatch):
    args = quickstart(tmp_path, "fit", "--trainer.callbacks+=evil_module.Noop", "--print_config")
    err = lit_error(capsys, *args)
    assert "'evil_module.Noop' (the command line) is not importable" in err and not sentinel.exists()
    monkeypatch.setenv(ALLOW_ENV, "evil_module")
    with pytest.raises(SystemExit) as exit_info:  # --print_config prints and exits 0
        main(args)
    assert exit_info.value.code == 0 and "class_path: evil_module.Noop" in capsys.readouterr().out
    assert sentinel.exists()  # allowed, so imported: the refusals above are the policy's doing
    sentinel.unlink()


@pytest.fixture(scope="module")
def real_checkpoint(judge_checkpoint):
    """A quick-start checkpoint's contents (loaded safely), to tamper with."""
    return torch.load(judge_checkpoint, map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [(lambda c: {**c, "extra": PickledCommand("touch {sentinel}")}, "holds pickled code (posix.system)"),
     (lambda c: {**c, "hyper_parameters": {**c["hyper_parameters"], "_instantiator": "os.system"}},
      "names code to run in its hyper_parameters ('_instantiator': 'os.system')"),
     (lambda c: {**c, "hyper_parameters": {**c["hyper_parameters"], "_class_path": "evil_module.Noop"}},
      "names the model class 'evil_module.Noop' in its hyper_parameters")],
    ids=["a pickle that runs a command", "an instantiator that runs a command", "a model class from elsewhere"],
)  # fmt: skip
@pytest.mark.parametrize("subcommand", ["fit", "predict"])
def test_a_checkpoint_naming_code_is_refused_before_loading_it(
    tmp_path, capsys, sentinel, real_checkpoint, tamper, expected, subcommand
):
    checkpoint = tamper(real_checkpoint)
    if "extra" in checkpoint:
        checkpoint["extra"].command = checkpoint["extra"].command.format(sentinel=sentinel)
    path = tmp_path / "evil.ckpt"
    torch.save(checkpoint, path)
    err = lit_error(capsys, *quickstart(tmp_path, subcommand, "--ckpt_path", str(path)))
    assert f"ckpt_path: {path} {expected}" in err
    assert not sentinel.exists()


def test_a_checkpoint_url_is_refused_without_contacting_the_server(tmp_path, capsys, sentinel, real_checkpoint):
    torch.save({**real_checkpoint, "extra": PickledCommand(f"touch {sentinel}")}, tmp_path / "x.ckpt")
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            requests.append(args)

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/x.ckpt"
        err = lit_error(capsys, *quickstart(tmp_path, "fit", "--ckpt_path", url))
    finally:
        server.shutdown()
    assert f"ckpt_path: {url} is a URL: lit loads checkpoints from local files only" in err
    assert requests == [] and not sentinel.exists()


def test_a_missing_checkpoint_is_named_before_any_run_folder(tmp_path, capsys, sentinel):
    err = lit_error(capsys, *quickstart(tmp_path, "validate", "--ckpt_path", str(tmp_path / "gone.ckpt")))
    assert f"ckpt_path: {tmp_path / 'gone.ckpt'} does not exist" in err


def test_a_judge_checkpoint_naming_a_model_class_from_elsewhere_is_refused(tmp_path, capsys, sentinel, real_checkpoint):
    path = tmp_path / "judge.ckpt"
    torch.save({**real_checkpoint, "hyper_parameters": {**real_checkpoint["hyper_parameters"],
                                                        "_class_path": "evil_module.Noop"}}, path)  # fmt: skip
    args = ["fit", "--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", str(path),
            "--trainer.default_root_dir", str(tmp_path / "runs")]  # fmt: skip
    err = lit_error(capsys, *args)
    assert f"model.judge: {path} names the model class 'evil_module.Noop' in its hyper_parameters" in err
    assert not sentinel.exists()


def test_a_backbone_checkpoint_holding_code_is_refused_unread(tmp_path, capsys, sentinel, real_checkpoint):
    path = tmp_path / "backbone.ckpt"
    torch.save({**real_checkpoint, "extra": PickledCommand(f"touch {sentinel}")}, path)
    err = lit_error(capsys, "fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt",
                    str(path), "--trainer.default_root_dir", str(tmp_path / "runs"))  # fmt: skip
    assert f"model.backbone_ckpt: {path} holds pickled code (posix.system)" in err
    assert not sentinel.exists()
