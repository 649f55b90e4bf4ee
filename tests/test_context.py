"""2.5D context (neighbouring slices as channels) and the brain floor (issue: usable
translations of real scans)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.data.dataset import FORMAT, FORMAT_VERSION, open_dataset, write_split
from mrtranslate.data.tensors import load_images, neighbour_indices

SIZE = 64


def slab_dataset(root, slices: dict[str, int], scale: str = "volume", texture: bool = False):
    """A paired data set whose subjects hold consecutive slices; slice k of every subject is
    uniform: T1w (k + 1) / 10 in a centred square brain, T2w 1 - that; 0 outside (``texture``:
    times a column pattern, so that image measures are not degenerate)."""
    mask = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask[12:52, 12:52] = 1
    if texture:
        mask = mask * (0.8 + 0.2 * np.cos(np.arange(SIZE) / 3.0))[None, :]
    for split in ("train", "test"):
        t1, subjects = [], []
        for subject, count in slices.items():
            for k in range(count):
                t1.append(np.full((SIZE, SIZE), (k + 1) / 10, dtype=np.float32) * mask)
                subjects.append(f"{split}-{subject}")
        t1 = np.stack(t1)
        n = len(t1)
        write_split(
            root / split,
            {
                "t1w": t1,
                "t2w": (1 - t1) * mask,
                "mask": np.repeat(mask[None] > 0, n, axis=0).astype(np.uint8),
                "subjects": np.asarray(subjects, dtype=str),
                "scale_t1w": np.ones(n, dtype=np.float32),
                "scale_t2w": np.ones(n, dtype=np.float32),
            },
        )
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "contrasts": ["t1w", "t2w"],
        "paired": True,
        "image_shape": [SIZE, SIZE],
        "pixel_spacing_mm": [1.0, 1.0],
        "intensity_scale": scale,
        "splits": {},
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_neighbours_are_in_slice_order_and_stay_within_each_subject():
    subjects = np.array(["a"] * 4 + ["b"] + ["c"] * 2)
    rows = neighbour_indices(subjects, 3)
    assert rows.tolist() == [
        [0, 0, 1],
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 3],
        [4, 4, 4],
        [5, 5, 6],
        [5, 6, 6],
    ]
    assert neighbour_indices(subjects, 5)[1].tolist() == [0, 0, 1, 2, 3]
    assert (neighbour_indices(subjects, 1)[:, 0] == np.arange(7)).all()


def test_stacks_hold_the_slice_below_itself_and_the_slice_above(tmp_path):
    data = open_dataset(slab_dataset(tmp_path, {"a": 5, "b": 3}))
    split = data.split("train")
    stacks = load_images(split, "t1w", (SIZE, SIZE), np.array([2, 5, 7]), context=3)
    assert stacks.shape == (3, 3, SIZE, SIZE)
    centre = stacks[:, :, 32, 32]  # inside the brain: 2 * (k + 1) / 10 - 1
    expected = [[2, 3, 4], [1, 1, 2], [2, 3, 3]]  # (k + 1) of each channel
    np.testing.assert_allclose(centre.numpy(), np.asarray(expected) / 5 - 1, atol=1e-6)
    single = load_images(split, "t1w", (SIZE, SIZE), np.array([2, 5, 7]))
    torch.testing.assert_close(single[:, 0], stacks[:, 1])


def test_brain_floor_lifts_dark_brain_voxels_above_the_background(tmp_path):
    root = slab_dataset(tmp_path, {"a": 2})
    t1 = np.load(root / "train" / "t1w.npy")
    t1[:, 20:30, 20:30] = 0.0  # dark tissue inside the brain (T1w CSF)
    np.save(root / "train" / "t1w.npy", t1)
    split = open_dataset(root).split("train")
    plain = load_images(split, "t1w", (SIZE, SIZE))
    lifted = load_images(split, "t1w", (SIZE, SIZE), floor=0.05)
    assert plain[0, 0, 25, 25] == plain[0, 0, 2, 2] == -1.0  # CSF looks like background
    assert lifted[0, 0, 2, 2] == -1.0
    assert lifted[0, 0, 25, 25] == pytest.approx(-0.9)
    torch.testing.assert_close(lifted[0, 0, 40, 40], plain[0, 0, 40, 40])  # bright tissue kept


@pytest.mark.parametrize("value", ["2", "0", "11"])
def test_context_must_be_a_small_odd_number(tmp_path, capsys, value):
    root = slab_dataset(tmp_path / "data", {"a": 3})
    args = ["train", "--model", "simple", "--data", str(root), "--out", str(tmp_path / "r")]
    err = usage_error(capsys, [*args, "--profile", "tiny", "--set", f"net.context={value}"])
    assert "net.context" in err


def test_context_on_single_slice_data_is_refused(tmp_path, capsys):
    root = slab_dataset(tmp_path / "data", {"a": 1, "b": 1}, scale="slice")
    args = ["train", "--model", "simple", "--data", str(root), "--out", str(tmp_path / "r")]
    err = usage_error(capsys, [*args, "--profile", "tiny", "--set", "net.context=3"])
    assert "one slice per subject" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("model", ["cyclegan", "cyclegan_s", "unit", "generators_s", "simple"])
def test_every_model_maps_stacks_to_stacks(model):
    """Each method's two steps run on 3-slice stacks, and translation keeps the stack."""
    from mrtranslate.methods import build_method, make_config

    cfg = make_config(model, "tiny")
    cfg.net.context = 3
    method = build_method(model, cfg.net, cfg.loss, (32, 32))
    batch = {c: torch.rand(2, 3, 32, 32) * 2 - 1 for c in ("t1w", "t2w")}
    loss, _, fakes = method.generator_step(batch)
    assert torch.isfinite(loss) and fakes["t2w"].shape == (2, 3, 32, 32)
    if method.discriminator_parameters():
        assert torch.isfinite(method.discriminator_step(batch, fakes)[0])
    method.eval()
    assert method.translate(batch["t1w"], "t1-to-t2").shape == (2, 3, 32, 32)


