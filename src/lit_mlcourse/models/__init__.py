"""LightningModules, one training task each."""

from lit_mlcourse.models.classification import ImageClassifier
from lit_mlcourse.models.finetune import FineTunedClassifier
from lit_mlcourse.models.gan import GAN
from lit_mlcourse.models.regression import Regressor
from lit_mlcourse.models.simclr import SimCLR

__all__ = ["GAN", "FineTunedClassifier", "ImageClassifier", "Regressor", "SimCLR"]
