"""LightningDataModules, one dataset each."""

from lit_mlcourse.data.cifar10 import CIFAR10DataModule
from lit_mlcourse.data.digits import DigitsDataModule
from lit_mlcourse.data.image_folder import ImageFolderDataModule
from lit_mlcourse.data.pm25 import PM25DataModule

__all__ = ["CIFAR10DataModule", "DigitsDataModule", "ImageFolderDataModule", "PM25DataModule"]
