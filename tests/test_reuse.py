"""Never translate one test slice twice: the whole-volume stage takes the slices evaluation
already translated (issue 34, item 2), and only where that is the same translation."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from helpers import phantom_volumes, save
from mrtranslate.cli import main
from mrtranslate.data.dataset import open_dataset
from mrtranslate.directions import Direction
from mrtranslate.evaluation.reuse import current_evaluation, known_slices
from mrtranslate.inference.volumes import KnownSlices
from mrtranslate.runs import layout, load_run

TEST = "sub-03"
IMPORTED = list(range(1, 5))  # the test split holds axial slices 1-4 of 6


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """4 phantom participants as BIDS, slices 1-4 imported (sub-03 held out), Generators_s
    trained (tiny) and evaluated on the test split."""
    from mrtranslate.training.run import train_run

    work = tmp_path_factory.mktemp("reuse")
    root = work / "bids"
    for i in range(4):
        vols, affine = phantom_volumes(i)
        for contrast in ("T1w", "T2w"):
            path = root / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_{contrast}.nii.gz"
            save(path, vols[contrast.lower()], affine)
    (work / "test.txt").write_text(f"{TEST}\n")
    data = work / "data"
    args = ["data", "import", "--format", "bids", "--root", str(root), "--out", str(data)]
    args += ["--slices", "1:5", "--test-subjects", str(work / "test.txt"), "--quiet"]
    assert main(args) == 0
    run = work / "runs" / "generators_s"
    train_run("generators_s", data, run, profile="tiny", progress=False)
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    return {"work": work, "data": data, "run": run}


def _volume_table(run, out) -> tuple[dict, dict]:
    assert main(["evaluate-volumes", "--runs", str(run), "--out", str(out), "--quiet"]) == 0
    with open(out / "volumes.csv", newline="") as handle:
        rows = {
            (r["direction"], r["candidate"]): r
            for r in csv.DictReader(handle)
            if r["candidate"] == "generators_s"
        }
    return rows, json.loads((out / "summary.json").read_text())


def _copy_run(evaluated, name: str):
    """A copy of the run (same checkpoint, same evaluation) to change without touching it."""
    copy = evaluated["work"] / name
    shutil.copytree(evaluated["run"], copy)
    return copy


def test_import_records_each_images_slice_index(evaluated):
    dataset = open_dataset(evaluated["data"])
    test, train = dataset.split("test"), dataset.split("train")
    assert np.asarray(test.slice_index).tolist() == IMPORTED
    assert np.asarray(train.slice_index).tolist() == IMPORTED * 3


def test_volumes_reuse_the_evaluated_slices_and_give_the_same_translation(evaluated):
    reused, summary = _volume_table(evaluated["run"], evaluated["work"] / "reused")
    record = summary["reused_from_evaluation"]["generators_s"]
    assert record == {"current_evaluation": True, "slices": 2 * len(IMPORTED)}
    # Without an evaluation to take from, every slice is translated: the same volumes.
    fresh_run = _copy_run(evaluated, "no-eval")
    shutil.rmtree(layout.eval_dir(fresh_run))
    fresh, summary = _volume_table(fresh_run, evaluated["work"] / "fresh")
    assert summary["reused_from_evaluation"]["generators_s"]["slices"] == 0
    assert reused.keys() == fresh.keys() and len(reused) == 2
    for key, row in reused.items():
        for measure in ("mae", "r", "ssim", "psnr"):
            assert float(row[measure]) == pytest.approx(float(fresh[key][measure]), rel=1e-4)


def test_the_kept_translations_are_really_what_the_volume_gets(evaluated):
    """Zeroed kept translations change the volumes: the stage does take them."""
    run = _copy_run(evaluated, "zeroed")
    for direction in ("t1-to-t2", "t2-to-t1"):
        path = layout.synthetic_path(run, direction)
        np.save(path, np.zeros_like(np.load(path)))
    zeroed, _ = _volume_table(run, evaluated["work"] / "zeroed-out")
    honest, _ = _volume_table(evaluated["run"], evaluated["work"] / "honest")
    for key, row in honest.items():
        assert float(zeroed[key]["mae"]) > float(row["mae"]) * 1.2


def test_an_evaluation_of_another_checkpoint_is_not_reused(evaluated):
    run = _copy_run(evaluated, "stale")
    summary_path = layout.summary_path(run)
    summary = json.loads(summary_path.read_text())
    summary["checkpoint"] = "0" * 64
    summary_path.write_text(json.dumps(summary))
    dataset = open_dataset(evaluated["data"])
    assert not current_evaluation(load_run(run), dataset)
    assert current_evaluation(load_run(evaluated["run"]), dataset)
    _, out = _volume_table(run, evaluated["work"] / "stale-out")
    assert out["reused_from_evaluation"]["generators_s"] == {
        "current_evaluation": False,
        "slices": 0,
    }


def test_a_slice_whose_input_differs_is_translated_anew(evaluated):
    dataset = open_dataset(evaluated["data"])
    known = known_slices(load_run(evaluated["run"]), dataset, TEST, Direction.parse("t1-to-t2"))
    assert sorted(known.inputs) == IMPORTED
    same = torch.from_numpy(known.inputs[2].copy())
    assert known.take(2, same) is known.outputs[2] and known.reused == 1
    assert known.take(2, same + 0.01) is None  # another input: not this translation
    assert known.take(5, same) is None  # a slice evaluation never saw
    assert known.reused == 1
    assert KnownSlices({}, {}).take(0, same) is None
