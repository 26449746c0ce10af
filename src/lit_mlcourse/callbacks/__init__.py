"""Side effects of training (files, plots, terminal output), kept out of the task models."""

from lit_mlcourse.callbacks.class_predictions import ClassPredictionWriter
from lit_mlcourse.callbacks.confusion import ConfusionMatrixPlot
from lit_mlcourse.callbacks.finite_loss import StopOnNonFiniteLoss
from lit_mlcourse.callbacks.hessian import HessianEigenvalues
from lit_mlcourse.callbacks.learning_rate import LearningRatePlot
from lit_mlcourse.callbacks.prediction_plot import PredictionVsTruthPlot
from lit_mlcourse.callbacks.progress import LineProgressBar
from lit_mlcourse.callbacks.resume import ExactResume
from lit_mlcourse.callbacks.run_record import RunRecord
from lit_mlcourse.callbacks.samples import GeneratedImageWriter, SampleGrid
from lit_mlcourse.callbacks.submission import SubmissionWriter
from lit_mlcourse.callbacks.whitening import WhiteningInit

__all__ = [
    "ClassPredictionWriter",
    "ConfusionMatrixPlot",
    "ExactResume",
    "GeneratedImageWriter",
    "HessianEigenvalues",
    "LearningRatePlot",
    "LineProgressBar",
    "PredictionVsTruthPlot",
    "RunRecord",
    "SampleGrid",
    "StopOnNonFiniteLoss",
    "SubmissionWriter",
    "WhiteningInit",
]
