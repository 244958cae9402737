"""Counts and failures of scripts/upstream-suites' JUnit files, and the tests that fail on one target only.

Usage: summary.py RESULTS_DIR   (files named <target>-<suite>.xml)
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """test id -> (outcome, the failure's last line)."""
    result = {}
    # our own pytest run wrote this file a moment ago: not untrusted input
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        name = f"{case.get('classname')}.{case.get('name')}".removeprefix("functionaltests.")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                # the traceback's last line: the assertion that failed (testtools' messages say less)
                lines = [line for line in (node.text or node.get("message") or "").splitlines() if line.strip()]
                message = lines[-1].strip()[:200] if lines else ""
                break
        result[name] = (outcome, message)
    return result


def main() -> None:
    results = Path(sys.argv[1])
    runs = {p.stem: outcomes(p) for p in sorted(results.glob("*.xml"))}
    for run, cases in runs.items():
        counts = {k: sum(1 for o, _ in cases.values() if o == k) for k in ("passed", "failed", "skipped")}
        print(f"{run}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    for run, cases in runs.items():
        target, _, suite = run.partition("-")
        other = runs.get(f"{'barbican' if target == 'donjon' else 'donjon'}-{suite}")
        failed = sorted(name for name, (o, _) in cases.items() if o == "failed")
        if not failed:
            continue
        # failures the other target shares (the Keystone-401 tests in no-auth mode) are only counted by class
        shared = [n for n in failed if other is not None and other.get(n, ("absent", ""))[0] == "failed"]
        print(f"\n{run}: {len(failed)} failed, {len(shared)} of them on the other target too")
        by_class: dict[str, int] = {}
        for name in shared:
            by_class[name.rsplit(".", 1)[0]] = by_class.get(name.rsplit(".", 1)[0], 0) + 1
        for cls, count in sorted(by_class.items()):
            print(f"  both: {cls} x{count}")
        for name in failed:
            if name not in shared:
                there = other.get(name, ("absent", ""))[0] if other is not None else "not run"
                print(f"  {name}  [other target: {there}]  {cases[name][1]}")


if __name__ == "__main__":
    main()
