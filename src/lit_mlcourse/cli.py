"""The ``lit`` command: LightningCLI with the DataModule's facts linked into the model, one run folder
per run, a summary after each run, ``lit cv`` (k-fold cross-validation) and the studies ``lit batch-sizes`` and
``lit depths``."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
from jsonargparse import Namespace
from jsonargparse.typing import PositiveInt
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden

import lit_mlcourse.data  # noqa: F401  (registers the DataModules for short names: --data PM25DataModule)
from lit_mlcourse.callbacks.checkpoint import LastAndBestCheckpoint
from lit_mlcourse.callbacks.finite_loss import StopOnNonFiniteLoss
from lit_mlcourse.callbacks.learning_rate import LearningRatePlot
from lit_mlcourse.callbacks.preemption import NotRequeued, PreemptionSignals, StoppedForRequeue
from lit_mlcourse.callbacks.progress import LineProgressBar
from lit_mlcourse.callbacks.resume import ExactResume
from lit_mlcourse.callbacks.run_record import RunRecord
from lit_mlcourse.checkpoint_identity import (
    check_identity,
    check_optimizer_groups,
    check_weights,
    names_class,
    stored_model_class,
)
from lit_mlcourse.checkpoint_safety import CHECKPOINT_KEYWORDS, read_checkpoint
from lit_mlcourse.checkpoints import AtomicCheckpointIO
from lit_mlcourse.config_checks import check_values, choose_checkpoint_monitor, explain_parse_error, import_class
from lit_mlcourse.config_saving import SaveRunConfig
from lit_mlcourse.cross_validation import run_cross_validation
from lit_mlcourse.elastic import isolate_restarted_attempt, record_error
from lit_mlcourse.errors import ConfigValueError, UserInputError
from lit_mlcourse.import_policy import enforce_import_policy, explain_denied_import
from lit_mlcourse.models.base import TaskModule
from lit_mlcourse.nets.torchvision_net import weights_from_checkpoint
from lit_mlcourse.runs import as_plain, choose_run_folder, fill_run_folder, finish_wandb_run, keep_csv_metrics
from lit_mlcourse.studies.batch_size import run_batch_size_study
from lit_mlcourse.studies.depth import run_depth_study
from lit_mlcourse.summary import print_summary, run_summary, write_json

# What a DataModule knows and a model needs, linked by name: a user never types these twice.
DATA_FACTS = ("num_classes", "image_shape", "class_names", "input_shape", "input_hours", "standardization")
# Facts a model can do without (it falls back to a default when the data does not provide them).
OPTIONAL_FACTS = ("class_names",)
RUN_FOLDER = {"save_dir": "{default_root_dir}", "name": "{name}", "version": "{version}"}
# `--optimizer X` and `--lr_scheduler X` are short for the model's injected factories.
ALIASES = {"--optimizer": "--model.optimizer", "--lr_scheduler": "--model.lr_scheduler"}
# Subcommands that are methods of LitCLI (by method name), not of the Trainer: each trains several runs in one
# process, instantiating its own model, data and trainer per run.
MULTI_RUN = {"cv": "cv", "batch-sizes": "batch_sizes", "depths": "depths"}


class LitArgumentParser(LightningArgumentParser):
    """Parse errors as one message naming the key, where it was set and the closest valid key,
    instead of the full usage text."""

    # The arguments being parsed (the command line, or the list given to main()), to locate bad keys.
    current_args: ClassVar[list[str]] = []

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        denied = explain_denied_import(message, self.current_args)
        if denied is not None:
            sys.stderr.write(f"{prog}: error: {denied}\n")
            sys.exit(2)
        explained = explain_parse_error(message, self.current_args, _all_keys(self))
        sys.stderr.write(f"{prog}: error: {explained}\n")
        sys.stderr.write(f"Run `{prog} --help` for the accepted options.\n")
        sys.exit(2)


class LitCLI(LightningCLI):
    """``lit fit | validate | test | predict | cv | batch-sizes | depths`` over the models and DataModules of this
    package (or any others given by ``class_path``)."""

    def __init__(self, args: ArgsType = None, run: bool = True, **kwargs: Any) -> None:
        trainer_defaults = {
            "default_root_dir": "runs",
            # Both loggers write into one run folder; runs.fill_run_folder fills in the placeholders.
            "logger": [
                {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": RUN_FOLDER},
                {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {**RUN_FOLDER, "default_hp_metric": False},
                },
            ],
        }
        enforce_import_policy()  # before any value is parsed: a config names only allowed code
        # The subcommand asked for, when the arguments name one: only its parser is built in full.
        self._requested = set(sys.argv[1:] if args is None else args if isinstance(args, list) else [])
        kwargs.setdefault("trainer_defaults", trainer_defaults)
        kwargs.setdefault("seed_everything_default", 42)
        kwargs.setdefault("save_config_callback", SaveRunConfig)
        super().__init__(
            TaskModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=LitArgumentParser,
            auto_configure_optimizers=False,
            args=args,
            run=run,
            **kwargs,
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # No abbreviations: `--trainer.max_epoch` must be an error, not a silent `--trainer.max_epochs`.
        kwargs.setdefault("allow_abbrev", False)
        program = Path(sys.argv[0]).name
        kwargs.setdefault("prog", program if program.startswith("lit") else "lit")
        kwargs.setdefault("description", "Train, evaluate and cross-validate the course's tasks from YAML configs.")
        return super().init_parser(**kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), **{name: set() for name in MULTI_RUN}}

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        # Lightning builds each subcommand from the Trainer method of the same name; `cv` and the studies are
        # methods of this class, so their parsers are built here from those methods' signatures. Building a full parser
        # takes ~0.2 s, so the subcommands not asked for get an empty one (enough for `lit --help`).
        self._subcommand_parsers = {}
        subcommands = parser.add_subcommands()
        wanted = {name for name in self.subcommands() if name in self._requested}
        for name in self.subcommands():
            owner = type(self) if name in MULTI_RUN else self.trainer_class
            method = MULTI_RUN.get(name, name)
            description = inspect.getdoc(getattr(owner, method)).split("\n")[0]
            sub_parser = self.init_parser(**kwargs.get(name, {"description": description}))
            if name not in wanted:
                subcommands.add_subcommand(name, sub_parser, help=description)
                continue
            self._add_arguments(sub_parser)
            skip = {"self", *self.subcommands()[name]}
            self._subcommand_method_arguments[name] = sub_parser.add_method_arguments(owner, method, skip=skip)
            if "verbose" in self._subcommand_method_arguments[name]:
                sub_parser.set_defaults(verbose=False)  # the run summary shows the metrics
            self._subcommand_parsers[name] = sub_parser
            subcommands.add_subcommand(name, sub_parser, help=description)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--name",
            type=str | None,
            default=None,
            help="Experiment name; the run folder is <trainer.default_root_dir>/<name>/version_<N> "
            "(default: the stem of the first --config file).",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After `fit`, test the best checkpoint when the DataModule has a test set.",
        )
        parser.add_lightning_class_args(LastAndBestCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.mode": None,  # from the task, or inferred from checkpoint.monitor
            }
        )
        for fact in DATA_FACTS:
            # as_plain: tuples become lists, so hparams.yaml stays plain (safe-loadable) YAML
            parser.link_arguments(
                f"data.{fact}", f"model.init_args.{fact}", compute_fn=as_plain, apply_on="instantiate"
            )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        if args is None or isinstance(args, list):
            args = [_expand_alias(arg) for arg in (sys.argv[1:] if args is None else args)]
            LitArgumentParser.current_args = args
        self.config = parser.parse_object(args) if isinstance(args, (dict, Namespace)) else parser.parse_args(args)

    @property
    def run_config(self) -> Namespace:
        """The parsed config of the running subcommand."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the checkpoint's hyperparameters into the config here: first refuse a URL, pickled code,
        # or a model class outside the import policy, naming the file.
        subcommand = self.config.get("subcommand")  # self.subcommand is not set yet
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._checkpoint = None
        if not path or path in CHECKPOINT_KEYWORDS:
            super()._parse_ckpt_path()
            return
        self._checkpoint = read_checkpoint(path)
        model = self.config[subcommand].get("model")
        configured = model.get("class_path") if isinstance(model, Namespace) else None
        if configured and not names_class(stored_model_class(self._checkpoint), import_class(configured)):
            # Lightning would make the checkpoint's model class the run's: keep the configured one, which
            # _check_checkpoint_matches_data then compares with the checkpoint, naming both.
            return
        self._apply_checkpoint_hyperparameters(subcommand)

    def _apply_checkpoint_hyperparameters(self, subcommand: str) -> None:
        """LightningCLI._parse_ckpt_path on the checkpoint already read: the model's arguments become the
        checkpoint's (its architecture), without reading the file a second time."""
        hparams = dict(self._checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")
            raise

    def before_instantiate_classes(self) -> None:
        config = self.run_config
        try:
            check_values(config, LitArgumentParser.current_args)
            # `fit` in a requeued SLURM job continues the run of the job's first attempt (runs.requeued_run).
            self.run_dir = choose_run_folder(config, resumable=self.subcommand == "fit")
            choose_checkpoint_monitor(config.checkpoint, import_class(config.model.class_path))
        except ConfigValueError as error:
            self.parser.error(str(error))

    def instantiate_classes(self) -> None:
        if self.subcommand in MULTI_RUN:
            return  # every fold or study run instantiates its own model, data and trainer
        self.instantiate_run(self.run_config, self.run_dir)

    def instantiate_run(self, config: Namespace, run_dir: Path) -> L.Trainer:
        """Model, data and trainer from ``config`` (the running subcommand's config, or a variant of it
        such as one fold's), writing into ``run_dir``."""
        if self.subcommand:
            self.config[self.subcommand] = config  # what config.yaml and the checkpoints' hparams record
        self.__dict__.pop("config_dump", None)
        resolved = self.config.clone()
        fill_run_folder(resolved[self.subcommand] if self.subcommand else resolved, run_dir, self.subcommand == "fit")
        # A checkpoint to load holds every weight: pretrained weights named in the config are not fetched.
        restoring = weights_from_checkpoint() if config.get("ckpt_path") else contextlib.nullcontext()
        with restoring:
            self.config_init = self.parser.instantiate_classes(resolved)
        self.datamodule = self._get(self.config_init, "data")
        self.model = self._get(self.config_init, "model")
        self._check_data_facts()
        # Build the optimizer and schedule once now: a bad argument fails before any run folder exists.
        optimizer = self.model.build_optimizer()
        if self.model.make_lr_scheduler is not None:
            self.model.make_lr_scheduler(optimizer)
        # A checkpoint of another model or other data is refused here, before the trainer (and its run folder) exists.
        self._checkpoint = self._check_checkpoint_matches_data(optimizer)
        self.trainer = self.instantiate_trainer()
        return self.trainer

    def _check_data_facts(self) -> None:
        missing = [
            fact
            for fact in DATA_FACTS
            if fact not in OPTIONAL_FACTS
            and fact in inspect.signature(type(self.model).__init__).parameters
            and not hasattr(self.datamodule, fact)
        ]
        if missing:
            raise ConfigValueError(
                f"{type(self.model).__name__} needs {', '.join(missing)} from the data, but "
                f"{type(self.datamodule).__name__} does not provide it: pair the model with a DataModule of its task."
            )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        config = self.model.adapt_trainer_config({**self._get(self.config_init, "trainer", default={}), **kwargs})
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        if config.get("enable_checkpointing") is False:
            extra = [callback for callback in extra if not isinstance(callback, ModelCheckpoint)]
        given = [*(config.get("callbacks") or []), *extra]
        plugins = config.get("plugins")
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [] if plugins is None else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]  # no partial checkpoint after a kill or a full disk
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
            # Rich in a terminal; one plain line per epoch in log files (CI, SLURM), where a
            # redrawing bar only leaves carriage-return noise.
            extra.append(RichProgressBar() if sys.stdout.isatty() else LineProgressBar())
        # exact resumes; no NaN reaches the weights; each checkpoint records what it was trained on, and how; SIGTERM
        # and SLURM's requeue signal acted on by every process at the same step
        for default in (ExactResume(), StopOnNonFiniteLoss(), RunRecord(), PreemptionSignals()):
            if not any(isinstance(callback, type(default)) for callback in given):
                extra.append(default)
        if config.get("logger") not in (None, False, []):
            # The rate at every step as scalars, and the whole schedule as one picture.
            for default in (LearningRateMonitor(logging_interval="step"), LearningRatePlot()):
                if not any(isinstance(callback, type(default)) for callback in given):
                    extra.append(default)
        # The task's own side effects (a confusion matrix, a prediction writer: predictions are never computed
        # for nothing), unless the config already has a callback of the same kind.
        for default in self.model.default_callbacks(self.subcommand):
            kind = BasePredictionWriter if isinstance(default, BasePredictionWriter) else type(default)
            if not any(isinstance(callback, kind) for callback in given):
                extra.append(default)
        return self._instantiate_trainer(config, extra)

    def before_fit(self) -> None:
        checkpoint = getattr(self, "_checkpoint", None)  # checked by instantiate_run
        if checkpoint is not None and self.trainer.is_global_zero:
            # A run resumed in its own folder (a requeued SLURM job, a logger with a fixed version) keeps its metrics.
            keep_csv_metrics(self.trainer.loggers, checkpoint.get("global_step", 0))

    def before_test(self) -> None:
        if not _has_test_set(self.datamodule):
            raise ConfigValueError(
                f"{type(self.datamodule).__name__} has no labelled test set: use `lit validate` to evaluate a "
                "checkpoint on the validation data, or `lit predict` for predictions."
            )

    def _check_checkpoint_matches_data(self, optimizer: Any) -> dict[str, Any] | None:
        """A checkpoint of another model class, DataModule or dataset (checkpoint_identity), trained on other
        inputs (another feature set, window, class count), holding other weights, or (for fit) the state of an
        optimizer over other parameter groups is refused with both sides named, instead of an error deep in
        Lightning's restore. Returns the checkpoint, if a file is given."""
        path = self.run_config.get("ckpt_path")
        checkpoint = getattr(self, "_checkpoint", None)  # read by _parse_ckpt_path
        if checkpoint is None and path and Path(path).is_file():  # chosen later: `last`, a requeued SLURM job's
            checkpoint = read_checkpoint(path)
        if checkpoint is None:
            return None
        check_identity(path, checkpoint, self.model, self.datamodule, self.subcommand)
        stored = checkpoint.get("hyper_parameters", {})
        for fact in DATA_FACTS:
            if fact == "standardization" or fact not in stored or fact not in self.model.hparams:
                continue
            if as_plain(stored[fact]) != as_plain(self.model.hparams[fact]):
                raise ConfigValueError(
                    f"{path} was trained with {fact}={as_plain(stored[fact])}, but the data now gives "
                    f"{fact}={as_plain(self.model.hparams[fact])}: use the config the checkpoint was trained "
                    "with (config.yaml in its run folder)."
                )
        check_weights(path, checkpoint, self.model, self.subcommand)
        if self.subcommand == "fit":
            check_optimizer_groups(path, checkpoint, optimizer)
        return checkpoint

    def after_fit(self) -> None:
        metrics = dict(self.trainer.callback_metrics)
        requeued = any(getattr(callback, "requeued", False) for callback in self.trainer.callbacks)
        if requeued:  # SLURM ends the job within its warning time: the requeued job tests when it finishes
            rank_zero_info("lit: not testing: the job was stopped for SLURM's requeue")
        elif self.run_config.test_after_fit and not self.trainer.interrupted and _has_test_set(self.datamodule):
            best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
            tested = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)
            for results in tested:
                metrics.update(results)
        self._summarize("fit", metrics)
        for callback in self.trainer.callbacks:
            if isinstance(callback, PreemptionSignals) and callback.requeue_failure:
                raise NotRequeued(
                    f"{callback.requeue_failure}; the job ends here: resubmit it with --ckpt_path "
                    f"{callback.requeue_checkpoint}"
                )

    def after_validate(self) -> None:
        self._summarize("validate", dict(self.trainer.callback_metrics))

    def after_test(self) -> None:
        self._summarize("test", dict(self.trainer.callback_metrics))

    def _summarize(self, stage: str, metrics: dict[str, Any]) -> dict[str, Any]:
        summary = run_summary(self.trainer, metrics, self.run_config.get("ckpt_path"))
        if self.trainer.is_global_zero:
            write_json(Path(summary["run_dir"]) / "summary.json", summary)
            print_summary(f"lit {stage}: {self.run_config.name}", summary)
        return summary

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            if subcommand in MULTI_RUN:
                arguments = {key: self.run_config[key] for key in self._subcommand_method_arguments[subcommand]}
                getattr(self, MULTI_RUN[subcommand])(**arguments)
            else:
                super()._run_subcommand(subcommand)
        except SIGTERMException as stop:
            stop.subcommand = subcommand  # for main's advice: only `fit` resumes from last.ckpt
            raise

    def cv(self, folds: PositiveInt = 5) -> dict[str, Any]:
        """Cross-validate: train one model per fold of the data and report the monitored metric.

        Args:
            folds: number of folds K; fold k validates on the k-th part and trains on the rest.
        """
        return run_cross_validation(self, folds)

    def batch_sizes(self, sizes: list[int], lr_scaling: str = "sqrt") -> list[dict[str, Any]]:
        """Batch-size study: train the config at each batch size and compare time, fit and sharpness.

        Every run has the same seed and epochs, goes into <run folder>/batch_<b>, and measures the training time
        per epoch and per update, the final train and val loss and metric, and the sharpness (largest Hessian
        eigenvalue) at the end. Writes batch_sizes.csv and batch_sizes.png in the run folder.

        Args:
            sizes: batch sizes to train with, e.g. '[8, 32, 128, 512]'.
            lr_scaling: learning rate at batch size b, from the config's rate lr at its batch size b0: none (lr),
                linear (lr * b / b0, for SGD) or sqrt (lr * sqrt(b / b0), for Adam).
        """
        return run_batch_size_study(self, sizes, lr_scaling)

    def depths(self, depths: list[int], tolerance: float = 0.01) -> list[dict[str, Any]]:
        """Depth study: train the MLP with 1, 2, ... hidden layers and tell model bias from optimization trouble.

        Each depth d trains hidden = [w] * d (w: the config's first hidden width) into <run folder>/depth_<d> and
        reports its best train and val loss (with their epochs) and parameter count; a deeper model whose best
        train loss is worse than a shallower one's is flagged. Writes depths.csv, depths.txt and depths.png.

        Args:
            depths: numbers of hidden layers to train, e.g. '[1, 2, 4, 8]'.
            tolerance: relative margin before a deeper model's higher train loss is flagged (0.01: 1%).
        """
        return run_depth_study(self, depths, tolerance)


