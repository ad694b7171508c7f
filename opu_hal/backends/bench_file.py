"""Bench files: the YAML that names a bench's DMD, camera and light source, their drivers and settings.

Example::

    dmd:
      driver: protocol            # protocol (OPU firmware) or alp (Vialux)
      url: socket://127.0.0.1:5555
      settings: {trigger_out: true}
    camera:
      driver: protocol            # protocol or pylon (Basler)
      url: socket://127.0.0.1:5555
      settings: {exposure_us: 400}
    light:                        # optional
      driver: scpi_laser
      resource: TCPIP::127.0.0.1::5025::SOCKET
      settings: {power_mw: 10, enabled: true}
    sentinels: {block_frames: 64, retries: 2}

The whole file is validated (drivers, their options, every setting's type and sign)
before any device is touched; an error names the file and line of the bad value.
Relative paths (an ALP library, a pyvisa-sim YAML) are relative to the bench file.

A bench file may be written by anyone, so it is read defensively: at most
``MAX_BENCH_FILE_BYTES`` (1 MB) of UTF-8, no anchors or aliases (``&a`` / ``*a``, hence no
``<<`` merges of them), no duplicate key, nesting at most ``MAX_BENCH_FILE_DEPTH`` levels.
Values are typed strictly: a quoted ``"400"`` is not a number, ``2.0`` or ``true`` not an
integer, and ``.inf`` / ``.nan`` are refused wherever a number is expected.
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..devices.camera import Camera, CameraSettings
from ..devices.dmd import DMD, DMDSettings
from ..devices.light import LightSource, LightSourceSettings


MAX_BENCH_FILE_BYTES = 1_000_000
"""Largest bench file read (bytes)."""

MAX_BENCH_FILE_DEPTH = 32
"""Deepest nesting of mappings and sequences in a bench file."""

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother = 80, 80


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProtocolDMDPart(_Part):
    """The DMD of OPU firmware at ``url`` (sim://, socket:// or serial)."""

    driver: Literal["protocol"]
    url: str
    settings: DMDSettings = DMDSettings()


class AlpDMDPart(_Part):
    """A Vialux DMD through the ALP library at ``library`` (None: the system's ``alp4395``)."""

    driver: Literal["alp"]
    library: str | None = None
    device_number: int = Field(0, ge=0)
    settings: DMDSettings = DMDSettings()


class ProtocolCameraPart(_Part):
    """The camera of OPU firmware at ``url``."""

    driver: Literal["protocol"]
    url: str
    settings: CameraSettings = CameraSettings()


class PylonCameraPart(_Part):
    """A Basler camera through pypylon; ``serial`` None: the first one found."""

    driver: Literal["pylon"]
    serial: str | None = None
    settings: CameraSettings = CameraSettings()


class ScpiLaserPart(_Part):
    """A SCPI laser at a VISA ``resource``; ``visa_library``: ``@py`` or ``FILE.yaml@sim``."""

    driver: Literal["scpi_laser"]
    resource: str
    visa_library: str = "@py"
    timeout_s: float = Field(2.0, gt=0)
    settings: LightSourceSettings = LightSourceSettings()


class SentinelSettings(_Part):
    """Sentinel frames (all-on, all-off) before every ``block_frames`` data frames and at the end;
    a block whose sentinels are out of place is acquired again, up to ``retries`` times."""

    block_frames: int = Field(64, ge=1, le=100_000)
    retries: int = Field(2, ge=0, le=10)


class BenchFile(_Part):
    """A bench: DMD, camera, optional light source, sentinel settings, timeout (s) for each frame."""

    dmd: Annotated[Union[ProtocolDMDPart, AlpDMDPart], Field(discriminator="driver")]
    camera: Annotated[Union[ProtocolCameraPart, PylonCameraPart], Field(discriminator="driver")]
    light: Annotated[Union[ScpiLaserPart], Field(discriminator="driver")] | None = None
    sentinels: SentinelSettings = SentinelSettings()
    frame_timeout_s: float = Field(2.0, gt=0, description="extra time allowed for each frame (s)")


class _BenchLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses anchors (so aliases), merge keys, duplicate keys and deep nesting."""

    def __init__(self, stream: str, path: Path) -> None:
        super().__init__(stream)
        self._path, self._depth = path, 0

    def _refuse(self, problem: str, mark: yaml.Mark) -> ValueError:
        """A ``ValueError`` naming ``FILE:LINE`` of ``mark``."""
        return ValueError(f"{self._path}:{mark.line + 1}: {problem}")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        event = self.peek_event()
        # no anchor, so no alias either: an alias to an undefined anchor is a YAML error already
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            raise self._refuse(f"anchors and aliases are not allowed in a bench file (&{anchor})", event.start_mark)
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if self._depth >= MAX_BENCH_FILE_DEPTH:
                raise self._refuse(f"nested deeper than {MAX_BENCH_FILE_DEPTH} levels", event.start_mark)
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self._refuse("merge keys (<<) are not allowed in a bench file", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise self._refuse(f"duplicate key {key!r} (first on line {first_line[key]})", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
            except TypeError:
                continue  # an unhashable key: the base class refuses it
        return super().construct_mapping(node, deep=deep)


def _read_text(path: Path) -> str:
    """The file's text, refused past ``MAX_BENCH_FILE_BYTES`` (read no further) or if not UTF-8."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BENCH_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"bench file: cannot read {str(path)!r}: {exc.strerror}") from None
    if len(raw) > MAX_BENCH_FILE_BYTES:
        raise ValueError(f"{path}: larger than the {MAX_BENCH_FILE_BYTES}-byte limit of a bench file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def load_bench_file(path: str | Path) -> BenchFile:
    """Read and validate a bench file; ``ValueError`` names ``FILE:LINE`` and the setting at fault."""
    path = Path(path)
    loader = _BenchLoader(_read_text(path), path)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a mapping with 'dmd' and 'camera', got {type(data).__name__}")
    try:
        # JSON mode keeps strict validation by value (enums from their names, tuples from lists);
        # YAML-only values (dates, bytes) become strings, refused wherever a number is expected
        return BenchFile.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            line = _line_of(node, error["loc"])
            name = ".".join(str(p) for p in error["loc"]) or "(file)"
            lines.append(f"{path}:{line}: {name}: {error['msg']} (got {_SHORT.repr(error.get('input'))})")
        raise ValueError("bench file invalid:\n" + "\n".join(lines)) from None


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest YAML node along a validation error's path (tags of unions skipped)."""
    line = 1 if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                continue  # a union tag or a missing key: stay on the parent
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def resolve(path: str | None, base: Path) -> str | None:
    """A path named in a bench file, relative to the file's folder."""
    if path is None or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def build_devices(bench: BenchFile, base: Path) -> tuple[DMD, Camera, LightSource | None]:
    """Make (without opening) the devices a bench file names; protocol parts with one URL share a link."""
    from ..devices.opu_firmware import ProtocolLink

    links: dict[str, ProtocolLink] = {}

    def link(url: str) -> ProtocolLink:
        if url not in links:
            links[url] = ProtocolLink.from_url(url)
        return links[url]

    dmd: DMD
    if isinstance(bench.dmd, ProtocolDMDPart):
        from ..devices.opu_firmware import ProtocolDMD

        dmd = ProtocolDMD(link(bench.dmd.url), bench.dmd.settings)
    else:
        from ..devices.alp import AlpDMD, load_alp_library

        dmd = AlpDMD(load_alp_library(resolve(bench.dmd.library, base)), bench.dmd.device_number, bench.dmd.settings)
    camera: Camera
    if isinstance(bench.camera, ProtocolCameraPart):
        from ..devices.opu_firmware import ProtocolCamera

        camera = ProtocolCamera(link(bench.camera.url), bench.camera.settings)
    else:
        from ..devices.pylon import PylonCamera

        camera = PylonCamera(serial=bench.camera.serial, settings=bench.camera.settings)
    light: LightSource | None = None
    if bench.light is not None:
        from ..devices.scpi_laser import ScpiLaser

        library = bench.light.visa_library
        if library.endswith("@sim") and library != "@sim":
            library = resolve(library[: -len("@sim")], base) + "@sim"
        light = ScpiLaser(
            bench.light.resource, visa_library=library, timeout_s=bench.light.timeout_s, settings=bench.light.settings
        )
    return dmd, camera, light
