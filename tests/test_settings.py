"""Each model owns its settings; settings travel typed (a plan applies itself, the run decides
once); older run folders, written when every model shared one flat set of keys, keep loading."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from helpers import usage_error
from mrtranslate.config import LEGACY_KEYS, apply_overrides
from mrtranslate.methods import build_method, make_config, names, registry
from mrtranslate.methods.registry import config_from_dict
from mrtranslate.runs import load_checkpoint, load_run, save_checkpoint
from mrtranslate.runs.layout import checkpoint_path
from mrtranslate.training.decisions import DIRECT, decide
from mrtranslate.training.run import train_run
from mrtranslate.training.trainer import Trainer, TrainingData

# One model's configuration as the flat format wrote it: every model's keys in one section.
FLAT_NET = {
    "gen_width": 32,
    "gen_blocks": 9,
    "gen_upsample": "transpose",
    "disc_width": 64,
    "unit_width": 64,
    "unit_blocks": 3,
    "unit_scales": 3,
    "unit_disc_width": 48,
    "unit_dropout": 0.0,
    "unit_upsample": "transpose",
    "simple_width": 256,
    "context": 1,
    "brain_floor": 0.0,
}
FLAT_LOSS = {
    "cycle": 10.0,
    "supervised": 10.0,
    "identity": 0.0,
    "pool_size": 50,
    "brain_only": False,
    "unit_adv": 10.0,
    "unit_kl": 0.1,
    "unit_rec": 100.0,
    "unit_cycle": 100.0,
    "unit_kl_cycle": 0.1,
}


def test_the_flat_format_is_what_legacy_keys_name():
    shared = {"context", "brain_floor", "brain_only"}
    assert set(FLAT_NET) - shared == LEGACY_KEYS["net"]
    assert set(FLAT_LOSS) - shared == LEGACY_KEYS["loss"]


@pytest.mark.parametrize("model", names())
def test_every_model_round_trips_its_own_settings(model):
    for profile in ("paper", "quick", "tiny"):
        cfg = make_config(model, profile)
        assert config_from_dict(cfg.to_dict()) == cfg
        assert type(cfg.net) is registry.get(model).net_settings


def test_each_model_has_only_its_own_keys():
    unit, simple = make_config("unit", "quick"), make_config("simple", "quick")
    assert apply_overrides(unit, ["net.width=24", "loss.kl=0.2"]).net.width == 24
    assert unit.loss.kl == 0.2
    with pytest.raises(ValueError, match="unknown config key 'net.blocks' for simple"):
        apply_overrides(simple, ["net.blocks=3"])
    with pytest.raises(ValueError, match=r"net.unit_width is now net.width"):
        apply_overrides(make_config("unit", "quick"), ["net.unit_width=8"])
    with pytest.raises(ValueError, match="net.dropout must be below 1"):
        apply_overrides(make_config("unit", "quick"), ["net.dropout=1"])
    with pytest.raises(ValueError, match="net.upsample must be one of"):
        apply_overrides(make_config("cyclegan", "quick"), ["net.upsample=bicubic"])
    with pytest.raises(ValueError, match="net.width must be positive"):
        apply_overrides(make_config("generators_s", "quick"), ["net.width=0"])


@pytest.mark.parametrize(
    ("model", "flat_key", "value", "field"),
    [
        ("unit", "unit_width", 20, "width"),
        ("cyclegan", "gen_blocks", 4, "blocks"),
        ("generators_s", "gen_width", 12, "width"),
        ("simple", "simple_width", 64, "width"),
    ],
)
def test_a_flat_config_loads_with_the_models_own_names(model, flat_key, value, field):
    data = make_config(model, "paper").to_dict()
    data["net"] = {**FLAT_NET, flat_key: value}
    data["loss"] = {**FLAT_LOSS, "unit_kl": 0.3}
    cfg = config_from_dict(data)
    assert getattr(cfg.net, field) == value
    assert type(cfg.net) is registry.get(model).net_settings
    assert config_from_dict(_as_flat(make_config(model, "quick").to_dict())) == make_config(
        model, "quick"
    )
    if model == "unit":
        assert cfg.loss.kl == 0.3 and cfg.net.dropout == 0.0  # the recorded, not the default
        # the flat "cycle" and "disc_width" were CycleGAN's: UNIT's come from its old names
        assert (cfg.loss.cycle, cfg.net.disc_width) == (100.0, 48)
        backwards = {k: dict(reversed(list(data[k].items()))) for k in ("net", "loss")}
        again = config_from_dict({**data, **backwards})  # whatever the order of the keys
        assert (again.loss.cycle, again.net.disc_width) == (100.0, 48)
    data["net"]["nonsense"] = 1
    with pytest.raises(ValueError, match="unknown setting net.nonsense"):
        config_from_dict(data)


def _as_flat(data: dict) -> dict:
    """``data`` (a config of today) as the flat format would have recorded it."""
    spec = registry.get(data["model"])
    flat = {**data}
    for section, keys, settings in (
        ("net", FLAT_NET, spec.net_settings),
        ("loss", FLAT_LOSS, spec.loss_settings),
    ):
        old = {new: was for was, new in settings.renamed.items()}
        flat[section] = {**keys, **{old.get(k, k): v for k, v in data[section].items()}}
    return flat


@pytest.mark.parametrize("model", ["unit", "generators_s"])
def test_an_older_run_folder_still_loads_and_translates(model, small_phantom, tmp_path):
    """A checkpoint written before each model owned its settings (its config in the flat
    format) loads with the same weights and translates the same."""
    run = tmp_path / model
    train_run(model, small_phantom, run, profile="tiny", progress=False)
    x = torch.rand(1, 1, *load_run(run).model_image_shape) * 2 - 1
    with torch.no_grad():
        before = load_run(run).method.translate(x, "t1-to-t2")
    state = load_checkpoint(checkpoint_path(run))
    state["config"] = _as_flat(state["config"])
    save_checkpoint(checkpoint_path(run), state)
    loaded = load_run(run)
    assert loaded.config.net == make_config(model, "tiny").net
    with torch.no_grad():
        assert torch.equal(loaded.method.translate(x, "t1-to-t2"), before)


def test_a_run_folder_of_an_unknown_setting_fails_in_one_line(small_phantom, tmp_path, capsys):
    run = tmp_path / "simple"
    train_run("simple", small_phantom, run, profile="tiny", progress=False)
    state = load_checkpoint(checkpoint_path(run))
    state["config"]["net"]["mystery"] = 3
    save_checkpoint(checkpoint_path(run), state)
    err = usage_error(capsys, ["evaluate", "--run", str(run), "--quiet"])
    assert "unknown setting net.mystery" in err


def test_the_study_sends_each_set_to_the_models_that_have_it(small_phantom, tmp_path, capsys):
    from mrtranslate.study import StudyOptions

    opts = StudyOptions(overrides=["net.blocks=2", "net.width=5", "train.lr=0.01"])
    assert opts.overrides_for("simple") == ["net.width=5", "train.lr=0.01"]
    assert opts.overrides_for("unit") == opts.overrides
    base = ["study", "--data", str(small_phantom), "--out", str(tmp_path / "s"), "--quiet"]
    err = usage_error(capsys, [*base, "--models", "simple", "--set", "net.blocks=2"])
    assert "none of the chosen models (simple) has this key" in err
    err = usage_error(capsys, [*base, "--models", "cyclegan", "--set", "net.gen_width=8"])
    assert "net.gen_width is now net.width" in err
    err = usage_error(capsys, [*base, "--models", "unit", "simple", "--set", "net.dropout=2"])
    assert "--set for unit" in err and "below 1" in err
    assert not (tmp_path / "s").exists()  # refused before any work


def test_the_trainer_reads_the_decisions_not_the_auto_settings(tmp_path):
    cfg = make_config("cyclegan", "tiny")
    apply_overrides(cfg, ["train.fast_path=off", "train.conv_algorithm=auto"])
    decided = dataclasses.replace(decide(cfg.train), fast_path=True, conv_algorithms=DIRECT)
    method = build_method("cyclegan", cfg.net, cfg.loss, (32, 32))
    data = TrainingData(t1w=torch.rand(4, 1, 32, 32), t2w=torch.rand(4, 1, 32, 32))
    trainer = Trainer(method, cfg.train, data, tmp_path, decided, progress=False)
    assert trainer.fast_path and trainer.opt_g.defaults["fused"]
    choice = trainer.prepare_convolutions()
    assert choice.reason == "train.conv_algorithm=direct" and set(choice.counts()) == {"direct"}


def test_decide_resolves_each_setting_once():
    cfg = make_config("simple", "tiny").train
    assert not decide(cfg).fast_path  # auto: the fast path on CUDA only
    assert decide(dataclasses.replace(cfg, fast_path="on")).fast_path
    recorded = {"device": "cpu", "precision": "fp32", "fast_path": True}
    assert decide(cfg, recorded=recorded).fast_path  # a resume keeps its start's decision
    assert not decide(dataclasses.replace(cfg, fast_path="off"), recorded=recorded).fast_path
    plan = decide(cfg, conv_algorithms={"g_t1_to_t2.net.0": "winograd"}).conv_algorithms
    assert plan == {"g_t1_to_t2.net.0": "winograd"}
    assert decide(dataclasses.replace(cfg, conv_algorithm="direct")).conv_algorithms == DIRECT
    assert decide(dataclasses.replace(cfg, precision="fp32")).precision.precision == "fp32"


def test_models_lists_each_models_own_settings(capsys):
    from mrtranslate.cli import main

    assert main(["models", "--settings", "--profile", "quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    unit = next(i for i, line in enumerate(lines) if line.startswith("UNIT"))
    simple = next(i for i, line in enumerate(lines) if line.startswith("Simple"))
    unit_settings = next(line for line in lines[unit:] if "settings (quick)" in line)
    assert "net.dropout=0.0" in unit_settings and "loss.kl=0.1" in unit_settings
    simple_settings = next(line for line in lines[simple:] if "settings (quick)" in line)
    assert "net.width=256" in simple_settings and "net.blocks" not in simple_settings
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["settings"]["net.width"] == 32  # the paper's CycleGAN generator
