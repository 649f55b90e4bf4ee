"""Tissue relaxation parameters at 3 T and the signal equations used by the phantom.

Relaxation times are rounded literature values for 3 T:

- white and grey matter T1/T2: Wansapura et al., "NMR relaxation times in the human brain at
  3.0 Tesla", J Magn Reson Imaging 9:531-538 (1999) (WM T1 832 ms, T2 80 ms; GM T1 1331 ms,
  T2 110 ms); Stanisz et al., MRM 54:507-512 (2005) give similar values;
- CSF: T1 about 4000 ms (Lu et al., MRM 53:1260 (2005) report 4.2 s in vivo at 3 T) and a long
  T2 (we take 2000 ms, within the range reported at 3 T);
- proton density relative to CSF: WM 0.69, GM 0.80, CSF 1.0 (standard values used by
  MR simulators such as BrainWeb);
- white-matter lesions (MS-like, used for optional lesions): longer T1 and T2 than normal WM
  (T1 1400 ms, T2 150 ms, PD 0.80), which makes them dark on T1w and bright on T2w.

Sequence timings follow the HCP protocol (Glasser et al. 2013): T1w MPRAGE with TR 2400 ms,
TI 1000 ms, TE 2.14 ms, flip angle 8 degrees and echo spacing 7.6 ms; T2w SPACE with TR 3200 ms,
modelled here as a spin echo with an effective TE of 100 ms (SPACE's variable flip angles make
the nominal 565 ms TE act like a much shorter one).

The T1w signal is that of the MPRAGE sequence *with its readout* (Mugler & Brookeman, MRM
15:152-157 (1990); Deichmann et al., NeuroImage 12:112-127 (2000)): after each inversion, a
train of 256 small-flip-angle excitations (one per partition, linear order, the k-space centre
at TI) drives the magnetisation towards the FLASH steady state, repeated until the
magnetisation is periodic. A plain inversion-recovery equation with TI 1000 ms nulls CSF
(T1 ~ 4 s) and leaves it at the noise floor; with the readout, CSF is dark but well above it.
The resulting tissue ratios, CSF/WM 0.30 and GM/WM 0.76, agree with those of nilearn's MNI152
T1 template (an average of real T1w scans) measured with the same tissue maps: 0.36 and 0.75
(tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TISSUES = ("csf", "gm", "wm", "lesion")


@dataclass(frozen=True)
class Tissue:
    """Relaxation parameters of one tissue: proton density (relative), T1 and T2 in ms."""

    pd: float
    t1_ms: float
    t2_ms: float


TISSUES_3T: dict[str, Tissue] = {
    "csf": Tissue(pd=1.00, t1_ms=4000.0, t2_ms=2000.0),
    "gm": Tissue(pd=0.80, t1_ms=1331.0, t2_ms=110.0),
    "wm": Tissue(pd=0.69, t1_ms=832.0, t2_ms=80.0),
    "lesion": Tissue(pd=0.80, t1_ms=1400.0, t2_ms=150.0),
}

# HCP-like timings in ms.
T1W_TR, T1W_TI, T1W_TE = 2400.0, 1000.0, 2.14
T2W_TR, T2W_TE = 3200.0, 100.0


MPRAGE_FLIP_DEG, MPRAGE_ECHO_SPACING_MS, MPRAGE_PARTITIONS = 8.0, 7.6, 256


def t1w_signal(pd, t1, t2, shots: int = 8) -> np.ndarray:
    """MPRAGE signal at the k-space centre, readout included (see the module docstring).

    Each shot: inversion, free recovery until the readout starts (TI minus half the train),
    ``MPRAGE_PARTITIONS`` excitations of ``MPRAGE_FLIP_DEG`` every ``MPRAGE_ECHO_SPACING_MS``
    (the centre line after half of them), recovery until TR. ``shots`` repetitions reach the
    periodic state (from 4 on the value changes by less than 1e-4).
    S = PD * Mz(centre) * sin(flip) * exp(-TE/T2); arrays broadcast; T in ms.
    """
    pd, t1, t2 = (np.asarray(v, dtype=np.float64) for v in (pd, t1, t2))
    flip = np.deg2rad(MPRAGE_FLIP_DEG)
    train = MPRAGE_PARTITIONS * MPRAGE_ECHO_SPACING_MS
    start = T1W_TI - train / 2
    # One excitation followed by one echo spacing maps mz to a * mz + b.
    a = np.cos(flip) * np.exp(-MPRAGE_ECHO_SPACING_MS / t1)
    b = 1.0 - np.exp(-MPRAGE_ECHO_SPACING_MS / t1)

    def recover(mz, ms):
        return 1.0 - (1.0 - mz) * np.exp(-ms / t1)

    def pulses(mz, count):
        power = a**count
        return power * mz + b * (1.0 - power) / (1.0 - a)

    mz = np.ones_like(t1)
    centre = mz
    for _ in range(shots):
        mz = recover(-mz, start)  # inversion, then recovery until the readout
        centre = pulses(mz, MPRAGE_PARTITIONS // 2)
        mz = pulses(mz, MPRAGE_PARTITIONS)
        mz = recover(mz, T1W_TR - start - train)
    return pd * centre * np.sin(flip) * np.exp(-T1W_TE / t2)


def t2w_signal(pd: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Spin-echo signal with long TR and long TE: S = PD * (1 - exp(-TR/T1)) * exp(-TE/T2)."""
    return pd * (1.0 - np.exp(-T2W_TR / t1)) * np.exp(-T2W_TE / t2)


def tissue_signals(jitter: dict[str, np.ndarray] | None = None) -> dict[str, tuple[float, float]]:
    """Per-tissue (T1w, T2w) signal, optionally with multiplicative jitter of (pd, T1, T2).

    Args:
        jitter: tissue name -> array of 3 factors multiplying (pd, T1, T2); missing = 1.
    """
    out = {}
    for name, tissue in TISSUES_3T.items():
        factors = np.ones(3) if jitter is None else jitter.get(name, np.ones(3))
        pd, t1, t2 = tissue.pd * factors[0], tissue.t1_ms * factors[1], tissue.t2_ms * factors[2]
        out[name] = (float(t1w_signal(pd, t1, t2)), float(t2w_signal(pd, t1, t2)))
    return out
