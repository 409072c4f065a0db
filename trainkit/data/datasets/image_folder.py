"""Your own images: ``root/<class>/*.png`` (torchvision's ``ImageFolder`` layout) as a data set.

Classes are the sorted names of the folders under ``root`` and a sample's
label is the index of its folder, exactly as torchvision's ``ImageFolder``
(its ``classes``, ``class_to_idx``, ``samples``, ``targets`` and ``imgs`` are
the same lists); files are found recursively under each class folder (links
followed, each folder visited once), sorted, and kept when their name ends in
``.png``, ``.jpg``, ``.jpeg``, ``.bmp`` or ``.webp`` (any case) or when
``is_valid_file`` says so. Folders whose name starts with a dot
(``.ipynb_checkpoints``) are not classes.

With ``image_size`` (what a config always gives) every image is decoded once,
to that size (the resize policy ``fit``: see :mod:`trainkit.data.images`), into
the uint8 cache of :mod:`trainkit.data.image_cache`; the data set is then
array-backed like CIFAR (``ds[i]`` is a uint8 (C, H, W) array, batches are
gathered with one fancy-index) and reads no image file after the first time.
Without ``image_size``, or with a ``loader``, it behaves as torchvision's:
``ds[i]`` calls ``loader(path)`` (a PIL image in ``mode``, by default) and the
transform on it, one sample at a time.

Files that cannot be used (:class:`~trainkit.data.images.BadImage`) and class
folders without images stop the load with a :class:`DataError` naming them,
unless ``skip_bad_files`` is set: then they are left out, counted and listed
in one :class:`~trainkit.data.images.DataWarning`.

In a config (``dataset: image_folder``) the layout may also be split:
``root/train/<class>/...`` with ``root/val/<class>/...`` and/or
``root/test/<class>/...`` (``root`` then holds nothing but those folders). The
classes are the training folder's; a ``val`` or ``test`` class folder that
training lacks is refused. Without ``val/`` the validation part is
``val_split`` of the training images (stratified); without ``test/``,
``test_split`` of them (default 0: no test part).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import REQUIRED, SIZE, Bool, Field, Float, Str, dataset, pair

from ..dataset import ArrayDataset
from ..image_cache import decode_files
from ..images import FITS, IMAGE_EXTENSIONS, MODES, BadImage, DataWarning, ImageSpec, decode_image, open_image

__all__ = ["ImageFolder", "find_classes", "make_dataset", "pil_loader", "default_loader", "SPLIT_FOLDERS"]

#: Names of the split folders of a split layout.
SPLIT_FOLDERS = ("train", "val", "test")
#: More files than this under one root is not an image folder one trains on here.
MAX_FILES = 5_000_000
_SHOWN = 8  # bad files named in a warning or an error


def find_classes(directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
    """The class folders of ``directory``, sorted, and their indices (torchvision's ``find_classes``)."""
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        raise DataError(f"{directory}: image folder not found") from None
    except NotADirectoryError:
        raise DataError(f"{directory}: not a folder (an image folder holds one folder per class)") from None
    except OSError as exc:
        raise DataError(f"{directory}: cannot list ({exc.strerror or exc})") from None
    if not names:
        raise DataError(f"{directory}: no class folders found (expected {directory}/<class>/<image files>)")
    return names, {c: i for i, c in enumerate(names)}


def _walk(top: Path):
    """``os.walk(top, followlinks=True)`` in sorted order, each directory once (a link loop ends)."""
    seen = set()
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{d}: cannot list ({exc.strerror or exc})") from None
        files = [e.name for e in entries if not e.is_dir()]
        dirs = [e.name for e in entries if e.is_dir()]
        yield d, files
        # torchvision sorts os.walk's (root, dirs, files) tuples, which orders sub-folders by path.
        stack.extend(d / name for name in reversed(dirs))


def make_dataset(directory: str | os.PathLike, class_to_idx: dict[str, int],
                 extensions: Sequence[str] | None = IMAGE_EXTENSIONS,
                 is_valid_file: Callable[[str], bool] | None = None,
                 allow_empty: bool = False) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples, empty classes)``: ``(path, class index)`` for each image, as torchvision's ``make_dataset``.

    Raises DataError for classes without any file unless ``allow_empty``
    (then they are returned as the second item).
    """
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("Both extensions and is_valid_file cannot be None or not None at the same time")
    if is_valid_file is None:
        lowered = tuple(e.lower() for e in extensions)

        def is_valid_file(p: str) -> bool:
            return p.lower().endswith(lowered)

    directory = Path(directory)
    samples, empty = [], []
    for name in sorted(class_to_idx):
        index = class_to_idx[name]
        target = directory / name
        if not target.is_dir():
            empty.append(name)
            continue
        found = 0
        for folder, files in _walk(target):
            for fname in files:
                path = os.path.join(folder, fname)
                if is_valid_file(path):
                    samples.append((path, index))
                    found += 1
                    if len(samples) > MAX_FILES:
                        raise DataError(f"{directory}: more than {MAX_FILES:,} image files")
        if not found:
            empty.append(name)
    if empty and not allow_empty:
        where = ", ".join(str(directory / c) for c in empty[:_SHOWN]) + (" ..." if len(empty) > _SHOWN else "")
        raise DataError(f"{where}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in "
                        f"{'this class folder' if len(empty) == 1 else f'{len(empty)} class folders'}; add images, "
                        "remove the folder, or set data.skip_bad_files: true to keep it as a class without samples")
    return samples, empty


def pil_loader(path: str | os.PathLike, mode: str = "RGB"):
    """The image at ``path`` as a PIL image in ``mode``, through trainkit's checked opening
    (:func:`~trainkit.data.images.open_image`: regular files of the four formats, bomb limit, modes)."""
    im = open_image(path)
    try:
        try:
            im.load()
            return im.convert(mode) if im.mode != mode else im.copy()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            raise BadImage(path, f"truncated or corrupt image ({type(exc).__name__}: {exc})") from None
    finally:
        f = getattr(im, "_trainkit_file", None)
        im.close()
        if f is not None:
            f.close()


def default_loader(path: str | os.PathLike):
    """torchvision's ``default_loader``: the image as an RGB PIL image."""
    return pil_loader(path, "RGB")


