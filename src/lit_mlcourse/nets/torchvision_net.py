"""Any torchvision classification model by name, optionally with pretrained weights, split into features and head."""

import contextlib
import contextvars
import difflib
import os
from collections.abc import Iterator
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from lit_mlcourse.downloads import require_online
from lit_mlcourse.errors import ConfigValueError


def _model_names() -> list[str]:
    # module=torchvision.models: the classification models only (not detection, segmentation, video, ...).
    return torchvision.models.list_models(module=torchvision.models)


def _check_name(name: str) -> None:
    names = _model_names()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid names: {', '.join(names)}"
    raise ConfigValueError(f"unknown torchvision model name {name!r}; {hint}")


def _resolve_weights(name: str, weights: str) -> torchvision.models.WeightsEnum:
    """The weights enum member named ``weights`` ("DEFAULT", "IMAGENET1K_V1" or "ResNet18_Weights.IMAGENET1K_V1")."""
    enum = torchvision.models.get_model_weights(name)
    key = weights.removeprefix(f"{enum.__name__}.")
    if key not in enum.__members__:  # __members__ includes the alias DEFAULT
        raise ConfigValueError(
            f"torchvision model {name!r} has no weights {weights!r}; valid weights: {', '.join(enum.__members__)}"
        )
    return enum[key]


def _require_weight_file(weights: torchvision.models.WeightsEnum) -> None:
    """Fail fast, with the place to put the file, when the weights are neither cached nor downloadable."""
    # Where torchvision's load_state_dict_from_url looks first (torch.hub.get_dir() follows $TORCH_HOME).
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))
    if not os.path.isfile(path):
        require_online(
            weights.url,
            missing=f"the {weights} weights are not in {path}",
            instead=f"download {weights.url} on a machine with internet access and copy it to {path}",
        )


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    # The classifier is the last nn.Linear registered: fc (ResNet, RegNet), classifier[-1] (VGG, MobileNet,
    # EfficientNet), classifier[2] (ConvNeXt), head (Swin), heads.head (ViT).
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigValueError(f"torchvision model {type(model).__name__} has no nn.Linear classifier to replace")
    return linears[-1]


# Set while a checkpoint is about to be loaded: it holds every weight, so the pretrained file is not needed.
_RESTORING = contextvars.ContextVar("lit_mlcourse_restoring_checkpoint", default=False)


@contextlib.contextmanager
def weights_from_checkpoint() -> Iterator[None]:
    """Within it, a :class:`TorchvisionNet` asked for pretrained ``weights`` builds the same architecture
    without reading or downloading them: the checkpoint loaded next overwrites every parameter anyway.
    ``lit`` uses it whenever ``--ckpt_path`` is given; use it around ``load_from_checkpoint`` on a machine
    without the weight file."""
    token = _RESTORING.set(True)
    try:
        yield
    finally:
        _RESTORING.reset(token)


def restoring_checkpoint() -> bool:
    """Whether networks are being built inside :func:`weights_from_checkpoint` (pretrained weights skipped)."""
    return _RESTORING.get()


# Models with auxiliary classifiers used in training only: their parameters would get no gradient here
# (DDP then fails), and pretrained weights switch on an input transform that must be kept when restoring.
_AUXILIARY = ("googlenet", "inception_v3")


def _drop_auxiliary(model: nn.Module) -> None:
    """Pretrained GoogLeNet / Inception v3 load with their auxiliary heads: remove them, as torchvision
    does when built with ``aux_logits=False``."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for head in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, head):
                setattr(model, head, None)


class TorchvisionNet(nn.Module):
    """A torchvision classification model (``torchvision.models.list_models(module=torchvision.models)``).

    The model's classifier (its last ``nn.Linear``) becomes :attr:`head`; :attr:`features` is the model with
    that layer replaced by ``nn.Identity``, so ``features`` returns what the classifier received. Images with
    ``in_channels != 3`` first pass through a learnable 1x1 convolution to 3 channels, which starts by giving
    every RGB channel the mean of the input channels (a gray image is copied into R, G and B, as pretrained
    models expect).

    Pretrained weights expect images prepared as for their training, usually ImageNet normalisation and
    224x224 (see ``torchvision.models.get_weight(...).transforms()``); some models (ViT) only accept that size.

    Args:
        num_classes: number of output logits (linked from the DataModule).
        in_channels: image channels (linked from the DataModule).
        name: torchvision model name, e.g. "resnet18", "mobilenet_v3_small", "efficientnet_b0", "vit_b_16".
        weights: pretrained weights, e.g. "DEFAULT" or "IMAGENET1K_V1", or None for a random initialisation.
            They are downloaded into ``torch.hub.get_dir()/checkpoints`` unless already there. With weights,
            the classifier is replaced by a new one when ``num_classes`` differs from theirs.
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, name: str = "resnet18", weights: str | None = None
    ) -> None:
        super().__init__()
        _check_name(name)
        resolved = None if weights is None else _resolve_weights(name, weights)
        if resolved is None or _RESTORING.get():
            options = {}
            if name in _AUXILIARY:
                options = {"aux_logits": False, "init_weights": True, "transform_input": resolved is not None}
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
        else:
            _require_weight_file(resolved)
            model = torchvision.models.get_model(name, weights=resolved)
            _drop_auxiliary(model)
        classifier_name, classifier = _last_linear(model)
        if classifier.out_features != num_classes:
            classifier = nn.Linear(classifier.in_features, num_classes)
        model.set_submodule(classifier_name, nn.Identity())
        features: nn.Module = model
        if in_channels != 3:
            adapter = nn.Conv2d(in_channels, 3, kernel_size=1)
            with torch.no_grad():
                adapter.weight.fill_(1 / in_channels)
                adapter.bias.zero_()
            features = nn.Sequential(adapter, features)  # (B, in_channels, H, W) -> (B, 3, H, W) -> ...
        self.features = features  # (B, in_channels, H, W) -> (B, out_features)
        self.head = classifier  # (B, out_features) -> (B, num_classes)
        self.out_features = classifier.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.features(x))
