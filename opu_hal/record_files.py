"""Reading a calibration record's files defensively: the JSON, the ``.npz``, checksums and array checks.

Every failure is a :class:`~opu_hal.errors.CalibrationRecordError` naming the file and the
field (or ``(file)``). The JSON lists each array's shape, dtype and SHA-256 (of its
C-ordered bytes); records written before the listing existed load with a logged warning,
their arrays still checked for shape and range.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import CalibrationRecordError

if TYPE_CHECKING:
    from .record import CalibrationRecord

logger = logging.getLogger(__name__)

MAX_RECORD_JSON_BYTES = 64 * 2**20
"""Largest calibration JSON read (bytes)."""

MAX_UNLISTED_NPZ_BYTES = 2**31
"""Largest total the arrays of a record without a listing (older records) may inflate to (bytes)."""

_NPY_HEADER_BYTES = 2**16
"""Room allowed for each .npy member's header beyond its listed data (bytes)."""


class ArrayEntry(BaseModel):
    """How the JSON describes one array of the ``.npz``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: tuple[int, ...] = Field(description="array shape")
    dtype: str = Field(description="numpy dtype string, e.g. '<f8'")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the C-ordered bytes (hex)")


_LISTING = TypeAdapter(dict[str, ArrayEntry])


def describe(value: np.ndarray) -> ArrayEntry:
    """The listing entry of an array (shape, dtype, checksum)."""
    return ArrayEntry(shape=value.shape, dtype=value.dtype.str, sha256=_sha256(value))


def _sha256(value: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    """The record's JSON object; ``FileNotFoundError`` if absent, else errors name the file."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)  # read(limit + 1) would allocate the limit at once
            file.seek(0)
            raw = file.read(min(size, MAX_RECORD_JSON_BYTES) + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"calibration: expected a record at {path}, found no such file") from None
    except OSError as exc:
        raise CalibrationRecordError(path, "(file)", f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_RECORD_JSON_BYTES:
        raise CalibrationRecordError(path, "(file)", f"larger than the {MAX_RECORD_JSON_BYTES}-byte limit")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationRecordError(path, "(file)", f"not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CalibrationRecordError(path, "(file)", f"expected a JSON object, got a {type(meta).__name__}")
    return meta


def validation_error(path: Path, exc: ValidationError, prefix: str = "") -> CalibrationRecordError:
    """A pydantic error as a record error: the field of the first error; the others named in the message."""
    problems = []
    for error in exc.errors():
        field = prefix + (".".join(str(p) for p in error["loc"]) or "(file)")
        problems.append((field, f"{error['msg']} (got {str(error.get('input'))[:80]})"))
    (field, first), others = problems[0], problems[1:]
    return CalibrationRecordError(path, field, "; ".join([first] + [f"{f}: {p}" for f, p in others]))


def read_listing(path: Path, meta: dict[str, Any]) -> dict[str, ArrayEntry] | None:
    """Pop and validate the ``arrays`` listing of ``meta``; None (and a warning) if absent."""
    if "arrays" not in meta:
        logger.warning("calibration record %s: no checksums (written before they were stored); "
                       "its arrays are checked for shape and range only", path)
        return None
    try:
        return _LISTING.validate_python(meta.pop("arrays"))
    except ValidationError as exc:
        raise validation_error(path, exc, "arrays.") from None


def read_arrays(path: Path, listing: dict[str, ArrayEntry] | None) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, checked against ``listing`` when there is one.

    The sizes the archive declares are checked before anything is inflated, so a small
    file cannot make the loader allocate more than the listing (or, for a record without
    one, :data:`MAX_UNLISTED_NPZ_BYTES`) allows.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info.file_size for info in archive.infolist()}
    except FileNotFoundError:
        raise CalibrationRecordError(path, "(file)", "no such file (the arrays of the record)") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise CalibrationRecordError(path, "(file)", f"not a readable .npz ({type(exc).__name__}: {exc})") from None
    _check_inflated_sizes(path, members, listing)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise CalibrationRecordError(path, "(file)", "no such file (the arrays of the record)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CalibrationRecordError(path, "(file)", f"not a readable .npz ({type(exc).__name__}: {exc})") from None
    if listing is None:
        return arrays
    for name in sorted(set(listing) | set(arrays)):
        if name not in arrays:
            raise CalibrationRecordError(path, name, "listed in the JSON but missing from the .npz")
        if name not in listing:
            raise CalibrationRecordError(path, name, "in the .npz but not listed in the JSON")
        entry, value = listing[name], arrays[name]
        if value.shape != entry.shape or value.dtype.str != entry.dtype:
            raise CalibrationRecordError(
                path, name, f"expected shape {entry.shape} {entry.dtype} as listed, got {value.shape} {value.dtype.str}"
            )
        if _sha256(value) != entry.sha256:
            raise CalibrationRecordError(path, name, "sha256 differs from the one listed in the JSON (corrupted)")
    return arrays


def _check_inflated_sizes(path: Path, members: dict[str, int], listing: dict[str, ArrayEntry] | None) -> None:
    if listing is None:
        if sum(members.values()) > MAX_UNLISTED_NPZ_BYTES:
            raise CalibrationRecordError(
                path, "(file)", f"inflates to {sum(members.values())} bytes, over the {MAX_UNLISTED_NPZ_BYTES}-byte limit"
            )
        return
    for name, size in members.items():
        entry = listing.get(name)
        if entry is None:
            continue  # reported as unlisted once read
        expected = math.prod(entry.shape) * np.dtype(entry.dtype).itemsize
        if size > expected + _NPY_HEADER_BYTES:
            raise CalibrationRecordError(
                path, name, f"inflates to {size} bytes, expected about {expected} for shape {entry.shape} {entry.dtype}"
            )


def check_arrays(path: Path, record: CalibrationRecord, arrays: dict[str, np.ndarray]) -> None:
    """The arrays the driver computes with: present, of the sections' shapes, finite, in range."""
    lin, sent = record.linear, record.sentinels
    need: dict[str, tuple[tuple[int | None, ...], str]] = {}
    if lin is not None:
        m = lin.n_components
        need |= {
            "linear_pixels": ((m,), "i"),
            "linear_reference_dn": ((m,), "f"),
            "linear_completion": ((m,), "f"),
            "linear_sentinel_z": ((2, None, m), "f"),
        }
    if sent is not None:
        need |= {
            "sentinel_inputs": ((None, sent.n_features), "u"),
            "sentinel_frames": ((None, sent.n_outputs), "f"),
            "sentinel_dark_dn": ((sent.n_outputs,), "f"),
        }
    for name, (shape, kind) in need.items():
        if name not in arrays:
            raise CalibrationRecordError(path, name, "missing from the .npz (its section needs it)")
        value = arrays[name]
        if value.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, value.shape)):
            expected = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise CalibrationRecordError(path, name, f"expected shape {expected}, got {value.shape}")
        if value.dtype.kind not in ("iu" if kind == "i" else kind):
            raise CalibrationRecordError(path, name, f"expected a dtype of kind {kind!r}, got {value.dtype}")
        if kind == "f" and not np.all(np.isfinite(value)):
            raise CalibrationRecordError(path, name, f"expected finite values, got {np.count_nonzero(~np.isfinite(value))} not")
    if lin is not None:
        pixels = arrays["linear_pixels"]
        if pixels.size and (pixels.min() < 0 or pixels.max() >= lin.n_candidates):
            raise CalibrationRecordError(
                path, "linear_pixels", f"expected camera pixels 0 to {lin.n_candidates - 1}, got {pixels.min()} to {pixels.max()}"
            )
        if np.any(arrays["linear_reference_dn"] <= 0):
            raise CalibrationRecordError(path, "linear_reference_dn", "expected counts > 0 (DN) for every output")
    if sent is not None and np.any(arrays["sentinel_inputs"] > 1):
        raise CalibrationRecordError(path, "sentinel_inputs", "expected binary inputs (0 or 1)")
