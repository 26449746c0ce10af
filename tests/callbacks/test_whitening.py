import lightning as L
import pytest
import torch

from lit_mlcourse.callbacks import WhiteningInit
from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.models import ImageClassifier
from lit_mlcourse.nets import FastNet, SmallCNN


class KeepWeights(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.at_start = pl_module.net.whiten.weight.detach().clone()


def fit(net, callbacks, tmp_path, **trainer_options):
    dm = DigitsDataModule(batch_size=64)
    model = ImageClassifier(net, dm.num_classes, dm.image_shape, optimizer=torch.optim.SGD)
    before = model.net.whiten.weight.detach().clone() if hasattr(model.net, "whiten") else None
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, default_root_dir=tmp_path,
                        callbacks=callbacks, logger=False, enable_progress_bar=False, **trainer_options)  # fmt: skip
    trainer.fit(model, dm)
    return model, before


def test_the_whitening_layer_starts_from_the_data_and_stays_frozen(tmp_path):
    torch.manual_seed(0)
    keep = KeepWeights()
    model, before = fit(lambda classes, channels: FastNet(classes, channels, widths=(8, 16)),
                        [WhiteningInit(images=300), keep], tmp_path)  # fmt: skip
    weight = model.net.whiten.weight
    assert not torch.allclose(keep.at_start, before)  # set from the images before the first step
    assert not weight.requires_grad and torch.equal(weight.detach(), keep.at_start)  # frozen through training
    components = weight.shape[0] // 2
    torch.testing.assert_close(weight[components:], -weight[:components])  # the filters and their negatives


def test_a_net_without_whitening_is_a_config_error(tmp_path):
    with pytest.raises(ConfigValueError, match=r"WhiteningInit needs a network with init_whitening .* not SmallCNN"):
        fit(lambda classes, channels: SmallCNN(classes, channels, widths=(8,)), [WhiteningInit()], tmp_path)
