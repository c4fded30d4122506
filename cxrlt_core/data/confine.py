"""Image ids stay inside their image folder: no absolute ids, no ``..``, no symbolic link that leads out.

An id is a path relative to the image root. ``/etc/passwd``, ``../../secret.png`` or ``link.png`` where ``link.png``
is a symbolic link to a file elsewhere would let a labels CSV make cxrlt read (and score, and show) files the user
never meant to give it. Two checks:

- :func:`id_escape` (text only, no file system access): absolute ids, ids with a ``..`` component, NUL bytes;
  ``read_manifest`` runs it on every row whenever an image folder is given;
- :class:`RootGuard` (file system): follows every symbolic link on the way from the root to the file and refuses one
  that ends outside the root (``os.path.realpath`` of the link, compared with the root's); one ``lstat`` per file,
  folders checked once.
"""

from __future__ import annotations

import os
from pathlib import Path


def id_escape(image_id: str) -> str | None:
    """Why the id ``image_id`` would leave its image folder, read from its text alone; ``None`` if it would not."""
    if "\x00" in image_id:
        return "contains a NUL byte"
    if image_id.startswith(("/", "\\")) or os.path.isabs(image_id):
        return "is an absolute path; ids must be relative to the image folder"
    if image_id.startswith("~"):
        return "starts with '~'; ids must be relative to the image folder"
    if ".." in image_id.replace("\\", "/").split("/"):
        return "contains '..'; ids must stay inside the image folder"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class RootGuard:
    """Checks that files under ``root`` do not lead outside it through symbolic links.

    Args:
        root: the image folder.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.real_root = os.path.realpath(self.root)
        self._folders: dict[str, str | None] = {}

    def escape(self, path: str | os.PathLike[str]) -> str | None:
        """Why ``path`` (``root / id``) is outside the root, or ``None`` when it is inside."""
        path = Path(path)
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return f"is not under the image folder {self.root}"
        if ".." in parts:
            return "contains '..'; ids must stay inside the image folder"
        current = self.root
        for depth, part in enumerate(parts):
            current = current / part
            last = depth == len(parts) - 1
            key = os.fspath(current)
            if not last and key in self._folders:
                reason = self._folders[key]
            else:
                reason = self._link_escape(current)
                if not last:
                    self._folders[key] = reason
            if reason:
                return reason
        return None

    def _link_escape(self, path: Path) -> str | None:
        if not os.path.islink(path):
            return None
        target = os.path.realpath(path)
        if _inside(target, self.real_root):
            return None
        return f"is a symbolic link to {target}, outside the image folder {self.root}"