@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    """Generators_s trained (tiny) with 3-slice context and a brain floor, and evaluated."""
    from mrtranslate.training.run import train_run

    root = tmp_path_factory.mktemp("context")
    data = slab_dataset(root / "data", {"a": 6, "b": 6}, texture=True)
    run = root / "generators_s"
    overrides = ["net.context=3", "net.brain_floor=0.05", "train.downsample=1"]
    train_run("generators_s", data, run, profile="tiny", overrides=overrides, progress=False)
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    return run


def test_a_context_run_evaluates_on_stacks(context_run):
    from mrtranslate.runs import layout, load_run

    run = load_run(context_run)
    assert run.config.net.context == 3 and run.method.context == 3
    assert run.config.net.brain_floor == 0.05
    summary = json.loads(layout.summary_path(context_run).read_text())
    assert summary["test_images"] == 12


def test_translate_volume_gives_each_slice_its_own_neighbours(context_run, monkeypatch):
    """A stand-in network that answers every channel with its input's first channel (the slice
    below): slice k of the output is then the input's slice k - 1 (k = 0: itself, the edge)."""
    from mrtranslate.inference import translate_volume
    from mrtranslate.runs import load_run

    run = load_run(context_run)
    monkeypatch.setattr(
        run.method, "translate", lambda images, direction: images[:, :1].expand_as(images)
    )
    volume = np.zeros((SIZE, SIZE, 6), dtype=np.float32)
    volume[12:52, 12:52, :] = 100.0 * np.arange(1, 7)
    out = translate_volume(run, volume, "t1-to-t2")
    inner = (slice(20, 44), slice(20, 44))
    for k in range(6):
        np.testing.assert_allclose(out[inner][..., k], volume[inner][..., max(k - 1, 0)], rtol=1e-4)


class _Echo(torch.nn.Module):
    """A stand-in method that returns its input stack (each slice translated to itself)."""

    context = 3

    def translate(self, images, direction):
        return images


def test_translation_returns_the_centre_slice_of_each_stack():
    from mrtranslate.inference import translate_stack

    stacks = torch.rand(5, 3, 16, 16) * 2 - 1
    out = translate_stack(_Echo(), stacks, "t1-to-t2")
    torch.testing.assert_close(out, stacks[:, 1:2])
    with pytest.raises(ValueError, match="stacks of 3 slices"):
        translate_stack(_Echo(), stacks[:, :1], "t1-to-t2")


