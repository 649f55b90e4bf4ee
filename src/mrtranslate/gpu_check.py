"""A check of the GPU paths that anyone with a GPU can run in about five minutes.

``bash scripts/gpu-check.sh`` (or ``python -m mrtranslate.gpu_check``) runs, on the default
device: the device and precision that ``auto`` picks; a short training run on the plain path
resumed on the fast path and one the other way round (a run started on a CPU and resumed on a
GPU); and the paper-size CycleGAN and UNIT training steps, plain path against fast path. It
prints one table and exits 0 when every check passed, 1 otherwise. On a machine without a GPU
it says so and exits 0 (``--device cpu`` runs the same checks on the CPU, for the tests).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch


def _resume_across_paths(device: str, work: Path, first: str, then: str) -> str:
    """Train a tiny CycleGAN 3 steps with ``train.fast_path=first``, resume it with ``then``."""
    from mrtranslate.training.run import RunRequest, train_run

    run = work / f"cyclegan-{first}-{then}"
    data = work / "phantom"

    def request(fast_path: str) -> RunRequest:
        # train.fast_path comes from this machine's check, as a user's --set would
        sets = ("train.conv_algorithm=direct", f"train.fast_path={fast_path}")
        return RunRequest(profile="tiny", device=device, overrides=sets)

    train_run("cyclegan", data, run, progress=False, stop_after=3, request=request(first))
    record = train_run("cyclegan", data, run, resume=True, progress=False, request=request(then))
    if not record.finished:
        raise RuntimeError("the resumed run did not finish")
    return f"{record.steps_done} steps, finished"


def run_checks(device: str, size: tuple[int, int], repeats: int) -> list[tuple[str, str, str]]:
    """Every check as (name, result, detail); a failed check says FAILED and why."""
    from mrtranslate.bench import bench_model
    from mrtranslate.data.build import build_phantom
    from mrtranslate.data.phantom import PhantomSpec
    from mrtranslate.hardware import cuda_math_flags, resolve_device, resolve_precision

    rows: list[tuple[str, str, str]] = []

    def check(name: str, fn) -> None:
        print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)  # minutes of work
        start = time.perf_counter()
        try:
            result, detail = fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the rest still run
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            result, detail = "FAILED", last
        rows.append((name, result, f"{detail} ({time.perf_counter() - start:.1f} s)"))

    torch_device = resolve_device(device)
    choice = resolve_precision("auto", torch_device)
    name = torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "CPU"
    rows.append(("device", str(torch_device), name))
    rows.append(("precision (auto)", choice.precision, choice.reason))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = PhantomSpec(subjects=6, test_subjects=2, height=64, width=64, spacing=3.0, seed=1)
        build_phantom(spec, work / "phantom", workers=1, progress=False)
        for first, then in (("off", "on"), ("on", "off")):
            check(
                f"resume {first} -> {then}",
                lambda f=first, t=then: ("ok", _resume_across_paths(device, work, f, t)),
            )
    for model in ("cyclegan", "unit"):
        for fast in ("off", "on"):

            def step(model=model, fast=fast):
                result = bench_model(
                    model, choice.precision, size, 1, repeats, device=torch_device,
                    conv_algorithm="direct", fast_path=fast,
                )  # fmt: skip
                seconds = result["train_step_seconds_median"]
                return f"{seconds * 1e3:.1f} ms/step", f"{size[0]}x{size[1]}, batch 1"

            check(f"{model} step, {'fast' if fast == 'on' else 'plain'} path", step)
    flags = cuda_math_flags()
    rows.append(("fp32 math", ", ".join(f"{k}={v}" for k, v in flags.items()), ""))
    return rows


def format_rows(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    result_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<{result_width}}  {c}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--size", type=int, default=256, help="image side of the step timings")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine; nothing to check")
        return 0
    rows = run_checks(args.device, (args.size, args.size), args.repeats)
    print(format_rows(rows))
    failed = [r for r in rows if r[1] == "FAILED"]
    if failed:
        print(f"gpu-check: {len(failed)} check(s) FAILED", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
