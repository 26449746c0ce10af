"""Plain ``nn.Module`` networks: usable without Lightning, injected into task models by ``class_path``."""

from lit_mlcourse.nets.cnn import SmallCNN
from lit_mlcourse.nets.mlp import MLP

__all__ = ["MLP", "SmallCNN"]