def test_translate_volume_raises_dark_brain_voxels_to_the_runs_floor(context_run, monkeypatch):
    from mrtranslate.data.volumes import volume_divisor
    from mrtranslate.inference import translate_volume
    from mrtranslate.runs import load_run

    run = load_run(context_run)
    monkeypatch.setattr(run.method, "translate", lambda images, direction: images)
    volume = np.zeros((SIZE, SIZE, 4), dtype=np.float32)
    volume[12:52, 12:52, :] = 500.0
    volume[28:36, 28:36, :] = -3.0  # negative CSF inside the brain
    brain = volume != 0
    out = translate_volume(run, volume, "t1-to-t2", mask=brain)
    floor = 0.05 * volume_divisor(volume, brain)
    np.testing.assert_allclose(out[30:34, 30:34, :], floor, rtol=1e-4)
    np.testing.assert_allclose(out[16:20, 16:20, :], 500.0, rtol=1e-4)
    assert (out[:8] == 0).all()


def test_brain_only_l1_ignores_everything_outside_the_mask():
    from mrtranslate.losses import l1

    real = torch.zeros(2, 3, 8, 8)
    fake = real.clone()
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    fake[:, :, 0, :] = 5.0  # wrong outside the brain only
    assert float(l1(fake, real, mask)) == 0.0 and float(l1(fake, real)) > 0
    fake[0, 1, 3, 3] = 1.0  # one wrong brain pixel of the 2 x 3 x 16 in the mask
    assert float(l1(fake, real, mask)) == pytest.approx(1.0 / 96)


@pytest.mark.parametrize("model", ["generators_s", "cyclegan_s"])
def test_trainer_gives_paired_methods_the_crops_mask_and_brain_only_uses_it(tmp_path, model):
    """The batch carries the pair's brain mask, cropped with the same window as the images; a
    brain-only supervised loss does not see a wrong background."""
    from mrtranslate.config import apply_overrides
    from mrtranslate.methods import build_method, make_config
    from mrtranslate.training.decisions import decide
    from mrtranslate.training.trainer import Trainer, TrainingData

    cfg = make_config(model, "tiny")
    apply_overrides(cfg, ["train.crop=32", "loss.brain_only=true", "train.conv_algorithm=direct"])
    images = -torch.rand(3, 1, 64, 64)  # the brain box is 1, everything else below 0
    masks = torch.zeros(3, 1, 64, 64, dtype=torch.bool)
    masks[:, :, 20:40, 24:44] = True
    images[masks] = 1.0
    data = TrainingData(images, -images, masks, masks)
    method = build_method(model, cfg.net, cfg.loss, (32, 32))
    trainer = Trainer(method, cfg.train, data, tmp_path, decide(cfg.train), progress=False)
    for step in range(3):
        batch = trainer.batch(step)
        assert batch["mask"].shape == batch["t1w"].shape == (2, 1, 32, 32)
        inside = batch["mask"] > 0
        assert torch.equal(inside, batch["t1w"] == 1.0)  # the images' own window
        assert 0 < int(inside.sum()) < inside.numel()
    method.eval()
    clean = float(method.generator_step(batch)[1]["g/sup_t2"])
    batch["t2w"] = torch.where(inside, batch["t2w"], torch.full_like(batch["t2w"], 9.0))
    assert float(method.generator_step(batch)[1]["g/sup_t2"]) == pytest.approx(clean, rel=1e-5)


def test_a_brain_only_run_writes_background_outside_the_brain(tmp_path):
    """Its output outside the brain was never trained: evaluation (whose synthetic images the
    report and the perceptual study show) writes background there, as translate does."""
    from mrtranslate.runs import layout
    from mrtranslate.training.run import train_run

    data = slab_dataset(tmp_path / "data", {"a": 4, "b": 4}, texture=True)
    run = tmp_path / "run"
    overrides = ["loss.brain_only=true", "train.downsample=1"]
    train_run("simple", data, run, profile="tiny", overrides=overrides, progress=False)
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    fake = np.load(layout.synthetic_path(run, "t1-to-t2"))
    mask = np.asarray(open_dataset(data).split("test").mask) > 0
    assert (fake[~mask] == 0).all() and (fake[mask] > 0).any()
