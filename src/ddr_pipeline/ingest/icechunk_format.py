"""Read-only access to local Icechunk format-2 repositories without icechunk 2.

DDR's current stores are Icechunk **format 2**; icechunk 2.x (which reads them) needs Python
>= 3.12 while the project runs on 3.11 with icechunk 1.1.21 (format 1 only). This module reads the
on-disk format itself, following the published Icechunk format specification
(``icechunk-format/flatbuffers/*.fbs`` of earth-mover/icechunk): every metadata file is a 39-byte
header (the magic ``ICE🧊CHUNK``, the 24-byte writer name, spec version, file type, compression)
and a zstd-compressed flatbuffer. From the ``repo`` file it takes the branch's snapshot; from the
snapshot the nodes (path, zarr metadata, manifest ids); from the manifests the chunk references.
The result is an xarray Dataset over a read-only zarr store whose chunks are read from
``chunks/<id>`` only when xarray asks for them.

Scope: local repositories, native and inline chunk references. Virtual references (chunks in
other objects), remote storage and writing need icechunk >= 2 and fail naming what to install.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import xarray as xr
from numcodecs import Zstd
from zarr.core.buffer import Buffer, cpu
from zarr.storage import MemoryStore

from ddr_pipeline.ingest.errors import StoreError

#: First bytes of every Icechunk metadata file (the ``repo`` file of a format-2 repository).
ICECHUNK_MAGIC = "ICE🧊CHUNK".encode()
HEADER_SIZE = len(ICECHUNK_MAGIC) + 24 + 3
FILE_IDENTIFIER = b"Ichk"
COMPRESSION_NONE, COMPRESSION_ZSTD = 0, 1
NODE_ARRAY = 1  # NodeData union: 1 = Array, 2 = Group
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NEEDS = "icechunk>=2 (Python>=3.12)"


class IcechunkFormatError(StoreError):
    """An Icechunk repository this reader cannot read (names the file and why)."""


def object_id(raw: bytes) -> str:
    """An Icechunk object id (12 bytes) as its file name: Crockford base32, no padding."""
    bits = len(raw) * 8
    pad = (-bits) % 5
    number = int.from_bytes(raw, "big") << pad
    digits = (bits + pad) // 5
    return "".join(CROCKFORD[(number >> (5 * (digits - 1 - i))) & 31] for i in range(digits))


def read_object(path: Path) -> bytes:
    """The flatbuffer inside an Icechunk metadata file (header checked, zstd decoded).

    Raises:
        IcechunkFormatError: no magic bytes, an unknown compression or file identifier.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise IcechunkFormatError(f"{path}: missing from the Icechunk repository") from error
    if not raw.startswith(ICECHUNK_MAGIC) or len(raw) < HEADER_SIZE:
        raise IcechunkFormatError(f"{path}: not an Icechunk metadata file (no magic bytes)")
    compression = raw[HEADER_SIZE - 1]
    if compression not in (COMPRESSION_NONE, COMPRESSION_ZSTD):
        raise IcechunkFormatError(f"{path}: unknown compression {compression}; install {NEEDS}")
    body = raw[HEADER_SIZE:]
    data = bytes(Zstd().decode(body)) if compression == COMPRESSION_ZSTD else body
    if data[4:8] != FILE_IDENTIFIER:
        raise IcechunkFormatError(f"{path}: flatbuffer identifier {data[4:8]!r}, expected 'Ichk'")
    return data


class _Table:
    """One flatbuffers table: fields addressed by their slot (declaration order in the schema)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    @classmethod
    def root(cls, buf: bytes) -> _Table:
        return cls(buf, struct.unpack_from("<I", buf, 0)[0])

    def _field(self, slot: int) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        offset = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        return None if offset == 0 else self.pos + offset

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        where = self._field(slot)
        return default if where is None else struct.unpack_from(fmt, self.buf, where)[0]

    def _target(self, slot: int) -> int | None:
        where = self._field(slot)
        return None if where is None else where + struct.unpack_from("<I", self.buf, where)[0]

    def table(self, slot: int) -> _Table | None:
        target = self._target(slot)
        return None if target is None else _Table(self.buf, target)

    def _vector(self, slot: int) -> tuple[int, int]:
        target = self._target(slot)
        if target is None:
            return 0, 0
        return target + 4, struct.unpack_from("<I", self.buf, target)[0]

    def tables(self, slot: int) -> list[_Table]:
        start, n = self._vector(slot)
        return [
            _Table(self.buf, start + 4 * i + struct.unpack_from("<I", self.buf, start + 4 * i)[0])
            for i in range(n)
        ]

    def raw(self, slot: int) -> bytes | None:
        """A ``[uint8]`` vector (None when absent)."""
        if self._field(slot) is None:
            return None
        start, n = self._vector(slot)
        return self.buf[start : start + n]

    def uint32s(self, slot: int) -> tuple[int, ...]:
        start, n = self._vector(slot)
        return struct.unpack_from(f"<{n}I", self.buf, start)

    def string(self, slot: int) -> str:
        return (self.raw(slot) or b"").decode("utf-8")

    def struct_bytes(self, slot: int, size: int) -> bytes | None:
        where = self._field(slot)
        return None if where is None else self.buf[where : where + size]


@dataclass(frozen=True)
class Node:
    """A node of a snapshot: its path, zarr metadata and (arrays) manifest ids."""

    path: str
    node_id: bytes
    metadata: bytes
    manifests: tuple[str, ...]


def branch_snapshot(root: Path, branch: str) -> str:
    """The snapshot id the ``repo`` file lists for ``branch``.

    Raises:
        IcechunkFormatError: no such branch (the branches present are named).
    """
    repo = _Table.root(read_object(root / "repo"))
    snapshots = [t.struct_bytes(0, 12) for t in repo.tables(4)]  # Repo.snapshots[].id
    branches = {t.string(0): t.scalar(1, "<I") for t in repo.tables(2)}  # Repo.branches
    if branch not in branches:
        raise IcechunkFormatError(f"{root}: no branch {branch!r}; branches: {sorted(branches)}")
    return object_id(snapshots[branches[branch]])


def snapshot_nodes(root: Path, snapshot: str) -> list[Node]:
    """Every node of ``snapshots/<snapshot>``."""
    table = _Table.root(read_object(root / "snapshots" / snapshot))
    nodes = []
    for node in table.tables(2):  # Snapshot.nodes
        manifests: tuple[str, ...] = ()
        if node.scalar(3, "<B") == NODE_ARRAY:  # NodeSnapshot.node_data_type
            data = node.table(4)
            manifests = tuple(object_id(m.struct_bytes(0, 12)) for m in data.tables(2))
        nodes.append(Node(node.string(1), node.struct_bytes(0, 8), node.raw(2) or b"", manifests))
    return nodes


@dataclass(frozen=True)
class ChunkRef:
    """Where one chunk's encoded bytes are: inline, or ``chunks/<chunk_id>[offset:+length]``."""

    inline: bytes | None
    chunk_id: str | None
    offset: int
    length: int


