"""Is the shift between the two domains of data.py real? A check that needs only scikit-learn, no ticketpack.

    python examples/mnist_digits/shift_check.py

For each domain: scikit-learn LogisticRegression(max_iter=2000) on the 64 raw intensities (0..16), trained on a
stratified 70% of the domain (seed 0); its accuracy on the held-out 30% of the same domain (in-domain) and on
every image of the other domain (cross-domain), and the loss between the two, in points. Prints a small table.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import mnist_digits  # noqa: E402  (the factory file beside this script)


def main() -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    domains = {d: mnist_digits(d) for d in mnist_digits.domains}
    flat = {d: (v["x"].reshape(len(v["x"]), -1), v["y"]) for d, v in domains.items()}
    print("| trained on | rows | in-domain test (30%) | tested on | cross-domain (all rows) | loss (points) |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for source, (x, y) in flat.items():
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = LogisticRegression(max_iter=2000).fit(x_tr, y_tr)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        in_domain = clf.score(x_te, y_te)
        for target, (xt, yt) in flat.items():
            if target == source:
                continue
            cross = clf.score(xt, yt)
            print(f"| {source} | {len(y)} | {100 * in_domain:.1f}% | {target} | {100 * cross:.1f}% | "
                  f"{100 * (in_domain - cross):.1f} |" + ("" if converged else " (did not converge)"))
    for d, v in domains.items():
        x = v["x"]
        print(f"\n{d}: {x.shape} {x.dtype}, intensities {x.min():g}..{x.max():g}, mean {x.mean():.2f}, "
              f"share of zero pixels {100 * np.mean(x == 0):.0f}%, classes {np.bincount(v['y']).tolist()}", end="")
    print()


if __name__ == "__main__":
    main()
