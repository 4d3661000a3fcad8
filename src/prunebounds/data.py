"""Data sets as tensors in memory: MNIST, CIFAR-10 and a synthetic stand-in.

The paper trains on MNIST and CIFAR-10 with inputs normalised by mean 0.5 and standard
deviation 0.5 (so pixels lie in [-1, 1]) and uses 80% of the training set for training.
Files are read through ``torchvision.datasets`` from the conventional root folder
(``<root>/MNIST/raw``, ``<root>/cifar-10-batches-py``); :func:`prepare` fills that folder
from ``../shared/data`` when it exists and otherwise lets torchvision download.
Whole data sets are held as float tensors and batched by index (:func:`batches`), so
training does no per-sample PIL work; :meth:`DataBundle.to` moves a data set to a device
once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .devices import resolve_device
from .errors import DataUnavailableError, ParameterError
from .norms import max_input_norm
from .validate import check_choice, check_int, check_real

DATASETS = ("mnist", "cifar10", "synthetic")
INPUT_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "synthetic": (1, 28, 28)}
N_CLASSES = 10
MEAN, STD = 0.5, 0.5  # the paper's normalisation, for every channel

FIX_HINT = "run `make data` (or `python -m prunebounds.data {name}`) with network access"


# --------------------------------------------------------------------------- folders
def project_root() -> Path | None:
    """The source checkout this package was installed from (editable), if any."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "_toc.yml").is_file():
            return parent
    return None


def default_root() -> Path:
    """Data folder: ``$PRUNEBOUNDS_DATA``, else ``<checkout>/data``, else ``./data``."""
    env = os.environ.get("PRUNEBOUNDS_DATA")
    if env:
        return Path(env)
    root = project_root()
    return (root if root is not None else Path.cwd()) / "data"


def shared_root() -> Path | None:
    """Read-only shared data: ``$PRUNEBOUNDS_SHARED_DATA`` or ``<checkout>/../shared/data``."""
    env = os.environ.get("PRUNEBOUNDS_SHARED_DATA")
    if env is not None:
        return Path(env) if env and Path(env).is_dir() else None
    root = project_root()
    if root is not None and (root.parent / "shared" / "data").is_dir():
        return root.parent / "shared" / "data"
    return None


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- prepare
# An idx file holds a big-endian header (magic, then one 4-byte size per dimension) and
# the product of the sizes in bytes: magic 2051 = images (3 dims), 2049 = labels (1 dim).
# The genuine MNIST files are 47040016, 60008, 7840016 and 10008 bytes (16 + 60000*28*28,
# 8 + 60000, 16 + 10000*28*28, 8 + 10000; ../shared/data/SOURCES.md lists them).
_IDX_DIMS = {2051: 3, 2049: 1}


