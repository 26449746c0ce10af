"""Frozen networks that score a GAN's images without downloads: their features for FID, their class
probabilities for the Inception-style score, their classes for mode coverage.

Two kinds, told apart by the file the user names:

- a classifier checkpoint of this package (``best.ckpt`` of an ``ImageClassifier`` run on the same images);
- the Inception-v3 weights FID is defined with (torch-fidelity's ``pt_inception-2015-12-05-6726825d.pth``),
  from a local path: the published FID and Inception Score, comparable with papers.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from torch import nn

from lit_mlcourse.checkpoint_safety import check_named_code
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError

INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS}"


class Judge(nn.Module):
    """A frozen network that takes images as floats in ``[0, 1]``.

    ``forward`` gives class logits (the Inception-style score), ``features`` what FID compares; ``num_classes``
    is the number of the data's classes it tells apart, or ``None`` when its classes are not the data's (Inception's
    ImageNet classes): then the share of each class among the samples means nothing and is not reported."""

    name: str
    num_classes: int | None

    def train(self, mode: bool = True) -> "Judge":
        return super().train(False)  # always judged in eval mode (the batch-norm statistics of its training)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class JudgeFeatures(nn.Module):
    """The judge's features as a module, the form torchmetrics' FID takes (a view of the same frozen network)."""

    def __init__(self, judge: Judge) -> None:
        super().__init__()
        self.judge = judge

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.judge.features(images)


class ClassifierJudge(Judge):
    """An image classifier of this package: its penultimate features and its logits."""

    def __init__(
        self, checkpoint: str | Path, image_shape: Sequence[int], normalization: Sequence[Sequence[float]] | None = None
    ) -> None:
        super().__init__()
        from lit_mlcourse.models.classification import ImageClassifier
        from lit_mlcourse.nets.torchvision_net import weights_from_checkpoint

        path = Path(checkpoint)
        # Inside `lit`, LightningCLI builds the GAN in a context that hands its own config to every
        # save_hyperparameters() call: the classifier built here would take the GAN's hyperparameters as its own.
        token = _given_hyperparameters.set(None)
        try:
            with weights_from_checkpoint():
                classifier = ImageClassifier.load_from_checkpoint(path, map_location="cpu")
        except Exception as error:  # not a classifier checkpoint of this package
            raise ConfigValueError(
                f"model.judge: {path} is not an image classifier checkpoint of this package ({error})."
            ) from None
        finally:
            _given_hyperparameters.reset(token)
        if list(classifier.hparams.image_shape) != list(image_shape):
            raise ConfigValueError(
                f"model.judge: {path} classifies images of shape {list(classifier.hparams.image_shape)}, the data "
                f"gives {list(image_shape)}: use a judge trained on the same images."
            )
        # [0, 1] images -> what the classifier was trained on (identity for the digits).
        mean, std = normalization if normalization is not None else ([0.0], [1.0])
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[:, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[:, None, None], persistent=False)
        self.name = f"classifier {path}"
        self.classifier = classifier.net.eval().requires_grad_(False)
        self.num_classes = int(classifier.hparams.num_classes)

    def standardize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(self.standardize(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [0, 1] -> (B, classes) logits
        return self.classifier(self.standardize(images))


class InceptionJudge(Judge):
    """Inception-v3 as FID and the Inception Score define it: torch-fidelity's port of the TensorFlow graph,
    with its TensorFlow-compatible resize to 299x299 (torchmetrics' FID with ``antialias=False``). 2048 pooled
    features for FID, the 1008 unbiased logits for the score; grey images are repeated to three channels."""

    num_classes = None  # ImageNet's classes, not the data's
    num_features = 2048  # read by torchmetrics' FID instead of a trial forward pass at 299x299

    def __init__(self, weights: str | Path, image_shape: Sequence[int]) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        if image_shape[0] not in (1, 3):
            raise ConfigValueError(
                f"model.judge: Inception judges grey or RGB images; the data gives {image_shape[0]} channels."
            )
        # torch-fidelity loads the file with weights_only=False; the caller has already checked that it holds
        # nothing but tensors, so no code can run from it.
        self.network = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights)
        )
        self.name = f"inception-v3 {weights}"
        self._last: tuple[torch.Tensor, int, tuple[torch.Tensor, torch.Tensor]] | None = None

    def _outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # FID's update and the score's update pass the same chunk in turn: one pass of the network serves both.
        # The cache holds the tensor itself (compared by identity and version), so a new one can never match.
        cached = self._last
        if cached is None or cached[0] is not images or cached[1] != images._version:
            # torchmetrics' conversion of [0, 1] floats (truncation to bytes), so the scores equal its own.
            outputs = self.network((images.expand(-1, 3, -1, -1) * 255).byte())
            self._last = cached = (images, images._version, outputs)
        return cached[2]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self._outputs(images)[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._outputs(images)[1]


def load_judge(
    path: str | Path, image_shape: Sequence[int], normalization: Sequence[Sequence[float]] | None = None
) -> Judge:
    """The judge in ``path``: a classifier checkpoint of this package, or Inception-v3's weights."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(
            f"model.judge: {path} does not exist: train the judge first, e.g. `lit fit --config "
            "configs/quickstart.yaml` and give its checkpoints/best.ckpt; or give the Inception-v3 weights "
            f"{INCEPTION_WEIGHTS} (from {INCEPTION_WEIGHTS_URL}) as a local file."
        )
    try:  # tensors and plain containers only: a file from elsewhere cannot run code here
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigValueError(
            f"model.judge: {path} cannot be read as tensors only ({type(error).__name__}: {str(error)[:300]}); "
            "a judge is a classifier checkpoint of this package or the Inception-v3 weights."
        ) from None
    if isinstance(payload, dict) and "state_dict" in payload:
        # Loading it instantiates the model class its hyperparameters name: refuse code outside the import policy.
        check_named_code(path, payload.get("hyper_parameters") or {}, "model.judge")
        return ClassifierJudge(path, image_shape, normalization)
    if isinstance(payload, dict) and "Mixed_7c.branch_pool.conv.weight" in payload:
        if normalization is not None:
            raise ConfigValueError(
                "model.judge_normalization applies to classifier judges; Inception scales images itself: remove it."
            )
        return InceptionJudge(path, image_shape)
    raise ConfigValueError(
        f"model.judge: {path} is neither a classifier checkpoint of this package (it has no state_dict) nor the "
        f"Inception-v3 weights {INCEPTION_WEIGHTS} (it has no Mixed_7c layer)."
    )
