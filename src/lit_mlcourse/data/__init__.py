"""LightningDataModules, one dataset each."""

from lit_mlcourse.data.digits import DigitsDataModule
from lit_mlcourse.data.pm25 import PM25DataModule

__all__ = ["DigitsDataModule", "PM25DataModule"]
