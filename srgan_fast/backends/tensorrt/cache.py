"""The engine cache: serialized TensorRT engines on disk, keyed by everything that invalidates them.

An engine is only valid for the TensorRT version, GPU model and compute capability that built it, and of course
for one set of weights, precision, shapes and builder options; the key is a sha256 over all of them. Each file
frames the engine so that a corrupted or foreign file is recognised before TensorRT sees it:

    magic b"SRGFTRT\\0" | u32 frame version | u32 header length | header JSON | engine bytes
    header: {"key", "fields", "payload_sha256", "payload_bytes"}

A file that fails any check is reported (a warning naming the file and the reason), removed and rebuilt.
Nothing here imports TensorRT, so all of it is tested without a GPU.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Mapping

from srgan_fast.io.atomic import write_bytes_atomically

MAGIC = b"SRGFTRT\0"
FRAME_VERSION = 1
_PREFIX = struct.Struct("<8sII")  # magic, frame version, header length


class CacheEntryInvalid(ValueError):
    """A cached file that cannot be used: the message says which check failed."""


class CacheWarning(UserWarning):
    """A cache problem that was worked around (rebuilt engine, temporary directory)."""


def cache_key(fields: Mapping[str, object]) -> str:
    """sha256 of the fields as canonical JSON: any changed field gives another key (and another file)."""
    return hashlib.sha256(json.dumps(dict(fields), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def default_cache_dir() -> Path:
    """$SRGAN_FAST_CACHE_DIR/tensorrt, else $XDG_CACHE_HOME/srgan_fast/tensorrt, else ~/.cache/srgan_fast/tensorrt."""
    if os.environ.get("SRGAN_FAST_CACHE_DIR"):
        return Path(os.environ["SRGAN_FAST_CACHE_DIR"]) / "tensorrt"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "srgan_fast" / "tensorrt"


def _usable_dir(preferred: Path) -> Path:
    """The preferred directory if we can create and write files in it, else a fresh temporary one (with a warning)."""
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=preferred, prefix=".write-test-"):
            pass
        return preferred
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="srgan_fast_tensorrt_"))
        warnings.warn(f"TensorRT cache directory {preferred} is not writable ({exc.strerror or exc}); using "
                      f"{fallback} for this process, so engines will be rebuilt next time. Set "
                      f"SRGAN_FAST_CACHE_DIR to a writable directory to keep them.", CacheWarning, stacklevel=3)
        return fallback


def frame(key: str, fields: Mapping[str, object], payload: bytes) -> bytes:
    header = json.dumps({"key": key, "fields": dict(fields), "payload_sha256": hashlib.sha256(payload).hexdigest(),
                         "payload_bytes": len(payload)}, sort_keys=True).encode()
    return _PREFIX.pack(MAGIC, FRAME_VERSION, len(header)) + header + payload


def unframe(data: bytes, expected_key: str) -> bytes:
    """The engine bytes inside a cache file, or CacheEntryInvalid saying what is wrong with it."""
    if len(data) < _PREFIX.size:
        raise CacheEntryInvalid(f"truncated ({len(data)} bytes, shorter than the {_PREFIX.size}-byte prefix)")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CacheEntryInvalid(f"not an srgan_fast engine file (magic {magic!r}, expected {MAGIC!r})")
    if version != FRAME_VERSION:
        raise CacheEntryInvalid(f"frame version {version}, this srgan_fast reads version {FRAME_VERSION}")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + header_len])
        payload_sha, payload_bytes, key = header["payload_sha256"], header["payload_bytes"], header["key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CacheEntryInvalid(f"unreadable header ({exc})") from None
    if key != expected_key:
        raise CacheEntryInvalid(f"built for another configuration (key {key[:12]}…, expected {expected_key[:12]}…)")
    payload = data[_PREFIX.size + header_len:]
    if len(payload) != payload_bytes:
        raise CacheEntryInvalid(f"truncated engine ({len(payload)} bytes, header says {payload_bytes})")
    if hashlib.sha256(payload).hexdigest() != payload_sha:
        raise CacheEntryInvalid("engine checksum mismatch (the file was corrupted after it was written)")
    return payload


class EngineCache:
    """Engines under ``directory`` (default ``default_cache_dir()``), one file per key: ``<key>.engine``."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = _usable_dir(Path(directory) if directory is not None else default_cache_dir())

    def path_for(self, key: str, suffix: str = ".engine") -> Path:
        return self.directory / f"{key}{suffix}"

    def load(self, key: str) -> bytes | None:
        """The cached engine for ``key``; None when absent or invalid (then reported and removed)."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            warnings.warn(f"cannot read cached engine {path} ({exc}); rebuilding", CacheWarning, stacklevel=2)
            return None
        try:
            return unframe(data, key)
        except CacheEntryInvalid as exc:
            self.discard(key, f"{exc}")
            return None

    def discard(self, key: str, reason: str) -> None:
        """Report and remove an unusable entry (also for engines TensorRT itself refuses to deserialize)."""
        path = self.path_for(key)
        warnings.warn(f"cached TensorRT engine {path} is unusable: {reason}; rebuilding it", CacheWarning,
                      stacklevel=3)
        path.unlink(missing_ok=True)

    def store(self, key: str, fields: Mapping[str, object], engine: bytes) -> Path:
        path = self.path_for(key)
        write_bytes_atomically(path, frame(key, fields, engine))
        return path
