"""Results a scientist can trust: no participant in both splits, no paired model on unpaired
data, observer folds by subject."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.data.dataset import open_dataset
from test_import_translate import phantom_volumes, save


@pytest.fixture(scope="module")
def multi_session_bids(tmp_path_factory):
    """4 participants x 2 sessions (the BIDS file stems differ per session)."""
    root = tmp_path_factory.mktemp("bids_sessions")
    for p in range(4):
        for session in (1, 2):
            vols, affine = phantom_volumes(2 * p + session - 1, slices=2)
            anat = root / f"sub-{p:02d}" / f"ses-{session}" / "anat"
            stem = f"sub-{p:02d}_ses-{session}"
            save(anat / f"{stem}_T1w.nii.gz", vols["t1w"], affine)
            save(anat / f"{stem}_T2w.nii.gz", vols["t2w"], affine)
    return root


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bids_sessions_of_a_participant_stay_on_one_side(multi_session_bids, tmp_path, seed):
    out = tmp_path / "d"
    args = ["data", "import", "--format", "bids", "--root", str(multi_session_bids)]
    assert main([*args, "--out", str(out), "--test-fraction", "0.5", "--seed", str(seed)]) == 0
    dataset = open_dataset(out)
    participants = {
        split: {str(s).split("_")[0] for s in dataset.split(split).subjects}
        for split in ("train", "test")
    }
    assert not participants["train"] & participants["test"]
    assert len(participants["train"]) == len(participants["test"]) == 2
    info = dataset.info()["splits"]
    assert info["train"]["participants"] == 2 and info["train"]["subjects"] == 4
    assert info["test"]["images"] == 4  # 2 participants x 2 sessions, the middle slice each


def test_paired_models_refuse_unpaired_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for sub in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "pngs" / sub).mkdir(parents=True)
        for i in range(3):
            image = rng.integers(1, 255, size=(48, 48), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "pngs" / sub / f"{sub}{i}.png")
    data = tmp_path / "data"
    args = ["data", "import", "--format", "folders", "--root", str(tmp_path / "pngs")]
    assert main([*args, "--out", str(data), "--quiet"]) == 0  # unpaired (no --paired)
    assert json.loads((data / "dataset.json").read_text())["paired"] is False
    for model in ("generators_s", "simple", "cyclegan_s"):
        train = ["train", "--model", model, "--data", str(data), "--profile", "tiny"]
        err = usage_error(capsys, [*train, "--out", str(tmp_path / model), "--quiet"])
        assert "unpaired" in err and "cyclegan" in err and "unit" in err
        assert not (tmp_path / model).exists()


def test_observer_folds_keep_each_subject_together(monkeypatch):
    from mrtranslate.perceptual import realism

    seen = []

    def record(x_train, y_train, x_test, y_test, epochs, seed, device):
        seen.append((x_train[:, 0, 0, 0].tolist(), x_test[:, 0, 0, 0].tolist()))
        return 0

    monkeypatch.setattr(realism, "_fit_and_score", record)
    n = 12
    subjects = [f"s{i // 3}" for i in range(n)]  # 4 subjects, 3 images each
    real = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    realism.observer_accuracy(real, real + 100, folds=4, epochs=1, subjects=subjects)
    assert len(seen) == 4
    for train, test in seen:
        held_out = {subjects[int(v) % 100] for v in test}
        trained_on = {subjects[int(v) % 100] for v in train}
        assert held_out and not held_out & trained_on


def test_folder_import_keeps_a_participant_on_one_side(tmp_path, capsys):
    rng = np.random.default_rng(1)
    layout = {"trainA": ["sub-1_a", "sub-2_a"], "testA": ["sub-1_b", "sub-3_a"]}
    layout |= {"trainB": layout["trainA"], "testB": layout["testA"]}
    for folder, stems in layout.items():
        (tmp_path / "pngs" / folder).mkdir(parents=True)
        for stem in stems:
            image = rng.integers(1, 255, size=(48, 48), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "pngs" / folder / f"{stem}.png")
    args = ["data", "import", "--format", "folders", "--root", str(tmp_path / "pngs"), "--paired"]
    pattern = ["--participant-pattern", "(sub-[0-9]+)"]
    err = usage_error(capsys, [*args, "--out", str(tmp_path / "a"), *pattern, "--quiet"])
    assert "participant sub-1 is in both splits" in err
    assert "not a valid regex" in usage_error(
        capsys, [*args, "--out", str(tmp_path / "b"), "--participant-pattern", "(", "--quiet"]
    )
    assert main([*args, "--out", str(tmp_path / "c"), "--quiet"]) == 0  # stems as participants
    info = open_dataset(tmp_path / "c").info()["splits"]
    assert info["train"]["participants"] == 2 and info["test"]["participants"] == 2
