"""The package boundary: `pip install -e .` gives `import dadq` anywhere and the `dadq` command; no file
edits the import path; the dependency lists agree on the torch pin."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = "install the project first: pip install -r requirements.txt (or pip install -e '.[app,test]')"


def _env():
    # no PYTHONPATH: the installed package, not the checkout on the path, must be what imports
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_import_from_any_folder(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import dadq; print(dadq.__file__)"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{INSTALL_HINT}\n{r.stderr[-1500:]}"
    assert Path(r.stdout.strip()).resolve().parent.parent == ROOT  # the editable install of this checkout


def test_console_command_matches_python_m(tmp_path):
    exe = shutil.which("dadq") or shutil.which("dadq", path=str(Path(sys.executable).parent))
    assert exe, f"no `dadq` command on PATH: {INSTALL_HINT}"
    r = subprocess.run([exe, "--help"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1500:]
    for cmd in ("profile", "allocate", "sample", "fid", "sweep"):
        assert cmd in r.stdout
    m = subprocess.run([sys.executable, "-m", "dadq", "--help"], cwd=tmp_path, env=_env(), capture_output=True,
                       text=True, timeout=120)
    subcommands = lambda text: re.search(r"\{([\w,-]+)\}", text).group(1)  # noqa: E731
    assert m.returncode == 0 and subcommands(m.stdout) == subcommands(r.stdout)  # the same parser


def test_no_import_path_edits():
    """Every module imports through the package or the repository root (python -m ...), never by editing
    the interpreter's module search path."""
    needle = "sys" + ".path"  # spelled apart so that this file does not match itself
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=True).stdout.split()
        files = [ROOT / f for f in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every .py outside hidden folders
        files = [p for p in ROOT.rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    assert len(files) > 20
    hits = [f"{f.relative_to(ROOT)}:{i}" for f in files if f.is_file()
            for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1) if needle in line]
    assert not hits, f"{needle} edited in: {hits}"


def test_dependency_lists():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in meta["dependencies"]  # any other spec pulls a CUDA build of several GB
    assert meta["scripts"]["dadq"] == "dadq.cli:main"
    names = lambda reqs: {re.split(r"[<>=\[ ;]", r)[0].lower() for r in reqs}  # noqa: E731
    assert {"gradio", "gradio_client"} <= names(meta["optional-dependencies"]["app"])
    assert {"pytest", "playwright", "scikit-image", "dadq"} <= names(meta["optional-dependencies"]["test"])
    assert not {"gradio", "pytest", "playwright", "scikit-image"} & names(meta["dependencies"])  # runtime only
    reqs = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert reqs == ["torch==2.13.0", "-e .[app,test]"]
