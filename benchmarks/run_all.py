"""Run every benchmark in this folder, one after another, each in its own process.

Run: .venv/bin/python benchmarks/run_all.py [NAME ...]   (e.g. anm sampling compare)
Each script prints its own table of ratios measured side by side.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv):
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(s.stem == f"bench_{a}" for a in argv)]
    failed = []
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
