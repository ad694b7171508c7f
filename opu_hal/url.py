"""Device URLs: one table from scheme to factory and documented query keys (docs/protocol.md, section 8).

A device is named by a URL, ``scheme://LOCATION?key=value&...`` (a bare path such as
``/dev/ttyUSB0`` means ``serial://``). Every consumer (:class:`~opu_hal.OPU`, ``opu-hal
serve``, the CLI, :class:`~opu_hal.devices.opu_firmware.ProtocolLink`) goes through
:func:`resolve_url`: one parser (:func:`parse_device_url`, on ``urllib.parse``), one table
of schemes, one validation of the query against the keys the scheme declares.

Keys are declared once, as fields of pydantic models ("key groups": name, type, range,
default and a one-line description each). A scheme lists its groups; a key means the same
in every scheme that has it:

* :class:`WireOptions` (``retries``, ``window``, ``chunk_frames``, ``timeout_s``): every
  scheme with a wire link (``sim``, ``socket``, ``serial`` and any registered one);
* :class:`TokenOption` (``token``, masked as ``token=***`` in messages): ``socket``, ``sockets``;
* :class:`TLSOptions` (``tls``, ``ca``, ``check_hostname``): ``socket`` and ``sockets``;
* :class:`SerialOptions` (``baudrate``): ``serial``;
* the emulator's parameters (``firmware_sim.params.EmulatorParams``): ``emu`` and ``sim``.

Factories come in two kinds, both ``factory(spec: DeviceSpec)``:

* a *link* factory returns an :class:`opu_hal.transport.Link` (how to make the transport
  when the device opens, what to release after it closes). Schemes with a link are
  reached by the wire backend of :class:`~opu_hal.OPU` *and* by ``ProtocolLink``;
* a *backend* factory returns an :class:`opu_hal.backends.Backend` (``emu``, ``bench``:
  no wire). A scheme with a link and no backend gets the wire backend.

Adding a transport is one module plus one registration, e.g. in ``mypkg/loop.py``::

    def loop_link(spec: DeviceSpec) -> Link:
        return Link(lambda: make_my_transport(spec.location))

    register_scheme("loop", link="mypkg.loop:loop_link", keys=(MyKeys,), doc="my link")

Factories and key groups may be given as objects or as ``"package.module:attribute"``
paths, imported with importlib only when a URL of the scheme is used (as pyserial's
``protocol_handler_packages``): this module, at the foundation of the package, never
imports the transports, backends or emulator it names.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError

Model = TypeVar("Model", bound=BaseModel)
_MASK = "***"


class WireOptions(BaseModel):
    """Query keys of every scheme that reaches its device over the wire protocol (docs/protocol.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(3, ge=0, description="times a request is re-sent, the link re-opened or a reboot recovered from")
    window: int = Field(2, ge=1, description="ACQUIRE requests in flight (OPU calls; a ProtocolLink sends one per DMD sequence)")
    chunk_frames: int | None = Field(
        None, ge=1, description="frames per ACQUIRE; default: a whole call if it fits the payload limit"
    )
    timeout_s: float | None = Field(
        None, gt=0, description="seconds of silence before a request is retried; default: the caller's timeout_s (10 s)"
    )


class TokenOption(BaseModel):
    """The shared secret of an ``opu-hal serve`` endpoint (never shown in messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr | None = Field(None, description="shared secret of `opu-hal serve` (shown as ***)")


class TLSOptions(BaseModel):
    """TLS of a TCP link (``sockets://``, or ``socket://...?tls=1``): encryption and the server's certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tls: bool | None = Field(None, description="on: TLS (implied by `sockets://`); off or absent: plain TCP for `socket://`")
    ca: str | None = Field(
        None, description="PEM file of the CA certificate(s) to trust (a self-signed server's certificate); default: the system's"
    )
    check_hostname: bool = Field(True, description="off: accept a trusted certificate issued to another host name")


class SerialOptions(BaseModel):
    """Query keys of a serial port."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baudrate: int = Field(115_200, gt=0, description="line rate (bit/s)")


@dataclass(frozen=True)
class DeviceURL:
    """A parsed device URL: ``scheme``, ``location`` (host:port or device path) and ``query``."""

    scheme: str
    location: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"{self.scheme}://{self.location}"
        if self.query:
            text += "?" + urlencode(self.query, safe=":/,*")
        return text

    def masked(self) -> str:
        """The URL with secret values (``token``) replaced by ``***``: safe for messages and logs."""
        return mask_url(str(self))

    def __repr__(self) -> str:
        return f"DeviceURL({self.masked()!r})"


@dataclass(frozen=True)
class Scheme:
    """One row of the table: a scheme, its factories (objects or ``"module:attr"`` paths) and key groups."""

    name: str
    doc: str
    keys: tuple[type[BaseModel] | str, ...]
    link: Callable[["DeviceSpec"], Any] | str | None = None
    backend: Callable[["DeviceSpec"], Any] | str | None = None

    def key_groups(self) -> tuple[type[BaseModel], ...]:
        """The key-group models (paths imported now)."""
        return tuple(_load(group, f"{self.name}:// keys") for group in self.keys)

    def documented_keys(self) -> list[str]:
        """Every query key the scheme accepts (aliases included), sorted."""
        return sorted(name for group in self.key_groups() for name in _group_keys(group))


@dataclass(frozen=True)
class DeviceSpec:
    """A URL checked against its scheme: ``options`` holds one validated model per key group."""

    url: DeviceURL
    scheme: Scheme
    options: tuple[BaseModel, ...]

    @property
    def location(self) -> str:
        """Host:port, device path or file named by the URL."""
        return self.url.location

    def get(self, group: type[Model]) -> Model:
        """The validated keys of ``group`` (its defaults if the scheme does not declare it)."""
        for options in self.options:
            if isinstance(options, group):
                return options
        return group()

    def value(self, key: str, default: Any = None) -> Any:
        """The validated value of one key by name (secrets revealed), or ``default`` if the scheme has no such key."""
        for options in self.options:
            if key in type(options).model_fields:
                value = getattr(options, key)
                return value.get_secret_value() if isinstance(value, SecretStr) else value
        return default

    def make_link(self) -> Any:
        """The scheme's :class:`opu_hal.transport.Link` (ValueError for a scheme without one)."""
        if self.scheme.link is None:
            raise ValueError(
                f"device: expected a URL of a device behind the wire protocol (scheme one of {wire_schemes()}), "
                f"got {self.scheme.name}://"
            )
        return _load(self.scheme.link, f"{self.scheme.name}:// link")(self)

    def make_backend(self) -> Any:
        """The scheme's :class:`opu_hal.backends.Backend` (the wire backend for a scheme with only a link)."""
        return _load(self.scheme.backend, f"{self.scheme.name}:// backend")(self)


_SCHEMES: dict[str, Scheme] = {}
_WIRE_BACKEND = "opu_hal.backends.wire:wire_backend"


def register_scheme(
    name: str,
    *,
    doc: str,
    keys: Sequence[type[BaseModel] | str] = (),
    link: Callable[[DeviceSpec], Any] | str | None = None,
    backend: Callable[[DeviceSpec], Any] | str | None = None,
    replace: bool = False,
) -> Scheme:
    """Add a scheme to the table; returns its row.

    Parameters
    ----------
    name:
        The scheme, lowercase letters, digits, ``+ - .`` (``"loop"`` for ``loop://``).
    doc:
        One line: what answers behind such a URL.
    keys:
        Key groups (pydantic models or ``"module:Model"`` paths); a scheme with a ``link``
        also gets :class:`WireOptions`. A key may belong to one group of a scheme only.
    link:
        Link factory ``f(spec) -> opu_hal.transport.Link``, or its ``"module:function"`` path.
    backend:
        Backend factory ``f(spec) -> Backend``; default for a scheme with a link: the wire backend.
    replace:
        Allow replacing a registered scheme (otherwise that is a ValueError).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9+.-]*", name):
        raise ValueError(f"name: expected a lowercase URL scheme such as 'loop', got {name!r}")
    if name in _SCHEMES and not replace:
        raise ValueError(f"name: expected a new scheme, got {name!r}, already registered (pass replace=True)")
    if link is None and backend is None:
        raise ValueError(f"link, backend: expected at least one factory for {name}://, got neither")
    if not isinstance(doc, str) or not doc:
        raise TypeError(f"doc: expected a one-line description, got {doc!r}")
    groups = tuple(keys)
    for group in groups:
        if not (isinstance(group, str) or (isinstance(group, type) and issubclass(group, BaseModel))):
            raise TypeError(f"keys: expected pydantic models or 'module:Model' paths, got {group!r}")
    if link is not None:
        if WireOptions not in groups:
            groups = (WireOptions, *groups)
        if backend is None:
            backend = _WIRE_BACKEND
    scheme = Scheme(name, doc, groups, link, backend)
    _SCHEMES[name] = scheme
    return scheme


def unregister_scheme(name: str) -> None:
    """Remove a scheme from the table (ValueError if it is not registered)."""
    if _SCHEMES.pop(name, None) is None:
        raise ValueError(f"name: expected a registered scheme, one of {schemes()}, got {name!r}")


def schemes() -> tuple[str, ...]:
    """The registered schemes, in registration order."""
    return tuple(_SCHEMES)


def wire_schemes() -> tuple[str, ...]:
    """The registered schemes with a link (reachable by ``ProtocolLink``)."""
    return tuple(name for name, scheme in _SCHEMES.items() if scheme.link is not None)


def scheme_info(name: str) -> Scheme:
    """The table's row for ``name`` (ValueError naming the registered schemes otherwise)."""
    try:
        return _SCHEMES[name]
    except KeyError:
        raise ValueError(f"device: expected a URL with scheme one of {schemes()}, got {name!r}") from None


def mask_url(url: str) -> str:
    """``url`` with the value of every secret query key (``token``) replaced by ``***``."""
    return re.sub(rf"(?i)([?&](?:{'|'.join(_secret_keys())})=)[^&#]*", rf"\g<1>{_MASK}", url)


def parse_device_url(url: str) -> DeviceURL:
    """Split a device URL; a bare path such as ``/dev/ttyUSB0`` means ``serial://``.

    Raises ``TypeError`` for a non-string and ``ValueError`` for an unknown scheme or a
    repeated query key. The query is checked by :func:`resolve_url`.
    """
    if not isinstance(url, str):
        raise TypeError(f"device: expected a URL string such as 'emu://', got {type(url).__name__}")
    if url.startswith("/"):
        return DeviceURL("serial", url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"device: expected a well-formed URL such as 'socket://HOST:PORT', got {mask_url(url)!r} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not url.lower().startswith(f"{scheme}://"):
        raise ValueError(
            f"device: expected a URL with scheme one of {schemes()} or a device path, got {mask_url(url)!r}"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"device: query key(s) {repeated} given more than once in {mask_url(url)!r}")
    return DeviceURL(scheme, parts.netloc + parts.path, dict(pairs))


def resolve_url(url: str | DeviceURL, overrides: dict[str, Any] | None = None) -> DeviceSpec:
    """Parse ``url`` (if a string) and validate its query against the keys of its scheme.

    ``overrides`` are values given beside the URL (``OPU(seed=...)``); they win over the
    query. Raises ``ValueError`` naming an unknown key, the scheme and its documented
    keys, or naming the key of a bad value, what it expects and what it got (a secret
    shown as ``***``).
    """
    parsed = url if isinstance(url, DeviceURL) else parse_device_url(url)
    scheme = scheme_info(parsed.scheme)
    groups = scheme.key_groups()
    values: dict[str, Any] = {**parsed.query, **(overrides or {})}
    owner = {key: group for group in groups for key in _group_keys(group)}
    unknown = sorted(set(values) - set(owner))
    if unknown:
        raise ValueError(
            f"unknown query key(s) {unknown} for {scheme.name}://; documented keys: {scheme.documented_keys() or 'none'}"
        )
    options = []
    for group in groups:
        given = {key: value for key, value in values.items() if owner[key] is group}
        try:
            options.append(group.model_validate(given))
        except ValidationError as exc:
            raise ValueError(_explain(exc, given, scheme.name)) from None
    return DeviceSpec(parsed, scheme, tuple(options))


def keys_table() -> str:
    """The table of schemes and of their query keys, in Markdown (docs/protocol.md shows it)."""
    lines = ["| scheme | device | key groups |", "|---|---|---|"]
    seen: dict[str, type[BaseModel]] = {}
    for scheme in _SCHEMES.values():
        groups = scheme.key_groups()
        names = ", ".join(f"`{g.__name__}`" for g in groups) or "none"
        lines.append(f"| `{scheme.name}://` | {scheme.doc} | {names} |")
        seen.update({g.__name__: g for g in groups})
    for name, group in seen.items():
        doc = (group.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"`{name}`: {doc}", "", "| key | type | default | range | meaning |", "|---|---|---|---|---|"]
        for key, info in group.model_fields.items():
            aliases = [a for a in _field_aliases(info) if a != key]
            shown = f"`{key}`" + "".join(f" (`{a}`)" for a in aliases)
            lines.append(
                f"| {shown} | {_cell(_type_name(info.annotation))} | {_cell(repr(info.default))} | {_range(info)} | {_cell(info.description or '')} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- helpers


def _load(target: Any, what: str) -> Any:
    """``target``, or the object a ``"package.module:attribute"`` path names (imported now)."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"{what}: expected a 'package.module:attribute' path to import, got {target!r} ({exc})") from exc
    return obj


def _field_aliases(info: Any) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [alias] if isinstance(alias, str) else []


def _group_keys(group: type[BaseModel]) -> set[str]:
    """Names a group's keys may be given by: field names and their aliases."""
    return {name for key, info in group.model_fields.items() for name in (key, *_field_aliases(info))}


def _secret_keys() -> set[str]:
    """Query keys whose values are secrets, in any registered scheme (always ``token``)."""
    secret = {"token"}
    for scheme in _SCHEMES.values():
        for group in scheme.keys:
            if not isinstance(group, str):
                secret |= {k for k, info in group.model_fields.items() if info.annotation in (SecretStr, SecretStr | None)}
    return secret


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(?:typing|pydantic\.types)\.", "", text)


def _cell(text: str) -> str:
    """Text fit for a Markdown table cell."""
    return text.replace("|", "\\|")


def _range(info: Any) -> str:
    bounds = []
    for item in info.metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                bounds.append(f"{op} {getattr(item, attr)}")
    return ", ".join(bounds)


def _explain(exc: ValidationError, given: dict[str, Any], scheme: str) -> str:
    """A pydantic error as ``key: expected ... (scheme:// query key), got ...`` per key (secrets masked)."""
    secret = _secret_keys()
    messages = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else ", ".join(sorted(given)) or "query"
        shown = _MASK if key in secret else repr(given.get(key, error.get("input")))
        message = error["msg"].removeprefix("Value error, ")
        if message.startswith("expected") or not error["loc"]:  # the model's own check, saying what it got
            messages.append(f"{key}: {message} ({scheme}:// query key)")
        else:
            expected = message.removeprefix("Input should be ")
            messages.append(f"{key}: expected {expected[:1].lower() + expected[1:]} ({scheme}:// query key), got {shown}")
    return "; ".join(messages)


# ---------------------------------------------------------------------------- the built-in schemes

_EMULATOR = "firmware_sim.params:EmulatorParams"

register_scheme("emu", doc="the emulator's physical model in this process, no wire (fastest)", keys=(_EMULATOR,),
                backend="opu_hal.backends.emulated:emu_backend")
register_scheme("sim", doc="emulator firmware in a thread, behind the full wire protocol over a loopback pair",
                keys=(_EMULATOR, "firmware_sim.hosting:SimOptions"), link="firmware_sim.hosting:sim_link",
                backend="opu_hal.backends.wire:sim_backend")
register_scheme("socket", doc="the wire protocol over TCP, `socket://HOST:PORT` (`python -m firmware_sim --listen`, "
                "`opu-hal serve`, a device); with `?tls=1` as `sockets://`", keys=(TokenOption, TLSOptions),
                link="opu_hal.transport.tls:socket_link")
register_scheme("sockets", doc="the wire protocol over TLS over TCP, `sockets://HOST:PORT` (`opu-hal serve --tls-cert`, "
                "`python -m firmware_sim --tls-cert`)", keys=(TokenOption, TLSOptions), link="opu_hal.transport.tls:socket_link")
register_scheme("serial", doc="the wire protocol over a serial port, `serial:///dev/PORT` or the bare path",
                keys=(SerialOptions,), link="opu_hal.transport.serial:serial_link")
register_scheme("bench", doc="a DMD, camera and light source described by a YAML file, `bench://PATH.yaml`",
                backend="opu_hal.backends.bench:bench_backend")
