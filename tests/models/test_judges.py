"""The GAN's judges: a classifier of this package, or Inception-v3 from local weights (scores equal to
torchmetrics' own FID on the same network), and the files that are refused."""

import pickle

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError
from lit_mlcourse.models.judges import ClassifierJudge, InceptionJudge, JudgeFeatures, load_judge


def test_a_classifier_checkpoint_is_a_classifier_judge(judge_checkpoint):
    judge = load_judge(judge_checkpoint, (1, 8, 8))
    assert isinstance(judge, ClassifierJudge) and judge.num_classes == 10
    assert judge.name == f"classifier {judge_checkpoint}"
    images = torch.rand(4, 1, 8, 8)
    assert judge(images).shape == (4, 10) and judge.features(images).shape[0] == 4


def test_the_classifier_judge_standardizes_images_as_its_classifier_was_trained(judge_checkpoint):
    plain = load_judge(judge_checkpoint, (1, 8, 8))
    standardizing = load_judge(judge_checkpoint, (1, 8, 8), normalization=[[0.5], [0.25]])
    images = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(standardizing(images), plain((images - 0.5) / 0.25))


@pytest.fixture(scope="module")
def inception(inception_weights):
    return load_judge(inception_weights, (1, 8, 8))


def test_inception_weights_make_an_inception_judge(inception, inception_weights):
    assert isinstance(inception, InceptionJudge) and inception.num_classes is None
    assert inception.name == f"inception-v3 {inception_weights}"


def test_inception_fid_equals_torchmetrics_fid_with_the_same_weights(inception, inception_weights):
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.rand(6, 1, 8, 8, generator=generator), torch.rand(6, 1, 8, 8, generator=generator) ** 2
    ours = FrechetInceptionDistance(JudgeFeatures(inception), input_img_size=(1, 8, 8), normalize=True)
    reference = FrechetInceptionDistance(
        feature=2048, feature_extractor_weights_path=str(inception_weights), normalize=True, antialias=False
    )
    ours.update(real, real=True), ours.update(fake, real=False)
    reference.update(real.expand(-1, 3, -1, -1), real=True), reference.update(fake.expand(-1, 3, -1, -1), real=False)
    expected = float(reference.compute())
    assert expected > 1e-3  # the stand-in weights give features that tell the two sets apart
    assert float(ours.compute()) == pytest.approx(expected, rel=1e-6)


def test_inception_score_is_the_formula_on_the_unbiased_logits(inception):
    images = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    images[::2] = images[::2] ** 4  # two kinds of image, for probabilities that differ
    metric = InceptionScore(inception, splits=1)
    metric.update(images)
    probabilities = inception(images).double().softmax(1)
    marginal = probabilities.mean(0, keepdim=True)
    expected = (probabilities * (probabilities.log() - marginal.log())).sum(1).mean().exp()
    assert inception(images).shape == (10, 1008) and float(expected) > 1.01
    assert float(metric.compute()[0]) == pytest.approx(float(expected), rel=1e-5)


def test_one_network_pass_serves_fid_and_the_score_for_the_same_images(inception):
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        first = inception.features(images)
        assert inception(images) is inception._last[2][1]  # from the same pass
        images.mul_(0.5)  # changed in place: recomputed
        assert not torch.equal(inception.features(images), first)


def test_judge_files_are_refused_with_the_reason(inception_weights, tmp_path, judge_checkpoint):
    with pytest.raises(DataFileNotFoundError, match=rf"model.judge: {tmp_path}/none.ckpt does not exist: train"):
        load_judge(tmp_path / "none.ckpt", (1, 8, 8))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigValueError, match=rf"model.judge: {garbage} cannot be read as tensors only"):
        load_judge(garbage, (1, 8, 8))
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ConfigValueError, match=rf"model.judge: {other} is neither a classifier checkpoint"):
        load_judge(other, (1, 8, 8))
    with pytest.raises(ConfigValueError, match=r"judge_normalization applies to classifier judges"):
        load_judge(inception_weights, (3, 32, 32), normalization=[[0.5] * 3, [0.2] * 3])
    with pytest.raises(ConfigValueError, match=r"Inception judges grey or RGB images; the data gives 4 channels"):
        load_judge(inception_weights, (4, 8, 8))


class _RunsCode:
    def __reduce__(self):
        return (print, ("code from a judge file ran",))


def test_a_judge_file_that_would_run_code_is_refused_unread(tmp_path, capfd):
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode()}, hostile)
    with pytest.raises(ConfigValueError, match=rf"model.judge: {hostile} cannot be read as tensors only"):
        load_judge(hostile, (1, 8, 8))
    assert "code from a judge file ran" not in capfd.readouterr().out
    assert pickle.loads(pickle.dumps(_RunsCode())) is None  # the payload does run code when unpickled freely
