"""Plain ``nn.Module`` networks: usable without Lightning, injected into task models by ``class_path``."""

from lit_mlcourse.nets.cnn import SmallCNN
from lit_mlcourse.nets.course_cnn import CourseCNN
from lit_mlcourse.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lit_mlcourse.nets.fast import FastNet
from lit_mlcourse.nets.mlp import MLP
from lit_mlcourse.nets.resnet import ResNet18
from lit_mlcourse.nets.torchvision_net import TorchvisionNet

__all__ = [
    "MLP",
    "CourseCNN",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "FastNet",
    "ResNet18",
    "SmallCNN",
    "TorchvisionNet",
]
