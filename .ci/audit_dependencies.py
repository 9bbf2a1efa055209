"""pip-audit over this environment, honest about what it could not check.

Runs ``pip-audit`` (PyPI's advisory data) on every installed distribution but
our own editable package, and fails on any known vulnerability. A
distribution it could not look up (the advisory service unreachable, or a
package index that answers only part of PyPI's JSON API, as on machines that
reach PyPI through a partial mirror) is listed as not audited: the check
fails then only with ``REQUIRE_AUDIT=1`` (CircleCI, which reaches PyPI),
and otherwise says plainly how many distributions went unchecked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    done = subprocess.run(
        [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
         "--format", "json"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(done.stdout + done.stderr, file=sys.stderr)
        return 2
    dependencies = [
        d
        for d in report["dependencies"]
        if d.get("skip_reason") != "distribution marked as editable"
    ]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    unaudited = [d for d in dependencies if "skip_reason" in d]
    audited = len(dependencies) - len(unaudited)
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} "
                  f"(fixed in {fixed})")  # fmt: skip
    print(f"pip-audit: {audited} of {len(dependencies)} distributions audited, "
          f"{len(vulnerable)} with known vulnerabilities")  # fmt: skip
    if unaudited:
        names = ", ".join(d["name"] for d in unaudited[:10])
        more = f" and {len(unaudited) - 10} more" if len(unaudited) > 10 else ""
        print(f"NOT AUDITED ({len(unaudited)}): {names}{more}: "
              f"{unaudited[0]['skip_reason']}")  # fmt: skip
    if vulnerable:
        return 1
    if unaudited and os.environ.get("REQUIRE_AUDIT") == "1":
        print("REQUIRE_AUDIT=1: every distribution must be audited", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
