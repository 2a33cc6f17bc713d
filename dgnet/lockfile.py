"""The lock file ``requirements.lock``: every package, pinned with its hashes.

    python dgnet/lockfile.py check   # the lock still matches pyproject.toml's dependency lists
    python dgnet/lockfile.py stamp   # record their hash in the lock (``make lock`` does)

The lock is written by pip-tools (``pip-compile --generate-hashes``, see
``make lock``) from pyproject.toml; its first line records a sha256 of
pyproject.toml's dependency lists (runtime, extras, Python), so a changed pin
without a refreshed lock is one clear error before anything is installed.
Standard library only: ``make install`` runs this file before the project's
dependencies exist. ``dgnet env`` compares the installed packages with it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

LOCK = "requirements.lock"
PYPROJECT = "pyproject.toml"
HASH_LINE = "# pyproject-dependencies-sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class LockError(Exception):
    """The lock is missing, unstamped or out of date (the message says what to do)."""


def canonical(name: str) -> str:
    """PEP 503 names: ``Flufl.Lock`` and ``flufl_lock`` are both ``flufl-lock``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependencies_hash(pyproject: str | Path = PYPROJECT) -> str:
    """sha256 of the dependency lists of pyproject.toml (comments and layout do not count)."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    lists = {"dependencies": [" ".join(d.split()) for d in project.get("dependencies", [])],
             "optional-dependencies": {k: [" ".join(d.split()) for d in v]
                                       for k, v in project.get("optional-dependencies", {}).items()},
             "requires-python": project.get("requires-python")}
    return hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest()


def lock_hash(lock: str | Path = LOCK) -> str:
    """sha256 of the lock file's bytes: the name of an environment in the reports."""
    return hashlib.sha256(Path(lock).read_bytes()).hexdigest()


def recorded_hash(lock: str | Path = LOCK) -> str | None:
    for line in Path(lock).read_text().splitlines():
        if line.startswith(HASH_LINE):
            return line[len(HASH_LINE):].strip()
    return None


def pins(lock: str | Path = LOCK) -> dict[str, str]:
    """``{canonical name: version}`` of every package the lock pins."""
    found = {}
    for line in Path(lock).read_text().splitlines():
        m = PIN.match(line)
        if m:
            found[canonical(m.group(1))] = m.group(2)
    return found


def check(pyproject: str | Path = PYPROJECT, lock: str | Path = LOCK) -> None:
    """Raise :class:`LockError` unless ``lock`` records the hash of ``pyproject``'s dependency lists."""
    if not Path(lock).is_file():
        raise LockError(f"{lock}: missing; run `make lock` and commit it")
    recorded, now = recorded_hash(lock), dependencies_hash(pyproject)
    if recorded is None:
        raise LockError(f"{lock}: has no '{HASH_LINE.strip()}' line; run `make lock` and commit it")
    if recorded != now:
        raise LockError(f"{lock}: out of date with {pyproject}'s dependencies (recorded {recorded[:12]}, "
                        f"now {now[:12]}); run `make lock` and commit {lock}")


def stamp(pyproject: str | Path = PYPROJECT, lock: str | Path = LOCK) -> None:
    """Write the hash line as the lock's first line (replacing an earlier one)."""
    lines = [ln for ln in Path(lock).read_text().splitlines() if not ln.startswith(HASH_LINE)]
    tmp = Path(f"{lock}.tmp")
    tmp.write_text("\n".join([HASH_LINE + dependencies_hash(pyproject), *lines]) + "\n")
    tmp.replace(lock)


def differences(installed: dict[str, str], locked: dict[str, str],
                ignore: tuple[str, ...] = ("pip", "dgnet")) -> list[str]:
    """What differs between installed ``{name: version}`` and the lock's pins, one entry a package."""
    installed = {canonical(k): v for k, v in installed.items() if canonical(k) not in ignore}
    out = []
    for name in sorted(set(installed) | set(locked)):
        have, want = installed.get(name), locked.get(name)
        if have != want:
            out.append(f"{name} {have or 'missing'} (lock {want or 'none'})")
    return out


def main(argv: list[str]) -> int:
    if argv not in (["check"], ["stamp"]):
        print("usage: python dgnet/lockfile.py check|stamp", file=sys.stderr)
        return 2
    try:
        check() if argv == ["check"] else stamp()
    except LockError as e:
        print(f"dgnet: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
