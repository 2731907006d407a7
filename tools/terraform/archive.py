"""The `archive_file` data source, for real: the zip is written and its checksums are its own.

The plan names each function's source object by the zip's MD5, so a plan is only as good as
that zip. Entries are sorted and carry a fixed time, so the same sources give the same bytes.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from tools.terraform.values import Value

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def checksums(data: bytes) -> dict[str, Value]:
    """The data source's computed attributes for an archive's bytes."""
    sha256, sha512 = hashlib.sha256(data), hashlib.sha512(data)
    return {
        "id": hashlib.sha1(data).hexdigest(),  # noqa: S324 - the provider's id is this SHA-1
        "output_sha": hashlib.sha1(data).hexdigest(),  # noqa: S324 - an attribute, not security
        "output_md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - an attribute, not security
        "output_sha256": sha256.hexdigest(),
        "output_base64sha256": base64.b64encode(sha256.digest()).decode(),
        "output_sha512": sha512.hexdigest(),
        "output_base64sha512": base64.b64encode(sha512.digest()).decode(),
        "output_size": len(data),
    }


def _excluded(relative: str, patterns: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern.rstrip("/") + "/")
        for pattern in patterns
    )


def _entries(config: Mapping[str, Value]) -> list[tuple[str, bytes, int]]:
    """(name in the archive, content, mode) for whichever source the config gives."""
    listed = config.get("excludes")
    excludes = (
        [item for item in listed if isinstance(item, str)] if isinstance(listed, list) else []
    )
    source_dir, source_file = config.get("source_dir"), config.get("source_file")
    if isinstance(source_dir, str):
        root = Path(source_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"could not archive missing directory: {root}")
        files = (path for path in root.rglob("*") if path.is_file())
        return [
            (path.relative_to(root).as_posix(), path.read_bytes(), path.stat().st_mode & 0o777)
            for path in files
            if not _excluded(path.relative_to(root).as_posix(), excludes)
        ]
    if isinstance(source_file, str):
        path = Path(source_file)
        return [(path.name, path.read_bytes(), path.stat().st_mode & 0o777)]
    content, filename = config.get("source_content"), config.get("source_content_filename")
    if isinstance(content, str) and isinstance(filename, str):
        return [(filename, content.encode(), 0o644)]
    blocks = config.get("source")
    if isinstance(blocks, list) and blocks:
        return [
            (str(block["filename"]), str(block["content"]).encode(), 0o644)
            for block in blocks
            if isinstance(block, dict)
        ]
    raise ValueError("one of source_dir, source_file, source_content or source is required")


def read_archive_file(config: Mapping[str, Value]) -> dict[str, Value]:
    """Writes the zip to output_path and returns the data source's whole state."""
    if config.get("type") != "zip":
        raise ValueError(f"archive type {config.get('type')!r} is not supported (only zip)")
    output = Path(str(config["output_path"]))
    mode_override = config.get("output_file_mode")
    entries = sorted(_entries(config))  # before opening the output: no empty zip on an error
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            chosen = int(mode_override, 8) if isinstance(mode_override, str) else mode
            info.external_attr = (0o100000 | chosen) << 16
            archive.writestr(info, content)
    return {**config, **checksums(output.read_bytes())}
