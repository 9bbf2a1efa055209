"""Accept the current model: refresh the differential tests' reference.

``tox -e capture_predictions`` runs this after training. It prints what the
refresh changes (the same report the differential test prints), then writes
``tests/reference/predictions_test.csv`` with every house of ``test.csv``
priced by the current model, with its price ranges. Commit the new file with the VERSION bump that
made it necessary: the diff is the record of what the new model changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The comparison lives with the tests that use it (tests/differential/).
sys.path.insert(0, str(ROOT / "tests"))

from differential.compare import (  # noqa: E402
    REFERENCE_FILE,
    compare_all,
    current_predictions,
    load_tolerances,
    read_predictions,
    write_predictions,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=REFERENCE_FILE, help="where to write the reference"
    )
    args = parser.parse_args(argv)
    current = current_predictions()
    if args.output.exists():
        reference = read_predictions(args.output)
        print("What this refresh accepts:")
        try:
            for report in compare_all(reference, current, load_tolerances()):
                print(report.format())
        except ValueError as exc:  # the ranges' coverages changed: say so, then accept
            print(f"  {exc}")
    write_predictions(current, args.output)
    refused = int(current["prediction"].isna().sum())
    print(
        f"wrote {args.output} ({len(current)} houses, {refused} refused) "
        f"from model {current['version'].iloc[0]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