def _list_bad(items: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{p}: {r}" for p, r in items[:_SHOWN])
    return shown + (f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _image_shape(args) -> tuple:
    h, w = pair(args["image_size"])
    return (3 if args["mode"] == "RGB" else 1, h, w)


@dataset("image_folder", shape=_image_shape, task="classification",
         fields={"root": Field(Str(), REQUIRED, "the image folder: root/<class>/<images>, or root/train/<class>/... "
                                                "with root/val/ and root/test/"),
                 "image_size": Field(SIZE, REQUIRED, "every image is decoded to this size: an integer (square) or "
                                                     "[height, width]"),
                 "mode": Field(Str(MODES, "mode"), "RGB", "RGB (3 channels) or L (grey, 1 channel)"),
                 "fit": Field(Str(FITS, "fit"), "crop", "resize policy: crop (fill, cut the overflow), stretch, or "
                                                        "pad (fit inside, black borders)"),
                 "skip_bad_files": Field(Bool(), False, "leave out (and count) unreadable images and empty class "
                                                        "folders instead of stopping"),
                 "test_split": Field(Float(0, 1, hi_open=True), 0.0, "fraction of the training images held out as "
                                                                     "the test set when there is no test/ folder"),
                 "cache": Field(Bool(), True, "keep the decoded images on disk (decoded once, memory-mapped after)")},
         doc="your own images: root/<class>/*.png|jpg|bmp|webp (or root/train, root/val, root/test), decoded once")
class ImageFolder(ArrayDataset):
    """Images in class folders, as torchvision's ``ImageFolder`` (see the module docstring).

    Args:
        root: the folder holding one folder per class.
        transform: applied to each image (a uint8 (C, H, W) array per item, or
            per batch, with ``image_size``; the loader's PIL image without).
        target_transform: applied to each ``int`` label of ``ds[i]``.
        loader: ``loader(path)`` reads one image (default: an RGB PIL image);
            giving one turns the cache off, as it decides what a sample is.
        is_valid_file: ``is_valid_file(path)`` picks the files (default: the image extensions).
        allow_empty: accept class folders without images (they stay classes).
        image_size: decode every image to this size once, into the cache (int or (height, width)).
        mode: ``"RGB"`` or ``"L"`` (grey).
        fit: resize policy, ``"crop"``, ``"stretch"`` or ``"pad"``.
        skip_bad_files: leave out unreadable files (counted, with a warning) instead of raising.
        cache: keep the decoded copy on disk (False: decode into memory every time).
        classes: use these class names (and their order) instead of the folders' (a val/test folder
            labelled with the training folder's classes); a folder not among them is refused.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 target_transform: Callable | None = None, loader: Callable | None = None,
                 is_valid_file: Callable[[str], bool] | None = None, allow_empty: bool = False, *,
                 image_size: int | Sequence[int] | None = None, mode: str = "RGB", fit: str = "crop",
                 skip_bad_files: bool = False, cache: bool = True, classes: Sequence[str] | None = None):
        if mode not in MODES:
            raise ValueError(f"ImageFolder: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if fit not in FITS:
            raise ValueError(f"ImageFolder: fit must be one of {', '.join(FITS)}, got {fit!r}")
        self.root = str(root)
        self.mode, self.fit = mode, fit
        self.loader = loader
        self.extensions = IMAGE_EXTENSIONS if is_valid_file is None else None
        self.skip_bad_files = bool(skip_bad_files)
        self.skipped: list[tuple[str, str]] = []
        found, _ = find_classes(root)
        if classes is not None:
            unknown = [c for c in found if c not in classes]
            if unknown:
                raise DataError(f"{Path(root) / unknown[0]}: class folder {unknown[0]!r} is not one of the "
                                f"training classes ({', '.join(classes[:20])})")
            class_names = list(classes)
        else:
            class_names = found
        class_to_idx = {c: i for i, c in enumerate(class_names)}
        present = {c: i for c, i in class_to_idx.items() if c in found}
        samples, empty = make_dataset(root, present, self.extensions, is_valid_file,
                                      allow_empty=allow_empty or self.skip_bad_files)
        if empty and not allow_empty:  # skipped under skip_bad_files: counted and named in the warning
            self.skipped += [(str(Path(root) / c), "class folder without images (kept as a class)") for c in empty]
        self.spec = None
        pixels = None
        if image_size is not None and loader is None:
            h, w = pair(image_size)
            self.spec = ImageSpec(mode, (int(h), int(w)), fit)
            decoded = decode_files([p for p, _ in samples], self.spec, source=str(Path(root).resolve()),
                                   cache=cache)
            if decoded.bad:
                bad = [(samples[i][0], reason) for i, reason in decoded.bad]
                if not self.skip_bad_files:
                    raise DataError(f"{len(bad)} of the {len(samples)} image files under {root} cannot be used: "
                                    f"{_list_bad(bad)}. Fix or remove them, or set data.skip_bad_files: true "
                                    "(ImageFolder(skip_bad_files=True)) to leave them out")
                self.skipped += bad
                samples = [samples[i] for i in decoded.good]
            pixels = np.asarray(decoded.pixels)  # a plain ndarray view of the map: batches are ndarrays
            self.cache_folder = decoded.folder
            self.from_cache = decoded.cached
        self.samples = samples
        targets = np.asarray([t for _, t in samples], dtype=np.int64)
        if pixels is None:
            pixels = np.empty((len(samples), 0), dtype=np.uint8)  # no array: items are loaded one by one
        super().__init__(pixels, targets, transform=transform, classes=class_names,
                         target_transform=target_transform)
        self._class_to_idx = class_to_idx
        if self.skipped:
            warnings.warn(f"{root}: skipped {len(self.skipped)} unusable file(s)/folder(s) (data.skip_bad_files): "
                          f"{_list_bad(self.skipped)}", DataWarning, stacklevel=2)

    # -- torchvision's attributes --------------------------------------------------------------------------
    @property
    def class_to_idx(self) -> dict[str, int]:  # type: ignore[override]
        """Class name -> index."""
        return dict(self._class_to_idx)

    @property
    def targets(self) -> list[int]:  # type: ignore[override]
        """The label of every sample, a list of ints (torchvision's type)."""
        return self._targets.tolist()

    @targets.setter
    def targets(self, value) -> None:
        self._targets = np.asarray(value, dtype=np.int64)

    @property
    def imgs(self) -> list[tuple[str, int]]:
        """The same list as ``samples`` (torchvision's older name)."""
        return self.samples

    @property
    def cached(self) -> bool:
        """True when every image was decoded into an array (``image_size`` given, no custom loader)."""
        return self.spec is not None

    # -- samples ---------------------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        """(C, H, W) of a sample with ``image_size``; None otherwise (images keep their own size)."""
        return self.spec.shape if self.spec is not None else None

    def __getitem__(self, index: int):
        if self.spec is not None:
            return super().__getitem__(index)
        path, target = self.samples[index]
        sample = (self.loader or (lambda p: pil_loader(p, self.mode)))(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    @property
    def get_batch(self):  # type: ignore[override]
        """Gather a batch with one fancy-index (only when the images are decoded into an array)."""
        return super().get_batch if self.spec is not None else None

    def decode(self, path: str | os.PathLike) -> np.ndarray:
        """One more image file decoded as this data set's images are (uint8 (C, H, W))."""
        if self.spec is None:
            raise TypeError("ImageFolder.decode needs image_size (the size every image is decoded to)")
        return decode_image(path, self.spec)

    def __repr__(self) -> str:
        size = f", image_size={self.spec.size}" if self.spec is not None else ""
        return (f"ImageFolder(root={self.root!r}, n={len(self)}, classes={len(self.classes)}{size}, "
                f"mode={self.mode!r})")

    # -- the config's data set -----------------------------------------------------------------------------
    @staticmethod
    def split_layout(root: str | os.PathLike) -> bool:
        """True when ``root`` holds ``train/`` and nothing but split folders (train, val, test)."""
        try:
            names = {e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")}
        except OSError:
            return False
        return "train" in names and names <= set(SPLIT_FOLDERS)

    @classmethod
    def from_config(cls, args) -> tuple:
        """``(train, val or None, test or None)`` from the config's arguments."""
        kw = {"image_size": args["image_size"], "mode": args["mode"], "fit": args["fit"],
              "skip_bad_files": args["skip_bad_files"], "cache": args["cache"]}
        root = Path(args["root"]).expanduser()
        if not root.exists():
            raise DataError(f"{root}: image folder not found (data.root)")
        if not cls.split_layout(root):
            return cls(root, **kw), None, None
        train = cls(root / "train", **kw)
        parts = [cls(root / name, classes=train.classes, **kw) if (root / name).is_dir() else None
                 for name in ("val", "test")]
        for name, part in zip(("val", "test"), parts):
            if part is not None and len(part) == 0:
                raise DataError(f"{root / name}: no usable images in the {name} folder")
        return train, parts[0], parts[1]
