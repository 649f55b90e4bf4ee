"""A model trained on crops translates in tiles of its crop (issue: usable translations of real
scans): instance normalisation must see at inference the statistics it was trained on."""

from __future__ import annotations

import pytest
import torch

from helpers import phantom_volumes, save
from mrtranslate.cli import main
from mrtranslate.data.tensors import tile_starts
from mrtranslate.inference import translate_stack
from mrtranslate.inference.batches import tile_window


class _Pointwise(torch.nn.Module):
    """Each output pixel depends on its input pixel alone: tiles cannot change the result."""

    context = 1

    def translate(self, images, direction):
        return torch.tanh(2 * images) * 0.9


class _Normalising(torch.nn.Module):
    """Like instance normalisation: each image's output is its input minus the image's mean;
    records the (h, w) of every image it sees."""

    context = 1

    def __init__(self):
        super().__init__()
        self.seen = []

    def translate(self, images, direction):
        self.seen.append(tuple(images.shape[-2:]))
        return (images - images.mean(dim=(-2, -1), keepdim=True)).clamp(-1, 1)


def test_tiles_overlap_by_a_quarter_and_end_flush():
    assert tile_starts(220, 96) == [0, 72, 124]
    assert tile_starts(184, 96) == [0, 72, 88]
    assert tile_starts(96, 96) == [0] and tile_starts(50, 96) == [0]
    window = tile_window((96, 80))
    assert window.shape == (96, 80) and (window > 0).all()
    assert window[48, 40] == 1 and window[0, 40] < window[10, 40] < window[30, 40]
    assert torch.equal(window, window.flip(0)) and torch.equal(window, window.flip(1))


def test_tiled_translation_of_a_pointwise_model_equals_the_whole_image():
    images = torch.rand(3, 1, 70, 58) * 2 - 1
    whole = translate_stack(_Pointwise(), images, "t1-to-t2")
    tiled = translate_stack(_Pointwise(), images, "t1-to-t2", tile=(32, 32))
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)


def test_a_normalising_model_sees_only_tiles_and_its_output_follows_local_statistics():
    # Left half dark, right half bright: a whole-image mean mixes them, tiles do not.
    images = torch.full((2, 1, 64, 256), -0.8)
    images[..., 128:] = 0.8
    method = _Normalising()
    tiled = translate_stack(method, images, "t1-to-t2", tile=(64, 64))
    assert set(method.seen) == {(64, 64)}
    # Pixels whose tiles all lie inside one half: that half's mean removed, 0.
    assert tiled[..., :90].abs().max() < 1e-6 and tiled[..., 166:].abs().max() < 1e-6
    whole = translate_stack(_Normalising(), images, "t1-to-t2")
    assert whole[..., :128].mean() == pytest.approx(-0.8)  # the whole image's mean is 0


@pytest.mark.slow
def test_runs_trained_on_crops_translate_volumes_and_test_slices_in_tiles(
    tmp_path, monkeypatch, capsys
):
    from mrtranslate.inference import translate_volume
    from mrtranslate.methods.supervised import SupervisedL1
    from mrtranslate.runs import load_run

    root = tmp_path / "bids"
    for i in range(3):
        vols, affine = phantom_volumes(i)
        save(root / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T1w.nii.gz", vols["t1w"], affine)
        save(root / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T2w.nii.gz", vols["t2w"], affine)
    data, run = tmp_path / "data", tmp_path / "run"
    imported = ["data", "import", "--format", "bids", "--root", str(root), "--out", str(data)]
    assert main([*imported, "--slices", "0:6", "--test-fraction", "0.34", "--quiet"]) == 0
    train = ["train", "--model", "generators_s", "--data", str(data), "--out", str(run)]
    crops = ["--set", "train.downsample=1", "--set", "train.crop=32", "--quiet"]
    assert main([*train, "--profile", "tiny", *crops]) == 0
    loaded = load_run(run, device="cpu")
    assert loaded.model_image_shape == (64, 64) and loaded.tile == (32, 32)

    seen = []
    original = SupervisedL1.translate

    def spy(self, images, direction):
        seen.append(tuple(images.shape[-2:]))
        return original(self, images, direction)

    monkeypatch.setattr(SupervisedL1, "translate", spy)
    vols, affine = phantom_volumes(9)
    synthetic = translate_volume(loaded, vols["t1w"], "t1-to-t2")
    assert synthetic.shape == vols["t1w"].shape
    assert seen and set(seen) == {(32, 32)}
    seen.clear()
    source = save(tmp_path / "held_T1w.nii.gz", vols["t1w"], affine)
    out = tmp_path / "held_T2w.nii.gz"
    translate = ["translate", "--run", str(run), "--direction", "t1-to-t2", "--quiet"]
    capsys.readouterr()
    assert main([*translate, "--input", str(source), "--output", str(out)]) == 0
    assert "in 32x32 tiles (its training crops)" in capsys.readouterr().err
    assert out.is_file() and seen and set(seen) == {(32, 32)}
    seen.clear()
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    assert seen and set(seen) == {(32, 32)}


def test_tiles_without_brain_are_skipped_and_the_brain_is_unchanged():
    """Given masks, a tile that holds no brain pixel is never translated; inside the brain the
    blended result equals the translation of every tile (the normalising model makes each
    tile's output depend on the whole tile, so a wrong blend would show)."""
    images = torch.rand(3, 1, 120, 100) * 2 - 1
    masks = torch.zeros(3, 120, 100, dtype=torch.bool)
    masks[0, 40:70, 30:60] = True  # a small brain in the middle
    masks[1, 0:5, 0:5] = True  # a corner only
    # image 2: no brain at all
    every = _CountingNormaliser()
    full = translate_stack(every, images, "t1-to-t2", tile=(48, 48))
    some = _CountingNormaliser()
    skipped = translate_stack(some, images, "t1-to-t2", tile=(48, 48), masks=masks)
    inside = masks[:, None]
    torch.testing.assert_close(skipped[inside], full[inside], rtol=0, atol=1e-6)
    assert (skipped[2] == -1).all()  # no brain: nothing translated, all background
    corners = [(y, x) for y in tile_starts(120, 48) for x in tile_starts(100, 48)]
    assert every.images == 3 * len(corners)
    holding = sum(
        bool(masks[i, y : y + 48, x : x + 48].any()) for i in range(3) for y, x in corners
    )
    assert some.images == holding < len(corners)


class _CountingNormaliser(_Normalising):
    """:class:`_Normalising` that counts the images (tiles) it translates."""

    images = 0

    def translate(self, images, direction):
        self.images += images.shape[0]
        return super().translate(images, direction)
