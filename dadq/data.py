"""MNIST-format IDX datasets, read with numpy straight from the original ``.gz`` files (no torchvision).

Where the files are looked for, in order (the first folder that holds both files of a split wins):

1. an explicit data folder: the ``data_root`` argument, else the ``DADQ_DATA`` environment variable
   (the scripts' ``--data`` option sets the argument);
2. the test splits shipped in the repository, ``assets/data/<name>/t10k-*.gz`` (test split only);
3. ``../shared/data`` beside the checkout, where the training sets live on the development machines.

A data folder holds ``mnist/`` and ``fashion-mnist/``, each with the four original files
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``). ``download(name, root)`` fetches them from the public mirrors and checks
their sha256; ``load_dataset(..., download=True)`` does so when a split is found nowhere.

    python -m dadq.data mnist fashion-mnist --root ~/data   # download both, checksums verified
"""
from __future__ import annotations

import gzip
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .io import file_sha256  # noqa: F401  (callers check downloads with dadq.data.file_sha256)
from .models import ASSETS_DIR

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
DATA_ENV = "DADQ_DATA"
SHIPPED_DATA = ASSETS_DIR / "data"  # the two 10k test splits, in the repository
SHARED_DATA = ASSETS_DIR.parent.parent / "shared" / "data"  # ../shared/data beside the checkout
DEFAULT_DOWNLOAD_ROOT = Path("~/.cache/dadq/data")

# Public mirrors of the original files (torchvision's MNIST mirror; Zalando's own bucket).
MIRRORS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
# sha256 of the original gzip files, as published.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}


def _check(name: str, split: str | None = None) -> None:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}.")
    if split is not None and split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose 'train' or 'test'.")


def split_files(split: str) -> tuple[str, str]:
    """The (images, labels) file names of a split."""
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def explicit_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The data folder asked for: ``data_root``, else ``$DADQ_DATA``, else None."""
    chosen = data_root if data_root is not None else os.environ.get(DATA_ENV) or None
    return None if chosen is None else Path(chosen).expanduser()


def search_roots(split: str, data_root: str | os.PathLike | None = None) -> list[Path]:
    """The folders (each holding ``<name>/``) that ``load_dataset`` looks in for ``split``, in order."""
    roots = []
    explicit = explicit_root(data_root)
    if explicit is not None:
        roots.append(explicit)
    if split == "test":
        roots.append(SHIPPED_DATA)
    roots.append(SHARED_DATA)
    return roots


def find_split(name: str, split: str, data_root: str | os.PathLike | None = None) -> Path | None:
    """The first folder ``<root>/<name>`` holding both files of ``split``, or None."""
    _check(name, split)
    explicit = explicit_root(data_root)
    if explicit is not None and not explicit.is_dir():
        source = "data_root" if data_root is not None else DATA_ENV
        raise FileNotFoundError(f"data folder {explicit} ({source}) does not exist; pass the folder that holds "
                                f"mnist/ and fashion-mnist/.")
    for root in search_roots(split, data_root):
        folder = root / name
        if all((folder / f).is_file() for f in split_files(split)):
            return folder
    return None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one gzip-compressed IDX file. Images -> uint8 [N, rows, cols]; labels -> uint8 [N]."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"IDX file {path} not found. Put the MNIST/Fashion-MNIST .gz files there, pass --data, or set "
            f"{DATA_ENV} to the folder holding mnist/ and fashion-mnist/."
        )
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic == 2051:
        n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        data = np.frombuffer(raw, dtype=np.uint8, offset=16)
        if data.size != n * rows * cols:
            raise ValueError(f"{path} is truncated: expected {n * rows * cols} pixels, found {data.size}.")
        return data.reshape(n, rows, cols)
    if magic == 2049:
        n = int.from_bytes(raw[4:8], "big")
        data = np.frombuffer(raw, dtype=np.uint8, offset=8)
        if data.size != n:
            raise ValueError(f"{path} is truncated: expected {n} labels, found {data.size}.")
        return data
    raise ValueError(f"{path} is not an IDX image or label file (magic {magic}, expected 2051 or 2049).")


def load_dataset(name: str = "mnist", split: str = "train", data_root: str | os.PathLike | None = None,
                 download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28] and labels uint8 [N] of ``name`` ('mnist' | 'fashion-mnist'),
    ``split`` ('train' | 'test'), found as the module docstring says.

    download: when the split is found nowhere, fetch it (``download``) into the explicit data folder, or
    ``~/.cache/dadq/data`` without one. Otherwise a missing split raises FileNotFoundError naming the
    folders looked in and the fix.
    """
    folder = find_split(name, split, data_root)
    if folder is None:
        explicit = explicit_root(data_root)
        if download:
            folder = download_dataset(name, explicit or DEFAULT_DOWNLOAD_ROOT, splits=(split,))
        else:
            looked = ", ".join(str(r / name) for r in search_roots(split, data_root))
            raise FileNotFoundError(
                f"the {name} {split} split is not here (looked in {looked}). Put "
                f"{' and '.join(split_files(split))} in <DIR>/{name}/ and pass --data DIR (or set {DATA_ENV}=DIR), "
                f"or download it with `python -m dadq.data {name} --root DIR` (scripts: --download)."
            )
    images_file, labels_file = split_files(split)
    return read_idx(folder / images_file), read_idx(folder / labels_file)


