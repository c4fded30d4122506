"""Derive the aggregate label statistics the demo generator samples from, out of the real PadChest label matrix.

Reads ``$CXRLT_SHARED_DATA/padchest-label-matrix/padchest_cxrlt2026_labels.csv.gz`` (one row per PadChest image, one 0/1
column per CXR-LT 2026 class), keeps the frontal projections (PA, AP, AP_horizontal: the demo renders frontal views)
and writes ``cxrlt_core/data/demo/padchest_stats.json`` holding only aggregates:

- ``positives`` / ``prevalence`` per class (36 classes, label-space order);
- ``cooccurrence``: the 36 x 36 matrix of images positive for both classes (diagonal = positives);
- ``latent_correlation``: tetrachoric correlations between the 35 finding classes (Normal excluded: the demo derives
  it), i.e. for classes a, b the correlation rho of a standard bivariate normal (Z_a, Z_b) such that thresholding
  each at its prevalence reproduces the observed share of images positive for both,
  ``P(Z_a > h_a, Z_b > h_b) = n_ab / N`` with ``h = Phi^-1(1 - p)`` (Pearson 1900; Olsson 1979). Cells get a 0.5
  continuity correction so that pairs never seen together give a finite rho; a class with no positives at all
  (Infarction) gets correlation 0 with every other class (independent). The matrix is projected onto the
  positive-definite cone (eigenvalues clipped at ``MIN_EIGENVALUE``, unit diagonal restored) so it can drive a
  Gaussian copula;
- ``images_per_patient_mean``: frontal images per patient.

Usage: ``.venv/bin/python scripts/make_padchest_stats.py [--labels CSV.GZ] [--out JSON]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cxrlt_core.atomic import write_json  # noqa: E402
from cxrlt_core.labels import get_label_space  # noqa: E402
from cxrlt_core.paths import shared_data_dir  # noqa: E402

FRONTAL = ("PA", "AP", "AP_horizontal")
MIN_EIGENVALUE = 0.02
CONTINUITY = 0.5


def bivariate_upper(h_a: float, h_b: float, rho: float) -> float:
    """``P(Z_a > h_a, Z_b > h_b)`` for a standard bivariate normal with correlation ``rho``.

    Uses Plackett's identity d/drho Phi2(x, y; rho) = phi2(x, y; rho): the probability at rho is the independent
    product plus the integral of the bivariate density over r in [0, rho] (exact up to quadrature error).
    """

    def density(r: float) -> float:
        one_minus = 1.0 - r * r
        return float(
            np.exp(-(h_a * h_a - 2 * r * h_a * h_b + h_b * h_b) / (2 * one_minus)) / (2 * np.pi * np.sqrt(one_minus))
        )

    base = special.ndtr(-h_a) * special.ndtr(-h_b)
    return float(base + integrate.quad(density, 0.0, rho, epsabs=1e-13, epsrel=1e-10)[0])


def tetrachoric(n_ab: float, n_a: float, n_b: float, n: float) -> float:
    """The tetrachoric correlation of two binary variables from their 2 x 2 table (continuity-corrected)."""
    n11 = n_ab + CONTINUITY
    n10 = n_a - n_ab + CONTINUITY
    n01 = n_b - n_ab + CONTINUITY
    n00 = n - n_a - n_b + n_ab + CONTINUITY
    total = n11 + n10 + n01 + n00
    h_a = special.ndtri(1 - (n11 + n10) / total)
    h_b = special.ndtri(1 - (n11 + n01) / total)
    target = n11 / total
    return float(optimize.brentq(lambda r: bivariate_upper(h_a, h_b, r) - target, -0.995, 0.995, xtol=1e-7))


def nearest_correlation(matrix: np.ndarray, min_eigenvalue: float = MIN_EIGENVALUE) -> np.ndarray:
    """Clip eigenvalues at ``min_eigenvalue`` and rescale to a unit diagonal (one step of Higham's projection)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    fixed = (vectors * np.maximum(values, min_eigenvalue)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(fixed))
    return fixed * scale[:, None] * scale[None, :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--labels",
        type=Path,
        default=(shared_data_dir() or Path("data")) / "padchest-label-matrix" / "padchest_cxrlt2026_labels.csv.gz",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "cxrlt_core" / "data" / "demo" / "padchest_stats.json")
    args = parser.parse_args(argv)

    space = get_label_space("cxrlt2026")
    table = pd.read_csv(args.labels, dtype={"PatientID": str, "ImageID": str})
    frontal = table[table["Projection"].isin(FRONTAL)]
    labels = frontal[list(space.classes)].to_numpy(dtype=np.int64)
    n = len(labels)
    positives = labels.sum(axis=0)
    cooccurrence = labels.T @ labels

    findings = [c for c in space.classes if c != space.normal]
    index = [space.classes.index(c) for c in findings]
    latent = np.eye(len(findings))
    for i in range(len(findings)):
        for j in range(i + 1, len(findings)):
            a, b = index[i], index[j]
            if positives[a] == 0 or positives[b] == 0:
                continue  # no positives (Infarction): nothing is known, so the class is sampled independently
            latent[i, j] = latent[j, i] = tetrachoric(cooccurrence[a, b], positives[a], positives[b], n)
        print(f"{findings[i]:32s} done", file=sys.stderr)
    latent = nearest_correlation(latent)

    stats = {
        "source": args.labels.name,
        "description": "Aggregate label statistics of PadChest frontal radiographs mapped to the CXR-LT 2026 classes "
        "(scripts/make_padchest_stats.py). No per-image data.",
        "projections": list(FRONTAL),
        "n_images": int(n),
        "n_patients": int(frontal["PatientID"].nunique()),
        "images_per_patient_mean": round(float(n / frontal["PatientID"].nunique()), 4),
        "classes": list(space.classes),
        "positives": positives.tolist(),
        "prevalence": [round(float(p), 6) for p in positives / n],
        "cooccurrence": cooccurrence.tolist(),
        "latent_classes": findings,
        "latent_correlation": np.round(latent, 4).tolist(),
        "continuity_correction": CONTINUITY,
        "min_eigenvalue": MIN_EIGENVALUE,
    }
    write_json(args.out, stats, indent=None)
    print(f"wrote {args.out} ({n} frontal images, {stats['n_patients']} patients)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