def _expand_alias(arg: str) -> str:
    for short, full in ALIASES.items():
        if arg == short or arg.startswith((f"{short}.", f"{short}=")):
            return full + arg[len(short) :]
    return arg


def _all_keys(parser: Any) -> list[str]:
    """Every option key of ``parser`` and of its subcommand parsers (``trainer.max_epochs``, ...)."""
    keys = []
    for action in parser._actions:
        keys.append(action.dest)
        for sub_parser in getattr(action, "_name_parser_map", {}).values():
            keys.extend(_all_keys(sub_parser))
    return keys


def _has_test_set(datamodule: L.LightningDataModule | None) -> bool:
    return (
        datamodule is not None
        and is_overridden("test_dataloader", datamodule, L.LightningDataModule)
        and getattr(datamodule, "has_test_set", True)  # an image folder without test/, say
    )


class _HideTips(logging.Filter):
    """Lightning advertises its cloud logger on every run; the advert is noise in course logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip" not in record.getMessage()


_HIDE_TIPS = _HideTips()


def main(args: ArgsType = None) -> None:
    """Entry point of ``lit`` and ``lit-mlcourse``. Bad input ends with its message and exit status 2
    (set LIT_MLCOURSE_DEBUG=1 for the traceback)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_HIDE_TIPS)  # a no-op when already added
    # Raised inside Lightning under torch >= 2.10; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    failed, caller_run = True, _open_wandb_run()
    try:
        isolate_restarted_attempt()
        LitCLI(args=args)
        failed = False
    except SIGTERMException as stop:  # stopped after the running batch (callbacks.preemption saved last.ckpt)
        # Stopping already: a scheduler's later SIGTERM must not kill the process with -15 while it exits (Python's
        # finalisation puts back the default action of any signal whose handler it set, but not of an ignored one).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fit = getattr(stop, "subcommand", None) == "fit"
        sys.stderr.write(f"lit: stopped by SIGTERM; {'continue with --ckpt_path last' if fit else 'run it again'}\n")
        sys.exit(128 + signal.SIGTERM)
    except NotRequeued as error:  # the checkpoint is saved; only the requeue failed
        sys.stderr.write(f"lit: SLURM's requeue signal: {error}\n")
        sys.exit(1)
    except StoppedForRequeue as stop:
        failed = False
        sys.stderr.write(f"lit: SLURM's requeue signal: {stop}\n")
    except Exception as error:
        record_error(error)
        cause = _user_input_error(error)
        if cause is None or os.environ.get("LIT_MLCOURSE_DEBUG"):
            raise
        sys.stderr.write(f"lit: error: {cause}\n")
        sys.exit(2)
    finally:
        try:
            # The wandb run this command opened, marked failed when it failed. Left to the interpreter's exit, it
            # stays open in a notebook or test that calls main() again: the next command's WandbLogger would log
            # into it. A run the caller had open before is the caller's.
            run = _open_wandb_run()
            if run is not None and run is not caller_run:
                finish_wandb_run(run, exit_code=1 if failed else 0)
        finally:
            _end_process_group()


def _open_wandb_run() -> Any:
    wandb = sys.modules.get("wandb")  # never imported here: only a run that logs to wandb has loaded it
    return getattr(wandb, "run", None) if wandb is not None else None


def _end_process_group() -> None:
    """Close the DDP process group before the interpreter exits: left to shutdown, gloo's threads can be
    destroyed while running, and the process aborts ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _user_input_error(error: BaseException | None) -> UserInputError | None:
    """The UserInputError behind ``error``: jsonargparse wraps errors raised while it instantiates a
    class (a DataModule reading its files, say) in its own ValueError."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserInputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


if __name__ == "__main__":
    main()