def download(name: str, root: str | os.PathLike, splits=SPLITS, mirror: str | None = None,
             timeout: float = 60.0) -> Path:
    """Fetch the original ``.gz`` files of ``name`` into ``<root>/<name>/`` and return that folder.

    Files already there with the right sha256 are kept. Each download goes to a temporary file beside
    its target, is checked against the published sha256, and only then renamed into place, so an
    interrupted or corrupt download never leaves a file under the real name.
    mirror: base URL to fetch from (default ``MIRRORS[name]``; any urllib URL, ``file://`` included).
    Raises ConnectionError when a file cannot be fetched (no network?) and ValueError on a checksum
    mismatch; both name the file, the URL and the fix.
    """
    _check(name)
    for split in splits:
        _check(name, split)
    folder = Path(root).expanduser() / name
    folder.mkdir(parents=True, exist_ok=True)
    base = mirror or MIRRORS[name]
    if not base.endswith("/"):
        base += "/"
    for split in splits:
        for fname in split_files(split):
            target = folder / fname
            want = SHA256[name][fname]
            if target.is_file() and file_sha256(target) == want:
                continue
            url = base + fname
            tmp = folder / f".{fname}.{os.getpid()}.tmp"
            try:
                try:
                    with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                        shutil.copyfileobj(resp, out, 1 << 20)
                except (urllib.error.URLError, OSError) as e:
                    reason = getattr(e, "reason", None) or e
                    raise ConnectionError(
                        f"could not download {url} ({reason}; no network?). Put the IDX files ({fname} and the "
                        f"others of {name}) in {folder}, or pass --data DIR to a folder that holds {name}/."
                    ) from None
                got = file_sha256(tmp)
                if got != want:
                    raise ValueError(f"checksum mismatch for {url}: sha256 {got}, expected {want}. The mirror "
                                     f"served another file; nothing was written to {target}. Try again or fetch "
                                     f"the original file by hand into {folder}.")
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    return folder


download_dataset = download  # the name load_dataset uses (its own argument is called download)


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] -> float32 [N, 1, H, W] in [-1, 1], the range the DDPM is trained on."""
    return (images.astype(np.float32)[:, None] / 127.5) - 1.0


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dadq.data", description="Download MNIST / Fashion-MNIST IDX files "
                                 "from the public mirrors, sha256 verified.")
    ap.add_argument("names", nargs="+", choices=DATASETS)
    ap.add_argument("--root", default=str(DEFAULT_DOWNLOAD_ROOT), help="data folder (default %(default)s)")
    ap.add_argument("--split", choices=SPLITS, action="append", help="only this split (repeatable; default both)")
    args = ap.parse_args(argv)
    for name in args.names:
        try:
            folder = download(name, args.root, splits=tuple(args.split or SPLITS))
        except (ConnectionError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{folder}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
