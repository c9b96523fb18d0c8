"""Image folders with one sub-folder per class: which files, which class ids (sorted folder names).

Training's folder dataset and the export's calibration/eval reader list files the same way, on
local disks and object stores alike (keras_regnet.fileio).
"""

from __future__ import annotations

from keras_regnet import fileio

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def is_image_file(name: str) -> bool:
    """True for a file name with one of the readable image extensions (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_classes(root: str) -> list[str]:
    """Sorted names of the class sub-folders of root."""
    return sorted(d for d in fileio.listdir(root) if fileio.isdir(fileio.join(root, d)))


def list_files(root: str, classes: list[str]) -> list[tuple[str, int]]:
    """(path, class id) of every image file, in sorted order; a missing class folder has none."""
    out = []
    for label, name in enumerate(classes):
        folder = fileio.join(root, name)
        if not fileio.isdir(folder):
            continue
        out.extend((fileio.join(folder, f), label) for f in sorted(fileio.listdir(folder)) if is_image_file(f))
    return out


def list_unlabelled(root: str) -> list[str]:
    """Paths of the image files directly in root (a folder without class sub-folders), sorted."""
    return [fileio.join(root, f) for f in sorted(fileio.listdir(root)) if is_image_file(f)]
