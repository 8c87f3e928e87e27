"""The evidence -> p-value table of the default detector's core on i.i.d. noise.

``KNOTS`` are ``(evidence, -log10 p)`` pairs: the ``1 - 10 ** -k`` quantiles of the core's
evidence (default parameters) over simulated streams of six noise shapes (Gaussian,
Student-t(3), Poisson(3), log-normal, uniform, exponential), events after the first 300.
The core ranks values against the stream's own past, so the table hardly depends on the
shape (docs/detectors.md shows the per-shape calibration). It was measured on synthetic
noise only: no benchmark data, no labels.

Regenerate after changing the core (the calibration test fails until you do):

    python -m detectors.rarity_table --streams 24 --events 50000
"""

from __future__ import annotations

import argparse

import numpy as np

from detectors.ensemble import RarityLikelihood

KNOTS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (0.0166, 0.25), (0.0304, 0.5), (0.0473, 0.75), (0.07, 1.0),
    (0.1022, 1.25), (0.1421, 1.5), (0.1858, 1.75), (0.2355, 2.0), (0.2922, 2.25),
    (0.3692, 2.5), (0.5038, 2.75), (0.5333, 3.0), (0.5724, 3.25), (0.633, 3.5),
    (0.7386, 3.75), (1.021, 4.0), (1.1023, 4.25), (1.2273, 4.5), (1.3484, 4.75),
    (1.4694, 5.0),
)
SKIP = 300  # young streams are handled by the detector's ``settle`` correction


def _noise(rng: np.random.Generator, kind: int, n: int) -> np.ndarray:
    shapes = (
        lambda: rng.normal(0.0, 1.0, n),
        lambda: rng.standard_t(3, n),
        lambda: rng.poisson(3, n).astype(float),
        lambda: rng.lognormal(0.0, 1.0, n),
        lambda: rng.uniform(0.0, 1.0, n),
        lambda: rng.exponential(1.0, n),
    )
    return np.asarray(shapes[kind % len(shapes)]())


def measure(streams: int, events: int, seed: int = 123) -> tuple[tuple[float, float], ...]:
    """The knots, measured afresh (about 13 s for 24 streams of 50,000 events)."""
    rng = np.random.default_rng(seed)
    evidence = []
    for k in range(streams):
        det = RarityLikelihood()
        xs = _noise(rng, k, events)
        evidence.append(np.array([det.evidence_learn(float(v), None) for v in xs])[SKIP:])
    ev = np.concatenate(evidence)
    knots = [(0.0, 0.0)]
    for k in range(1, 21):
        lp = k / 4
        knots.append((round(float(np.quantile(ev, 1.0 - 10.0 ** -lp)), 4), lp))
    return tuple(knots)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=24)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args(argv)
    print(measure(args.streams, args.events))


if __name__ == "__main__":
    main()
