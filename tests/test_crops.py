"""Training on random crops around the brain at the working resolution (issue: usable
translations of real scans)."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.data.tensors import crop_shape
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import crop_corners, take_crops


def _blob_masks(count: int, shape=(96, 80)) -> torch.Tensor:
    """Brain masks with a small brain far from the centre (rows 60-75, columns 5-20)."""
    masks = torch.zeros(count, 1, *shape, dtype=torch.bool)
    masks[:, :, 60:76, 5:21] = True
    return masks


def test_crops_are_centred_on_brain_pixels_and_stay_inside_the_image():
    masks = _blob_masks(200)
    generator = torch.Generator().manual_seed(0)
    corners = crop_corners(masks, 200, (96, 80), (32, 32), generator)
    assert corners.shape == (200, 2)
    assert (corners >= 0).all() and (corners[:, 0] <= 64).all() and (corners[:, 1] <= 48).all()
    windows = take_crops(masks.float(), corners, (32, 32))
    inside = windows.flatten(1).sum(1)
    assert (inside > 0).all()  # every crop holds brain
    assert inside.float().mean() > 0.3 * 16 * 16  # and mostly a good part of it
    # Without masks the corners are uniform over the image and often miss a small brain.
    uniform = crop_corners(None, 200, (96, 80), (32, 32), torch.Generator().manual_seed(0))
    assert (take_crops(masks.float(), uniform, (32, 32)).flatten(1).sum(1) == 0).any()


def test_crop_shape_and_validation(small_phantom, tmp_path, capsys):
    assert crop_shape((76, 64), 0) == (76, 64)
    assert crop_shape((76, 64), 48) == (48, 48)
    assert crop_shape((76, 64), 96) == (76, 64)
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--out", str(tmp_path)]
    for bad in ("30", "50"):
        err = usage_error(capsys, [*args, "--profile", "tiny", "--set", f"train.crop={bad}"])
        assert "train.crop" in err


def test_paired_models_see_the_same_window_in_both_contrasts(small_phantom, tmp_path):
    """Generators_s is paired: its T1w and T2w crops must come from one window of one pair;
    CycleGAN is unpaired: its contrasts are cropped independently."""
    from mrtranslate.methods import build_method
    from mrtranslate.training.run import RunRequest, _check_inputs, _training_data
    from mrtranslate.training.trainer import Trainer

    for model, paired in (("generators_s", True), ("cyclegan", False)):
        setup = _check_inputs(
            model,
            small_phantom,
            tmp_path / model,
            RunRequest(
                "tiny", overrides=("train.downsample=1", "train.crop=32", "train.batch_size=4")
            ),
            False,
        )
        data = _training_data(setup)
        data.t2w = -data.t1w  # a pairing we can check: T2w = -T1w pixel for pixel
        method = build_method(model, setup.cfg.net, setup.cfg.loss, (32, 32))
        trainer = Trainer(method, setup.cfg.train, data, tmp_path / model, decide(setup.cfg.train))
        for step in range(3):
            batch = trainer.batch(step)
            assert batch["t1w"].shape == (4, 1, 32, 32) == batch["t2w"].shape
            same = torch.equal(batch["t2w"], -batch["t1w"])
            assert same is paired
        again = trainer.batch(2)
        assert torch.equal(again["t1w"], trainer.batch(2)["t1w"])  # reproducible per step


@pytest.mark.slow
def test_train_on_crops_then_evaluate_whole_images(small_phantom, tmp_path):
    run = tmp_path / "cyclegan"
    args = ["train", "--model", "cyclegan", "--data", str(small_phantom), "--out", str(run)]
    extra = ["--set", "train.downsample=1", "--set", "train.crop=32", "--quiet"]
    assert main([*args, "--profile", "tiny", *extra]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["model_image_shape"] == [64, 64]  # translation works on whole slices
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["evaluation_shape"] == [64, 64]


@pytest.mark.parametrize("model", ["generators_s", "cyclegan"])
def test_flips_mirror_half_the_images_and_a_pair_together(tmp_path, model):
    """``train.flip`` mirrors each training image left-right with probability 1/2, the T1w, the
    T2w and the mask of a pair together, drawn from the step alone; off, nothing is mirrored."""
    from mrtranslate.config import apply_overrides
    from mrtranslate.methods import build_method, make_config
    from mrtranslate.training.trainer import Trainer, TrainingData

    ramp = torch.linspace(-1, 1, 40).expand(6, 1, 32, 40).clone()  # rises left to right
    masks = torch.zeros(6, 1, 32, 40, dtype=torch.bool)
    masks[..., :10] = True  # on the left only
    data = TrainingData(ramp, -ramp, masks, masks)
    mirrored = {}
    for flip in ("false", "true"):
        cfg = make_config(model, "tiny")
        apply_overrides(cfg, [f"train.flip={flip}", "train.batch_size=4"])
        apply_overrides(cfg, ["train.conv_algorithm=direct", "loss.brain_only=true"])
        method = build_method(model, cfg.net, cfg.loss, (32, 40))
        trainer = Trainer(method, cfg.train, data, tmp_path, decide(cfg.train), progress=False)
        counts, patterns = [], set()
        for step in range(40):
            batch = trainer.batch(step)
            falls = batch["t1w"][:, 0, 0, 0] > 0  # mirrored: the ramp falls left to right
            assert torch.equal(
                batch["t1w"], torch.where(falls.view(-1, 1, 1, 1), -ramp[:4], ramp[:4])
            )
            if method.paired:  # the pair and its mask mirrored with it
                assert torch.equal(batch["t2w"], -batch["t1w"])
                assert torch.equal(batch["mask"][:, 0, 0, -1] > 0, falls)
            counts.append(int(falls.sum()))
            patterns.add(tuple(falls.tolist()))
        assert torch.equal(trainer.batch(7)["t1w"], trainer.batch(7)["t1w"])  # per step
        mirrored[flip] = sum(counts) / (4 * 40)
        if flip == "true":
            assert len(patterns) > 4  # drawn anew at every step, not once
    assert mirrored["false"] == 0
    assert 0.35 < mirrored["true"] < 0.65


def test_a_crop_that_covers_the_down_sampled_image_is_named_not_ignored():
    """`train --set train.crop=96` on 240x240 volumes with the quick profile's 4x down-sampling
    trains on whole 60x60 images: the run says so (a measured floor was once lost to it)."""
    from mrtranslate.config import TrainConfig
    from mrtranslate.training.run import ignored_crop

    said = ignored_crop(TrainConfig(crop=96, downsample=4), (60, 60), (240, 240))
    assert "covers the whole 60x60 image" in said and "train.downsample=1" in said
    assert ignored_crop(TrainConfig(crop=96, downsample=1), (240, 240), (240, 240)) is None
    assert ignored_crop(TrainConfig(crop=32, downsample=4), (60, 60), (240, 240)) is None
    assert ignored_crop(TrainConfig(crop=0, downsample=4), (60, 60), (240, 240)) is None
    # a crop larger than the data itself: whole images were asked for either way
    assert ignored_crop(TrainConfig(crop=320, downsample=4), (60, 60), (240, 240)) is None
