"""Read the files inside a compiled Qt resource bundle (`.rcc`), as some Debian packages ship their images.

The format (Qt's `rcc`, versions 1-3): a `qres` header with the offsets of three tables, a tree of 14-byte (version
1) or 22-byte (version 2 on: a modification time appended) nodes, the names (length, hash, UTF-16BE) and the data
(a 4-byte length, then the bytes; zlib-compressed ones start with their 4-byte uncompressed length). Only reading is
needed here, so that the mini build can take a photo out of a package without Qt.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_DIRECTORY, _ZLIB, _ZSTD = 0x02, 0x01, 0x04


def read_qt_resources(path: str | Path) -> dict[str, bytes]:
    """Every file of the bundle at `path` by its resource path (`"dir/sub/name.webp"`, no leading slash).

    Raises:
        ValueError: not a Qt resource bundle, or a file compressed with zstd (not read here).
    """
    blob = Path(path).read_bytes()
    if blob[:4] != b"qres" or len(blob) < 20:
        raise ValueError(f"{path} is not a compiled Qt resource bundle (no 'qres' header).")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    node_size = 14 if version < 2 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]  # (node index, parent path); node 0 is the unnamed root
    while pending:
        index, parent = pending.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[node : node + 6])
        path_here = f"{parent}{name_at(name_offset)}" if index else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", blob[node + 6 : node + 14])
            prefix = f"{path_here}/" if path_here else ""
            pending.extend((first + i, prefix) for i in range(count))
            continue
        (offset,) = struct.unpack(">I", blob[node + 10 : node + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        content = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & _ZSTD:
            raise ValueError(f"{path_here} in {path} is zstd-compressed, which this reader does not handle.")
        files[path_here] = zlib.decompress(content[4:]) if flags & _ZLIB else content
    return files
