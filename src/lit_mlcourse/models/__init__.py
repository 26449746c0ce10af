"""LightningModules, one training task each."""

from lit_mlcourse.models.classification import ImageClassifier
from lit_mlcourse.models.regression import Regressor

__all__ = ["ImageClassifier", "Regressor"]