def _idx_problem(path: Path) -> str | None:
    """Why the extracted idx file ``path`` cannot be read, or None when it is complete.

    The size the file must have is read from its own header, so a truncated copy (a
    killed extraction or download) is found before torchvision fails on a reshape.
    """
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        return f"truncated ({size} bytes, not even an idx header)"
    magic = int.from_bytes(head[:4], "big")
    if magic not in _IDX_DIMS:
        return f"not an MNIST idx file (magic number {magic}, expected 2051 or 2049)"
    ndim = _IDX_DIMS[magic]
    if len(head) < 4 + 4 * ndim:
        return f"truncated ({size} bytes, not even an idx header)"
    dims = [int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    payload = 1
    for n in dims:
        payload *= n
    expected = 4 + 4 * ndim + payload
    if size != expected:
        return (f"{'truncated' if size < expected else 'too long'} ({size} bytes; its header "
                f"({' x '.join(map(str, dims))}) needs {expected})")
    return None


def _mnist_problems(root: Path) -> dict[Path, str]:
    """The extracted MNIST files under ``root`` that are missing or incomplete."""
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    out = {}
    for fname, _ in MNIST.resources:
        path = raw / Path(fname).stem
        problem = _idx_problem(path)
        if problem is not None:
            out[path] = problem
    return out


def _archives(folder: Path | None, names: list[str]) -> bool:
    return folder is not None and all((folder / f).is_file() for f in names)


def _extract_mnist(src: Path, raw: Path, names: list[str], *, strict: bool) -> bool:
    """Extract the archives ``names`` from ``src`` into ``raw`` if their md5s are
    torchvision's. A mismatch raises when ``strict`` (the shared folder must hold the
    genuine files) and otherwise returns False, extracting nothing."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import extract_archive

    md5s = dict(MNIST.resources)
    for fname in names:
        if _md5(src / fname) != md5s[fname]:
            if not strict:
                return False
            raise DataUnavailableError(
                f"{src / fname} does not match torchvision's md5 {md5s[fname]}; "
                f"remove it or point PRUNEBOUNDS_SHARED_DATA elsewhere"
            )
    raw.mkdir(parents=True, exist_ok=True)
    for fname in names:
        extract_archive(str(src / fname), str(raw))
    return True


def _describe(problems: dict[Path, str]) -> str:
    return "; ".join(f"{p.name} is {why}" for p, why in problems.items())


def _prepare_mnist(root: Path, shared: Path | None, download: bool) -> None:
    """Make the four extracted MNIST files complete under ``root/MNIST/raw``.

    A missing or damaged (e.g. truncated) extracted file is extracted again from the
    archives beside it (torchvision's download keeps them) or in the shared folder,
    whichever holds genuine ones, else downloaded; a warning names what was repaired.
    """
    from torchvision.datasets import MNIST

    problems = _mnist_problems(root)
    if not problems:
        return
    raw = root / "MNIST" / "raw"
    damaged = {p: why for p, why in problems.items() if why != "missing"}
    names = [f for f, _ in MNIST.resources if raw / Path(f).stem in problems]
    sources = [(raw, False)] + ([(shared / "MNIST" / "raw", True)] if shared is not None else [])
    for src, strict in sources:
        if _archives(src, names) and _extract_mnist(src, raw, names, strict=strict):
            if damaged:
                warnings.warn(f"MNIST: {_describe(damaged)}; extracted it again from {src}",
                              stacklevel=3)
            left = _mnist_problems(root)
            if left:
                raise DataUnavailableError(
                    f"MNIST in {raw} is incomplete even after extracting the archives in "
                    f"{src} ({_describe(left)}); delete {raw} and " + FIX_HINT.format(name="mnist"))
            return
    if not download:
        raise DataUnavailableError(
            f"MNIST not found in {raw}"
            + (f" ({_describe(damaged)}: delete the damaged files)" if damaged else "")
            + "; " + FIX_HINT.format(name="mnist")
        )
    for path in damaged:  # else torchvision takes them as present and skips the download
        path.unlink()
    try:
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
    except Exception as exc:  # torchvision raises several types when offline
        raise DataUnavailableError(
            f"MNIST is not in {raw} and could not be downloaded ({type(exc).__name__}: "
            f"{exc}); " + FIX_HINT.format(name="mnist")
        ) from None
    left = _mnist_problems(root)
    if left:
        raise DataUnavailableError(f"MNIST downloaded into {raw} is incomplete ({_describe(left)}); "
                                   f"delete {raw} and " + FIX_HINT.format(name="mnist"))
    if damaged:
        warnings.warn(f"MNIST: {_describe(damaged)}; downloaded it again", stacklevel=3)


def _prepare_cifar10(root: Path, shared: Path | None, download: bool) -> None:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import extract_archive

    folder = root / CIFAR10.base_folder
    if folder.is_dir():
        return
    if shared is not None:
        if (shared / CIFAR10.base_folder).is_dir():
            shutil.copytree(shared / CIFAR10.base_folder, folder)
            return
        if (shared / CIFAR10.filename).is_file():
            extract_archive(str(shared / CIFAR10.filename), str(root))
            return
    if not download:
        raise DataUnavailableError(
            f"CIFAR-10 not found in {folder}; " + FIX_HINT.format(name="cifar10")
        )
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:
        raise DataUnavailableError(
            f"CIFAR-10 is not in {folder} and could not be downloaded "
            f"({type(exc).__name__}: {exc}); " + FIX_HINT.format(name="cifar10")
        ) from None


def prepare(name: str, root: str | Path | None = None, *, download: bool = True) -> Path:
    """Make data set ``name`` readable by torchvision under ``root`` and return ``root``.

    Order of preference: files already in ``root``; the genuine files in the shared data
    folder (MNIST archives are checked against torchvision's md5 table and extracted);
    a torchvision download. Raises :class:`DataUnavailableError` naming the folder and
    the command that fixes it when none of these works.
    """
    check_choice("dataset", name, DATASETS)
    root = Path(root) if root is not None else default_root()
    if name == "synthetic":
        return root
    root.mkdir(parents=True, exist_ok=True)
    {"mnist": _prepare_mnist, "cifar10": _prepare_cifar10}[name](root, shared_root(), download)
    return root


def available(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name`` can be loaded without a download (files present or shared)."""
    try:
        prepare(name, root, download=False)
    except DataUnavailableError:
        return False
    return True


# --------------------------------------------------------------------------- tensors
@dataclass(frozen=True)
class Split:
    """Inputs ``X`` (n x features, float32, normalised) and labels ``y`` (int64)."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: str | torch.device) -> "Split":
        """The split on ``device`` (the same object when it is there already)."""
        device = torch.device(device)
        if self.X.device == device and self.y.device == device:
            return self
        return Split(self.X.to(device), self.y.to(device))


@dataclass(frozen=True)
class DataBundle:
    """A data set split into train (80%), validation (20%) and test sets."""

    name: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]
    n_classes: int = N_CLASSES

    @property
    def n_features(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    @property
    def device(self) -> torch.device:
        """Where the training inputs are."""
        return self.train.X.device

    def to(self, device: str | torch.device) -> "DataBundle":
        """The data set with every split on ``device`` (moved once; the same object when
        it is there already). ``device`` is a ``torch.device`` or a name resolved by
        :func:`prunebounds.devices.resolve_device`."""
        device = resolve_device(device)
        if all(s.X.device == device for s in (self.train, self.val, self.test)):
            return self
        return dataclasses.replace(self, train=self.train.to(device), val=self.val.to(device),
                                   test=self.test.to(device))

    def max_input_norm(self) -> float:
        """B = max ||x||_2 over the training inputs (the paper's input bound)."""
        return max_input_norm(self.train.X)


def _normalise(pixels_uint8: torch.Tensor) -> torch.Tensor:
    x = pixels_uint8.to(torch.float32).div_(255.0)
    return x.sub_(MEAN).div_(STD).flatten(1)


def _read_mnist(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    ds = MNIST(str(root), train=train, download=False)
    return _normalise(ds.data), ds.targets.to(torch.int64)


def _read_cifar10(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(str(root), train=train, download=False)
    pixels = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N,C,H,W
    return _normalise(pixels), torch.as_tensor(ds.targets, dtype=torch.int64)


def synthetic(n: int, seed: int, *, noise: float = 0.6) -> Split:
    """A seeded MNIST-shaped data set: 10 smooth class templates plus pixel noise.

    Each class has a template drawn once from a fixed generator (smoothed Gaussian noise
    squashed into [-1, 1]); a sample is its class template plus ``noise`` times standard
    Gaussian noise, clipped to [-1, 1] like normalised MNIST pixels. Linearly separable
    on average but not trivially so; for tests and the smoke profile only.
    """
    check_int("n", n, minimum=1)
    gen = torch.Generator().manual_seed(12345)  # templates do not depend on `seed`
    base = torch.randn(N_CLASSES, 1, 28, 28, generator=gen)
    kernel = torch.ones(1, 1, 5, 5) / 25.0
    templates = torch.tanh(3 * torch.nn.functional.conv2d(base, kernel, padding=2)).flatten(1)
    g = torch.Generator().manual_seed(int(seed))
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    X = templates[y] + noise * torch.randn(n, 28 * 28, generator=g)
    return Split(X.clamp_(-1.0, 1.0), y)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str, train_fraction: float, max_train: int | None,
                 download: bool) -> DataBundle:
    if name == "synthetic":
        full, test = synthetic(2500, seed=1), synthetic(500, seed=2)
    else:
        prepare(name, root, download=download)
        read = {"mnist": _read_mnist, "cifar10": _read_cifar10}[name]
        full, test = Split(*read(Path(root), True)), Split(*read(Path(root), False))
    # The split is fixed (seed 0) so that networks of every seed see the same data.
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    n_train = int(round(train_fraction * len(full)))
    tr, va = perm[:n_train], perm[n_train:]
    if max_train is not None:
        tr = tr[:max_train]
    return DataBundle(
        name=name,
        train=Split(full.X[tr], full.y[tr]),
        val=Split(full.X[va], full.y[va]),
        test=test,
        input_shape=INPUT_SHAPES[name],
    )


def load(name: str, root: str | Path | None = None, *, train_fraction: float = 0.8,
         max_train: int | None = None, download: bool = True) -> DataBundle:
    """Load data set ``name`` as tensors: train (``train_fraction`` of the training set,
    at most ``max_train`` samples), validation (the rest) and test.

    Inputs are flattened and normalised to [-1, 1] as in the paper. Results are cached
    in memory for the life of the process.
    """
    check_choice("dataset", name, DATASETS)
    check_real("train_fraction", train_fraction, minimum=0.0, maximum=1.0)
    if not 0.0 < train_fraction <= 1.0:
        raise ParameterError(f"train_fraction must lie in (0, 1], got {train_fraction}")
    if max_train is not None:
        max_train = check_int("max_train", max_train, minimum=1)
    root = Path(root) if root is not None else default_root()
    return _load_cached(name, str(root), float(train_fraction), max_train, download)


def batches(n: int, batch_size: int, generator: torch.Generator | None = None):
    """Index tensors covering ``range(n)`` in batches; shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return order.split(batch_size)


def augment_cifar(X: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The paper's CIFAR-10 augmentation on a batch: random crop (zero padding ``pad``
    in pixel space) and horizontal flip with probability 1/2, done on tensors."""
    n = X.shape[0]
    img = X.view(n, 3, 32, 32)
    fill = (0.0 - MEAN) / STD  # a black pixel after normalisation
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad), value=fill)
    # the random offsets and flips come from the (CPU) generator, then go to X's device
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(32)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(32)[None, :])[:, None, None, :]
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    index = [torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
             rows, cols]
    out = padded[tuple(i.to(X.device) for i in index)]
    return out.reshape(n, -1)


def main(argv: list[str] | None = None) -> int:
    """``python -m prunebounds.data [NAME ...]``: prepare data sets (default: mnist)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m prunebounds.data", description=main.__doc__)
    parser.add_argument("names", nargs="*", default=["mnist"], help=f"any of {', '.join(DATASETS)}")
    parser.add_argument("--root", default=None, help="data folder (default: %(default)s -> ./data)")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            root = prepare(name, args.root)
        except (DataUnavailableError, ParameterError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: ready in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