def manifest_refs(root: Path, manifest: str, node_id: bytes) -> dict[tuple[int, ...], ChunkRef]:
    """The chunk references of node ``node_id`` in ``manifests/<manifest>``.

    Raises:
        IcechunkFormatError: virtual references (chunks outside the repository).
    """
    path = root / "manifests" / manifest
    table = _Table.root(read_object(path))
    refs: dict[tuple[int, ...], ChunkRef] = {}
    for array in table.tables(1):  # Manifest.arrays
        if array.struct_bytes(0, 8) != node_id:
            continue
        for ref in array.tables(1):  # ArrayManifest.refs
            chunk = ref.struct_bytes(4, 12)
            inline = ref.raw(1)
            if chunk is None and inline is None:
                raise IcechunkFormatError(
                    f"{path}: virtual chunk references (data outside the repository) need {NEEDS}"
                )
            refs[ref.uint32s(0)] = ChunkRef(
                inline,
                None if chunk is None else object_id(chunk),
                ref.scalar(2, "<Q"),
                ref.scalar(3, "<Q"),
            )
    return refs


def _chunk_key(prefix: str, metadata: dict, index: tuple[int, ...]) -> str:
    encoding = metadata.get("chunk_key_encoding", {"name": "default"})
    config = encoding.get("configuration", {})
    if encoding.get("name") == "v2":
        separator = config.get("separator", ".")
        key = separator.join(map(str, index)) if index else "0"
    else:
        separator = config.get("separator", "/")
        key = separator.join(["c", *map(str, index)])
    return f"{prefix}{key}"


class _LazyStoreDict(MutableMapping[str, Buffer]):
    """Zarr keys of a snapshot: metadata in memory, chunk bytes read from disk when asked."""

    def __init__(self, root: Path, metadata: dict[str, bytes], chunks: dict[str, ChunkRef]):
        self._root = root
        self._metadata = metadata
        self._chunks = chunks

    def __getitem__(self, key: str) -> Buffer:
        if key in self._metadata:
            return cpu.Buffer.from_bytes(self._metadata[key])
        ref = self._chunks[key]
        if ref.inline is not None:
            return cpu.Buffer.from_bytes(ref.inline)
        with (self._root / "chunks" / ref.chunk_id).open("rb") as handle:
            handle.seek(ref.offset)
            data = handle.read(ref.length) if ref.length else handle.read()
        return cpu.Buffer.from_bytes(data)

    def __iter__(self) -> Iterator[str]:
        yield from self._metadata
        yield from self._chunks

    def __len__(self) -> int:
        return len(self._metadata) + len(self._chunks)

    def __contains__(self, key: object) -> bool:
        return key in self._metadata or key in self._chunks

    def __setitem__(self, key: str, value: Buffer) -> None:
        raise IcechunkFormatError(f"{self._root}: read-only (writing needs {NEEDS})")

    def __delitem__(self, key: str) -> None:
        raise IcechunkFormatError(f"{self._root}: read-only (writing needs {NEEDS})")


def zarr_store(location: str | Path, branch: str = "main") -> MemoryStore:
    """A read-only zarr store of ``branch``'s snapshot of a local format-2 repository."""
    root = Path(location)
    metadata: dict[str, bytes] = {}
    chunks: dict[str, ChunkRef] = {}
    for node in snapshot_nodes(root, branch_snapshot(root, branch)):
        prefix = "" if node.path == "/" else node.path.strip("/") + "/"
        metadata[f"{prefix}zarr.json"] = node.metadata
        if not node.manifests:
            continue
        meta = json.loads(node.metadata)
        for manifest in node.manifests:
            for index, ref in manifest_refs(root, manifest, node.node_id).items():
                chunks[_chunk_key(prefix, meta, index)] = ref
    return MemoryStore(_LazyStoreDict(root, metadata, chunks), read_only=True)


def open_icechunk_v2(location: str | Path, branch: str = "main") -> xr.Dataset:
    """``branch`` of a local Icechunk format-2 repository as a lazy xarray Dataset."""
    store = zarr_store(location, branch)
    return xr.open_zarr(store, consolidated=False, chunks=None, zarr_format=3)
