"""The environment of a result: installed packages, torch's build, CPU, threads, and the lock.

    dgnet env [--lock requirements.lock] [--json]

Every MLflow run carries the same (:mod:`dgnet.tracking`: the key fields as
``env.*`` tags, everything in the artifact ``environment.json``), so a number
can be traced to the exact versions and kernels that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

from dgnet import lockfile

REPO_LOCK = Path(__file__).resolve().parent.parent / lockfile.LOCK


def installed_packages() -> dict[str, str]:
    """``{canonical name: version}`` of every installed distribution."""
    return {lockfile.canonical(d.metadata["Name"]): d.version for d in metadata.distributions()
            if d.metadata["Name"]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_build() -> dict:
    """torch's version and the kernels it was built with (CUDA/cuDNN, oneDNN, MKL, OpenMP)."""
    import torch

    config = torch.__config__.show()
    onednn = re.search(r"oneDNN v?([\d.]+)|MKL-DNN v?([\d.]+)", config)
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "onednn": (onednn.group(1) or onednn.group(2)) if onednn else None,
        "mkl": torch.backends.mkl.is_available(),
        "openmp": torch.backends.openmp.is_available(),
        "threads": torch.get_num_threads(),
        "config": config,
    }


def lock_status(lock: str | Path = REPO_LOCK, installed: dict[str, str] | None = None) -> dict:
    """``{"lock", "sha256", "differ": [...], "line"}``; ``line`` is ``match`` or ``N differ: ...``."""
    lock = Path(lock)
    if not lock.is_file():
        return {"lock": str(lock), "sha256": None, "differ": None, "line": f"no lock file at {lock}"}
    differ = lockfile.differences(installed_packages() if installed is None else installed, lockfile.pins(lock))
    line = "match" if not differ else f"{len(differ)} differ: " + ", ".join(differ)
    return {"lock": str(lock), "sha256": lockfile.lock_hash(lock), "differ": differ, "line": line}


def describe(lock: str | Path = REPO_LOCK) -> dict:
    """Everything :func:`main` prints, as one dict (the MLflow artifact ``environment.json``)."""
    packages = installed_packages()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_build": torch_build(),
        "lock": lock_status(lock, packages),
        "packages": dict(sorted(packages.items())),
    }


def build_line(build: dict) -> str:
    if build["cuda"]:
        kernels = f"CUDA {build['cuda']}, cuDNN {build['cudnn']}"
    else:
        kernels = "CPU only"
    return (f"{kernels}; oneDNN {build['onednn'] or 'none'}; MKL {'yes' if build['mkl'] else 'no'}; "
            f"OpenMP {'yes' if build['openmp'] else 'no'}")


def tags(env: dict) -> dict[str, str]:
    """The key fields as MLflow tags (the full record is the artifact)."""
    build, lock = env["torch_build"], env["lock"]
    return {
        "env.lock_sha256": str(lock["sha256"]),
        "env.lock_match": lock["line"][:500],
        "env.python": env["python"],
        "env.torch": build["torch"],
        "env.torch_build": build_line(build),
        "env.gpu": str(build["gpu"]),
        "env.cpu": env["cpu"],
        "env.threads": str(build["threads"]),
        **{f"env.{name}": env["packages"].get(name, "missing") for name in ("numpy", "pillow", "torchvision")},
    }


def render(env: dict) -> str:
    build, lock = env["torch_build"], env["lock"]
    lines = [
        f"python     {env['python']} ({env['platform']})",
        f"torch      {build['torch']}: {build_line(build)}",
        f"gpu        {build['gpu'] or 'none'}",
        f"cpu        {env['cpu']} ({env['cpu_count']} logical CPUs)",
        f"threads    {build['threads']} (torch intra-op)",
        f"lock       {lock['lock']} sha256 {lock['sha256'] or '-'}",
        f"installed  {lock['line']}",
        f"packages   {len(env['packages'])}:",
        *(f"  {name}=={version}" for name, version in env["packages"].items()),
    ]
    return "\n".join(lines)


def _env_command(args: argparse.Namespace) -> int:
    env = describe(args.lock)
    print(json.dumps(env, indent=2) if args.json else render(env))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("env", help="installed versions, torch's build, CPU, threads; do they match the lock",
                       description=__doc__.splitlines()[0])
    p.add_argument("--lock", default=str(REPO_LOCK), help="the lock file to compare with (default: the repository's)")
    p.add_argument("--json", action="store_true", help="everything as one JSON object")
    p.set_defaults(func=_env_command)
