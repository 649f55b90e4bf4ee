"""The package's layers, bottom to top: the one table that ``tests/test_architecture.py``
checks every import against and that the docs' architecture page is generated from
(``scripts/gen_docs.py``), so the two cannot drift apart.

A module may import its own layer and the layers below it; a module's layer is that of its
top-level component (``mrtranslate.training.run`` -> ``training``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """One layer: its top-level components and what lives there."""

    components: tuple[str, ...]
    what: str


LAYERS: tuple[Layer, ...] = (
    Layer(
        (
            "__init__",
            "errors",
            "fileio",
            "directions",
            "hardware",
            "openmp",
            "progress",
            "architecture",
        ),
        "usage errors; atomic writes; the `Direction` enum (`t1-to-t2`, `t2-to-t1`); device "
        "and precision resolution and the one autocast helper; OpenMP settings; progress lines; "
        "this table",
    ),  # fmt: skip
    Layer(
        ("config", "data"),
        "typed run configuration (`RunConfig`: the model's own `net`/`loss` settings and the "
        "shared `train` section) and `--set` overrides, the only place text becomes settings; "
        "data sets, phantom, importers",
    ),
    Layer(
        ("nets", "losses"),
        "plain `nn.Module` networks (their `Conv2d` layers can compute by direct, channels-last "
        "or Winograd convolution); loss functions",
    ),
    Layer(
        ("methods",),
        "one module per method: its steps (take tensors, return losses and images), its own "
        "settings and its `SPEC`; and the model registry (`methods/registry.py`)",
    ),
    Layer(
        ("runs",),
        "the run folder: layout (the only place that spells `run.json`, `eval/summary.json`, "
        "...), checkpoints, typed records, `load_run`, `load_evaluation`",
    ),
    Layer(
        ("inference",),
        "translating image stacks (in tiles, without the tiles that hold no brain) and NIfTI "
        "volumes along one or three planes",
    ),
    Layer(("evaluation",), "measures, reference points, baselines, `evaluate_run`"),
    Layer(
        ("preparation",),
        "raw scans in (SimpleITK): rigid registration, offline brain extraction, the "
        "`data prepare` pipeline and its QC pictures, `translate --raw`",
    ),
    Layer(
        ("reporting", "perceptual"),
        "figures, tables, report; the perceptual-study builder, server, analysis and observer",
    ),
    Layer(
        ("training",),
        "the generic trainer (knows no model), `RunDecisions` (device, precision, fast path, "
        "convolution algorithms, resolved once per run), convolution tuning, distributed "
        "helpers, `train_run` (writes runs); nothing that reads runs imports it",
    ),
    Layer(
        ("bench", "study", "gpu_check"),
        "benchmarks; the main job as one package (`study/`: shape, cost, calibration, plan, "
        "pacing, run); the GPU check (`scripts/gpu-check.sh`)",
    ),
    Layer(
        ("cli", "__main__"),
        "one module per command group, each registering its subcommands; the shared parser; the "
        "CLI reference generator (`cli/reference.py`)",
    ),
)


def layer_of() -> dict[str, int]:
    """Top-level component -> its layer's index."""
    return {name: i for i, layer in enumerate(LAYERS) for name in layer.components}


def layers_markdown() -> str:
    """The layer table as Markdown (the docs' architecture page)."""
    lines = ["| layer | components | what lives there |", "|---|---|---|"]
    for i, layer in enumerate(LAYERS):
        names = ", ".join(f"`{c}`" for c in layer.components)
        lines.append(f"| {i} | {names} | {layer.what} |")
    return "\n".join(lines)
