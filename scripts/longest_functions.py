"""The longest functions of the package (lines from ``def`` to the function's last line,
docstring included), at the working tree or at a git commit.

    python scripts/longest_functions.py [--commit REV] [--top 5]
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sources(commit: str | None) -> dict[str, str]:
    if commit is None:
        return {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "src" / "noisyrnn").rglob("*.py")}
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src/noisyrnn"],
                          capture_output=True, check=True).stdout
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                out[member.name] = tar.extractfile(member).read().decode()
    return out


def functions(files: dict[str, str]) -> list[tuple[int, str]]:
    found = []
    for path, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((node.end_lineno - node.lineno + 1, f"{path}::{node.name}"))
    return sorted(found, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commit", default=None)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    rows = functions(sources(args.commit))
    print(f"| lines | function ({args.commit or 'working tree'}) |\n|---|---|")
    for n, name in rows[: args.top]:
        print(f"| {n} | `{name}` |")


if __name__ == "__main__":
    main()
