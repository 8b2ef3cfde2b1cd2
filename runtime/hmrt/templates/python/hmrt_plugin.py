"""hmrt_plugin: helpers for writing hmrt plugins in Python.

An hmrt plugin is a WebAssembly component built from `app.py` by componentize-py against the
contract in `wit/plugin.wit`. componentize-py generates typed bindings of that contract (the
package `wit_world`); this module sits between them and your code:

- `Config` (from `config(task)`): the task's `config` table as a dict, with typed getters whose
  errors name the key, such as `cfg.string("url")` or `cfg.integer("expect_status", default=200)`.
- `healthy`, `degraded`, `unhealthy`, `unknown`, `metric`: a check's result.
- `need_http`, `need_exec`, ...: what `validate()` says a config would touch.
- `http_get`, `http_post`, `http_post_json`, `http_request`, `exec_run`, `scratch_get`, ...: the
  capabilities; a call the host refuses or cannot finish raises `HostError` (kind and text).
- `Check` and `Action`: base classes for app.py's `CheckPlugin` and `ActionPlugin`. An uncaught
  exception in `check()` becomes an `unknown` result, in `validate()` or `run()` an error, each
  with a one-line reason: a Python plugin never traps over a bug.

Outside hmrt (the unit tests) the bindings are read from `bindings/`, which `./build.sh` writes;
there is no host there, so a capability call raises `HostError("failed", ...)`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

try:
    import wit_world
except ImportError:  # natively: the bindings ./build.sh generated
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bindings"))
    try:
        import wit_world
    except ImportError:
        raise ImportError(
            "hmrt_plugin: the bindings (package `wit_world`) are missing: run `./build.sh bindings`"
        ) from None

import wit_world.exports
from componentize_py_types import Err
from wit_world.imports import exec as _exec
from wit_world.imports import http as _http
from wit_world.imports import log as _log
from wit_world.imports import scratch as _scratch
from wit_world.imports import types

try:  # only in the `check` world
    from wit_world.exports import check_plugin as _check_plugin
except ImportError:
    _check_plugin = None
try:  # only in the `action` world
    from wit_world.exports import action_plugin as _action_plugin
except ImportError:
    _action_plugin = None

__all__ = [
    "Action", "ActionError", "Capability", "Check", "Config", "ConfigError", "HostError",
    "Response", "Status", "Task", "call", "config", "degraded", "exec_run", "guarded_check",
    "guarded_run", "guarded_validate", "healthy",
    "http_get", "http_post", "http_post_json", "http_request", "log_debug", "log_error",
    "log_info", "log_warn", "metric", "need_docker", "need_exec", "need_files", "need_http",
    "need_process", "need_smtp", "need_supervisor", "need_system", "need_systemd", "need_tcp",
    "reason", "scratch_get", "scratch_remove", "scratch_set", "unhealthy", "unknown",
]

#: A check's verdict (`Status.HEALTHY`, `.DEGRADED`, `.UNHEALTHY`, `.UNKNOWN`).
Status = types.Status
#: A capability a plugin declares in `describe()` (`Capability.HTTP`, `.EXEC`, ...).
Capability = types.Capability
#: The task a plugin runs for: `name`, `program` (or None) and `config` (a JSON object's text).
Task = types.Task
#: What a check returns (build it with `healthy()` and the like); None in an action.
CheckResult = _check_plugin.CheckResult if _check_plugin else None

#: How long an HTTP request or a program may take unless told, in milliseconds. The host caps
#: every call at the time left for the task's call, so this is only an upper bound.
DEFAULT_TIMEOUT_MS = 30_000

_REQUIRED: Any = object()


# --- config -------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A config value that is missing or wrong. The message names the key.

    `validate()` turns it into its error and `check()` into an `unknown` result
    ("invalid config: ..."), so a plugin can simply let it propagate.
    """


def _show(value: Any) -> str:
    """`value` as the config spells it, shortened for a message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


class Config(dict):
    """The task's `config` table (a JSON object) as a dict, with typed getters.

    Each getter returns the value of `key` or, when the key is absent and a `default` is given,
    the default (which may be None); without a default an absent key is an error. A value of the
    wrong type is always an error. Every error is a `ConfigError` naming the key.
    """

    def __init__(self, data: Mapping[str, Any] = (), prefix: str = "") -> None:
        super().__init__(data)
        self.prefix = prefix

    @classmethod
    def parse(cls, text: str) -> "Config":
        """The config from its JSON text, as the host passes it in `task.config`."""
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as e:
            raise ConfigError(f"config is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a table, not {_show(data)}")
        return cls(data)

    def name(self, key: str) -> str:
        """`key` as messages name it (with the path of the table it is in)."""
        return self.prefix + key

    def _get(self, key: str, default: Any) -> Tuple[bool, Any]:
        if key in self and self[key] is not None:
            return True, self[key]
        if default is _REQUIRED:
            raise ConfigError(f"missing required config key `{self.name(key)}`")
        return False, default

    def _wrong(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"`{self.name(key)}` must be {what}, not {_show(self[key])}")

    def only(self, *known: str) -> "Config":
        """Refuses keys other than `known` (a typo is an error, not silence). Returns self."""
        for key in self:
            if key not in known:
                names = ", ".join(known) or "none"
                raise ConfigError(f"unknown config key `{self.name(key)}` (known keys: {names})")
        return self

    def string(self, key: str, default: Any = _REQUIRED, *, allow_empty: bool = False,
               choices: Optional[Sequence[str]] = None) -> Any:
        """A string (non-empty unless `allow_empty`; one of `choices` when given)."""
        found, value = self._get(key, default)
        if not found:
            return value
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self._wrong(key, "a string" if allow_empty else "a non-empty string")
        if choices is not None and value not in choices:
            raise self._wrong(key, "one of " + ", ".join(_show(c) for c in choices))
        return value

    def integer(self, key: str, default: Any = _REQUIRED, *, min: Optional[int] = None,
                max: Optional[int] = None) -> Any:
        """An integer, within `min` and `max` (both included) when given."""
        found, value = self._get(key, default)
        if not found:
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(key, "an integer")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self._wrong(key, _range("an integer", min, max))
        return value

    def number(self, key: str, default: Any = _REQUIRED, *, min: Optional[float] = None,
               max: Optional[float] = None) -> Any:
        """A number (integer or float) as a float, within `min` and `max` when given."""
        found, value = self._get(key, default)
        if not found:
            return value
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self._wrong(key, "a number")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self._wrong(key, _range("a number", min, max))
        return float(value)

    def boolean(self, key: str, default: Any = _REQUIRED) -> Any:
        """`true` or `false`."""
        found, value = self._get(key, default)
        if found and not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def strings(self, key: str, default: Any = _REQUIRED) -> Any:
        """A list of non-empty strings."""
        found, value = self._get(key, default)
        if found and (not isinstance(value, list)
                      or not all(isinstance(v, str) and v for v in value)):
            raise self._wrong(key, "a list of non-empty strings")
        return list(value) if found else value

    def url(self, key: str, default: Any = _REQUIRED, *,
            schemes: Sequence[str] = ("http", "https")) -> Any:
        """An absolute URL with one of `schemes` and a host."""
        found, value = self._get(key, default)
        if not found:
            return value
        what = f"an absolute {' or '.join(schemes)} URL such as \"http://127.0.0.1:8080/health\""
        if not isinstance(value, str):
            raise self._wrong(key, what)
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise self._wrong(key, what) from None
        if parts.scheme not in schemes or not parts.hostname:
            raise self._wrong(key, what)
        return value

    def duration_ms(self, key: str, default: Any = _REQUIRED) -> Any:
        """A humane duration ("250ms", "5s", "2m", "1h") in milliseconds (an int)."""
        found, value = self._get(key, default)
        if not found:
            return value
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise self._wrong(key, 'a duration such as "250ms", "5s" or "1m"')
        return int(float(match.group(1)) * _DURATION_MS[match.group(2)])

    def table(self, key: str, default: Any = _REQUIRED) -> Any:
        """A nested table, as a `Config` whose messages name `key.inner`."""
        found, value = self._get(key, default)
        if not found:
            return value
        if not isinstance(value, dict):
            raise self._wrong(key, "a table")
        return Config(value, prefix=f"{self.name(key)}.")


def _range(what: str, lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{what} from {lo} to {hi}"
    return f"{what} of at least {lo}" if lo is not None else f"{what} of at most {hi}"


def config(task: types.Task) -> Config:
    """The task's config table as a `Config`; a `ConfigError` when it is not a JSON object."""
    return Config.parse(task.config)


# --- results ------------------------------------------------------------------------------


def metric(name: str, value: float, unit: str = "") -> types.Metric:
    """A number the check measured: a snake_case `name`, the value, a unit such as "ms"."""
    return types.Metric(name=name, value=float(value), unit=unit)


def _metrics(metrics: Iterable[types.Metric]) -> List[types.Metric]:
    """`metrics` as a list of well-formed metrics; a `ValueError` saying which is wrong."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, bytes, Mapping, types.Metric)):
        raise ValueError(f"metrics must be a list of metric(...), not {type(metrics).__name__}")
    try:
        items = list(metrics)
    except TypeError:
        raise ValueError(f"metrics must be a list of metric(...), not {type(metrics).__name__}"
                         ) from None
    out = []
    for m in items:
        if not isinstance(m, types.Metric):
            raise ValueError(f"a metric must be built with metric(...), not {_show_any(m)}")
        name, value, unit = m.name, m.value, m.unit
        if not isinstance(name, str) or not name:
            raise ValueError(f"a metric's name must be a non-empty string, not {_show_any(name)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"metric `{_text(name)}` must have a number value, "
                             f"not {_show_any(value)}")
        if not isinstance(unit, str):
            raise ValueError(f"metric `{_text(name)}` must have a string unit, "
                             f"not {_show_any(unit)}")
        out.append(types.Metric(name=_text(name), value=float(value), unit=_text(unit)))
    return out


def _result(status: types.Status, message: str, metrics: Iterable[types.Metric]) -> Any:
    """A check result whose every part lowers: a bad status or metric makes it `unknown`,
    saying what is wrong."""
    if _check_plugin is None:
        raise RuntimeError("check results exist only in a check plugin (world `check`)")
    if not isinstance(status, types.Status):
        return _check_plugin.CheckResult(
            status=Status.UNKNOWN, metrics=[],
            message=_one_line(f"bad check result: status {_show_any(status)} is not a Status"))
    try:
        checked = _metrics(metrics)
    except ValueError as e:
        return _check_plugin.CheckResult(status=Status.UNKNOWN, metrics=[],
                                         message=_one_line(f"bad check result: {_text(e)}"))
    return _check_plugin.CheckResult(status=status, message=_one_line(message), metrics=checked)


def healthy(message: str, metrics: Iterable[types.Metric] = ()) -> Any:
    """The service does what it should. `message` is one line saying why."""
    return _result(Status.HEALTHY, message, metrics)


def degraded(message: str, metrics: Iterable[types.Metric] = ()) -> Any:
    """The service works but something is off. Reported, never acted on."""
    return _result(Status.DEGRADED, message, metrics)


def unhealthy(message: str, metrics: Iterable[types.Metric] = ()) -> Any:
    """The service does not work. Counts towards the task's `failure_threshold`."""
    return _result(Status.UNHEALTHY, message, metrics)


def unknown(message: str, metrics: Iterable[types.Metric] = ()) -> Any:
    """The check could not tell (bad config, a failure of the check itself). Never acted on."""
    return _result(Status.UNKNOWN, message, metrics)


# --- needs (what validate() returns) ------------------------------------------------------


def need_http(url: str) -> types.Need:
    """An HTTP request to `url` (its scheme, host and port are compared with the grants)."""
    return types.Need_Http(url)


def need_exec(program: str) -> types.Need:
    """Running `program` (as the config writes it)."""
    return types.Need_Exec(program)


def need_supervisor(program: str) -> types.Need:
    """Controlling the supervisord program `program`."""
    return types.Need_Supervisor(program)


def need_tcp(address: str) -> types.Need:
    """A TCP connection to `address` (`host:port`)."""
    return types.Need_Tcp(address)


def need_smtp(relay: str) -> types.Need:
    """Sending email through the relay at `relay` (`host:port`)."""
    return types.Need_Smtp(relay)


def need_system(resource: str) -> types.Need:
    """Reading `cpu`, `memory`, `load`, `disk:<mount point>` or `network:<interface>`."""
    return types.Need_System(resource)


def need_process(target: str) -> types.Need:
    """Reading the process figures of `supervisor:<program>`, `docker:<c>` or `systemd:<u>`."""
    return types.Need_Process(target)


def need_files(path: str) -> types.Need:
    """Reading the absolute `path` (a file, or a directory and what is under it)."""
    return types.Need_Files(path)


def need_docker(container: str) -> types.Need:
    """Inspecting and controlling the Docker container `container`."""
    return types.Need_Docker(container)


def need_systemd(unit: str) -> types.Need:
    """Inspecting and controlling the systemd unit `unit`."""
    return types.Need_Systemd(unit)


_NEED_TYPES = (types.Need_Http, types.Need_Exec, types.Need_Supervisor, types.Need_Tcp,
               types.Need_Smtp, types.Need_System, types.Need_Process, types.Need_Files,
               types.Need_Docker, types.Need_Systemd)


def _needs(value: Any) -> List[types.Need]:
    """What `validate()` returned, checked: a list of needs built by `need_http(...)` and the
    like (None is no needs). Anything else raises its error (`Err`), saying what is wrong."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping) + _NEED_TYPES) or not hasattr(value, "__iter__"):
        raise Err(_one_line(f"validate() returned {_show_any(value)}, not a list of needs "
                            "(return [need_http(url)] and the like)"))
    needs = []
    for i, need in enumerate(value):
        if not isinstance(need, _NEED_TYPES):
            raise Err(_one_line(f"validate() returned a list whose item {i} is {_show_any(need)}"
                                ", not a need (build it with need_http(...) and the like)"))
        if not isinstance(need.value, str):
            raise Err(_one_line(f"validate() returned a need whose value is "
                                f"{_show_any(need.value)}, not a string"))
        needs.append(type(need)(_text(need.value)))
    return needs


# --- capabilities -------------------------------------------------------------------------


class HostError(Exception):
    """A capability call that returned no result.

    `kind` is "denied" (the task's grants do not cover it), "invalid" (a malformed call),
    "timeout" or "failed" (allowed, but it failed: connection refused, ...); `text` is the host's
    explanation. `str()` is "kind: text".
    """

    def __init__(self, kind: str, text: str = "") -> None:
        super().__init__(f"{kind}: {text}" if text else kind)
        self.kind = kind
        self.text = text

    @classmethod
    def from_wit(cls, error: Any) -> "HostError":
        """From the bindings' `host-error` variant (`HostError_Denied(...)` and the like)."""
        kind = type(error).__name__.rpartition("_")[2].lower() or "failed"
        return cls(kind, str(getattr(error, "value", "") or ""))


def call(function: Callable[..., Any], *args: Any) -> Any:
    """Calls a capability function of the bindings (such as `wit_world.imports.tcp.connect`),
    turning its `host-error` into `HostError`. The wrappers below use it; use it for the rest."""
    try:
        return function(*args)
    except Err as e:
        if isinstance(e.value, str):
            raise HostError("failed", e.value) from None
        raise HostError.from_wit(e.value) from None
    except NotImplementedError:
        raise HostError("failed", "no host here: capabilities work only inside hmrt") from None


@dataclass
class Response:
    """An HTTP response: `status`, `body` (bytes), `headers` ((name, value) pairs),
    `truncated` (the host cut the body at its cap) and `elapsed_ms`."""

    status: int
    body: bytes = b""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    truncated: bool = False
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text (UTF-8; undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (a ValueError when it is not)."""
        return json.loads(self.body)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first header called `name` (any case), else `default`."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)


Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


def http_request(method: str, url: str, *, headers: Headers = None,
                 body: Union[bytes, str, None] = None,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Response:
    """Sends an HTTP request through the host. Any status is a `Response`; a request the grants
    do not cover, a refused connection or a timeout raises `HostError`."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    data = body.encode() if isinstance(body, str) else body
    request = _http.Request(method=method, url=url, headers=pairs, body=data,
                            timeout_ms=int(timeout_ms))
    raw = call(_http.send, request)
    return Response(status=raw.status, body=bytes(raw.body), headers=list(raw.headers),
                    truncated=raw.truncated, elapsed_ms=raw.elapsed_us / 1000.0)


def http_get(url: str, *, headers: Headers = None,
             timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Response:
    """GET `url`; see `http_request`."""
    return http_request("GET", url, headers=headers, timeout_ms=timeout_ms)


def http_post(url: str, body: Union[bytes, str], *, content_type: str = "text/plain; charset=utf-8",
              headers: Headers = None, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Response:
    """POST `body` to `url` with the given content type; see `http_request`."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    return http_request("POST", url, headers=[("content-type", content_type)] + pairs,
                        body=body, timeout_ms=timeout_ms)


def http_post_json(url: str, value: Any, *, headers: Headers = None,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Response:
    """POST `value` as JSON to `url`; see `http_request`."""
    return http_post(url, json.dumps(value), content_type="application/json",
                     headers=headers, timeout_ms=timeout_ms)


def exec_run(program: str, args: Sequence[str] = (), *, input: Union[bytes, str, None] = None,
             timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Any:
    """Runs `program` (never through a shell) and returns its output: `exit_code` (None when a
    signal ended it), `stdout`, `stderr` (bytes). A non-zero exit is an output, not an error."""
    data = input.encode() if isinstance(input, str) else input
    command = _exec.Command(program=program, args=list(args), timeout_ms=int(timeout_ms),
                            input=data)
    return call(_exec.run, command)


def scratch_get(key: str) -> Optional[bytes]:
    """The value kept for this task under `key` between calls, or None."""
    return call(_scratch.get, key)


def scratch_set(key: str, value: Union[bytes, str]) -> None:
    """Keeps `value` under `key` until the next call (64 KiB in all)."""
    call(_scratch.set, key, value.encode() if isinstance(value, str) else value)


def scratch_remove(key: str) -> None:
    """Forgets `key`."""
    call(_scratch.remove, key)


def _write_log(level: Any, message: str) -> None:
    message = _text(message)
    try:
        _log.write(level, message)
    except NotImplementedError:  # natively: no host
        print(f"[{level.name.lower()}] {message}", file=sys.stderr)


def log_debug(message: str) -> None:
    """Writes `message` to hmrt's log at debug level, tagged with the task."""
    _write_log(_log.Level.DEBUG, message)


def log_info(message: str) -> None:
    """Writes `message` to hmrt's log at info level, tagged with the task."""
    _write_log(_log.Level.INFO, message)


def log_warn(message: str) -> None:
    """Writes `message` to hmrt's log at warn level, tagged with the task."""
    _write_log(_log.Level.WARN, message)


def log_error(message: str) -> None:
    """Writes `message` to hmrt's log at error level, tagged with the task."""
    _write_log(_log.Level.ERROR, message)


# --- exported plugins ---------------------------------------------------------------------


def _text(value: Any) -> str:
    """`value` as text that lowers: never raises (a `__str__` that does is named instead), and
    lone surrogates, which UTF-8 cannot carry, become "?"."""
    try:
        text = str.__str__(value) if isinstance(value, str) else str(value)
    except BaseException:  # noqa: BLE001 (a broken __str__ must not escape a handler)
        try:
            text = f"<{type(value).__name__} whose str() fails>"
        except BaseException:  # noqa: BLE001
            text = "<an object whose str() fails>"
    return text.encode("utf-8", "replace").decode("utf-8")


def _show_any(value: Any) -> str:
    """`value` for a message (its repr and type, shortened); never raises."""
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001
        text = "<unprintable>"
    text = _text(text)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({_text(type(value).__name__)})"


def _one_line(text: Any, cap: int = 500) -> str:
    text = " ".join(_text(text).split())
    return text if len(text) <= cap else text[: cap - 3] + "..."


_STDLIB = os.path.dirname(getattr(os, "__file__", "") or "") or None


def reason(exc: BaseException) -> str:
    """One line saying what `exc` is and where it was raised in the plugin's own code (never
    raises, even when `str(exc)` does)."""
    head = _text(type(exc).__name__)
    try:
        text = _text(exc)
        head += f": {text}" if text else ""
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames
               if os.path.basename(f.filename) != "hmrt_plugin.py"
               and not (_STDLIB and f.filename.startswith(_STDLIB))]
        where = own[-1] if own else (frames[-1] if frames else None)
        if where is not None:
            head += f" (at {os.path.basename(where.filename)}:{where.lineno} in {where.name})"
    except Exception:  # noqa: BLE001 (the reason is best effort; its type name is enough)
        pass
    return _one_line(head)


def _log_traceback(what: str, exc: BaseException) -> None:
    """Logs a bug's whole traceback (a `HostError` is a condition, not a bug: not logged)."""
    if isinstance(exc, HostError):
        return
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log_error(f"uncaught exception in {what}: {trace}")
    except Exception:  # noqa: BLE001 (logging must never turn a handled bug into a trap)
        pass


def guarded_check(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a `check(self, task)` so that it always returns a result: a `ConfigError` becomes
    `unknown("invalid config: ...")`, any other exception `unknown(<one-line reason>)`."""
    if getattr(function, "_hmrt_guarded", False):
        return function

    def check(self: Any, task: types.Task) -> Any:
        try:
            result = function(self, task)
        except ConfigError as e:
            return unknown(f"invalid config: {_text(e)}")
        except (Exception, SystemExit) as e:
            _log_traceback("check()", e)
            return unknown(reason(e))
        if _check_plugin is None or not isinstance(result, _check_plugin.CheckResult):
            return unknown(f"check() returned {type(result).__name__}, not a result "
                           "(return healthy(...), unhealthy(...) and the like)")
        return _result(result.status, result.message, result.metrics)

    check._hmrt_guarded = True  # type: ignore[attr-defined]
    check.__doc__, check.__name__ = function.__doc__, function.__name__
    return check


def guarded_validate(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a `validate(self, task)` so that any exception becomes its error (`Err(text)`): a
    `ConfigError` with its message (which names the key), any other with a one-line reason. A
    return value other than a list of needs (`need_http(...)` and the like) is an error too."""
    if getattr(function, "_hmrt_guarded", False):
        return function

    def validate(self: Any, task: types.Task) -> List[types.Need]:
        try:
            return _needs(function(self, task))
        except Err as e:
            raise Err(_one_line(e.value)) from None
        except ConfigError as e:
            raise Err(_one_line(e)) from None
        except (Exception, SystemExit) as e:
            raise Err(reason(e)) from None

    validate._hmrt_guarded = True  # type: ignore[attr-defined]
    validate.__doc__, validate.__name__ = function.__doc__, function.__name__
    return validate


class ActionError(Exception):
    """Raise it in an action's `run()` to fail with exactly this message."""


def guarded_run(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps an action's `run(self, task, trigger)`: its return value becomes the one-line
    summary; `ActionError` fails with its message, `ConfigError` with "invalid config: ...",
    any other exception with a one-line reason."""
    if getattr(function, "_hmrt_guarded", False):
        return function

    def run(self: Any, task: types.Task, trigger: Any) -> str:
        try:
            summary = function(self, task, trigger)
            text = "" if summary is None else str(summary)
        except Err as e:
            raise Err(_one_line(e.value)) from None
        except ActionError as e:
            raise Err(_one_line(e)) from None
        except ConfigError as e:
            raise Err(_one_line(f"invalid config: {_text(e)}")) from None
        except (Exception, SystemExit) as e:
            _log_traceback("run()", e)
            raise Err(reason(e)) from None
        return _one_line(text)

    run._hmrt_guarded = True  # type: ignore[attr-defined]
    run.__doc__, run.__name__ = function.__doc__, function.__name__
    return run


class _Plugin:
    name: str = "unnamed"
    """The plugin's name (its file stem in plugins/)."""
    version: str = "0.1.0"
    """The plugin's own version (semver)."""
    summary: str = ""
    """One sentence saying what it does."""
    capabilities: Sequence[types.Capability] = ()
    """The capabilities it may call (declared; the task's grants decide)."""

    def describe(self) -> types.PluginInfo:
        """What the plugin says about itself, from the class attributes above.

        `describe()` has no error: an attribute that is wrong (a capability that is not a
        `Capability`, a name that is not a string) is left out and the summary says so instead.
        """
        return _plugin_info(self)

    def validate(self, task: types.Task) -> List[types.Need]:
        """What the plugin would touch with `task.config` (default: nothing)."""
        return []


def _plugin_info(plugin: Any) -> types.PluginInfo:
    problems = []

    def string(attr: str, default: str) -> str:
        value = getattr(plugin, attr, default)
        if isinstance(value, str) and (value or attr == "summary"):
            return _one_line(value)
        problems.append(f"`{attr}` must be a non-empty string, not {_show_any(value)}")
        return default

    name, version = string("name", "unnamed"), string("version", "0.0.0")
    summary = string("summary", "")
    declared = getattr(plugin, "capabilities", ())
    if isinstance(declared, (str, bytes, Mapping, types.Capability)) \
            or not hasattr(declared, "__iter__"):
        problems.append("`capabilities` must be a list of Capability, "
                        f"not {_show_any(declared)}")
        declared = ()
    capabilities = []
    try:
        for c in declared:
            if isinstance(c, types.Capability):
                capabilities.append(c)
            else:
                known = ", ".join(f"Capability.{k.name}" for k in types.Capability)
                problems.append(f"{_show_any(c)} is not a capability (known: {known})")
    except Exception as e:  # noqa: BLE001
        problems.append(f"`capabilities` cannot be read: {reason(e)}")
    if problems:
        summary = _one_line(f"invalid plugin info: {'; '.join(problems)}"
                            + (f" (summary: {summary})" if summary else ""))
    return types.PluginInfo(name=name, version=version, summary=summary,
                            capabilities=capabilities)


class Check(_Plugin, getattr(wit_world.exports, "CheckPlugin", object)):  # type: ignore[misc]
    """Base of app.py's `CheckPlugin`: set `name`, `version`, `summary`, `capabilities`, and
    write `validate(self, task)` and `check(self, task)`. Both are guarded (`guarded_check`,
    `guarded_validate`): an uncaught exception never traps."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "check" in cls.__dict__:
            cls.check = guarded_check(cls.__dict__["check"])  # type: ignore[method-assign]
        if "validate" in cls.__dict__:
            cls.validate = guarded_validate(cls.__dict__["validate"])  # type: ignore

    def check(self, task: types.Task) -> Any:
        """Runs the check once and returns `healthy(...)`, `unhealthy(...)`, ..."""
        return unknown("check() is not written yet")


class Action(_Plugin, getattr(wit_world.exports, "ActionPlugin", object)):  # type: ignore[misc]
    """Base of app.py's `ActionPlugin`: set `name`, `version`, `summary`, `capabilities`, and
    write `validate(self, task)` and `run(self, task, trigger)`. Both are guarded
    (`guarded_run`, `guarded_validate`): an uncaught exception never traps."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = guarded_run(cls.__dict__["run"])  # type: ignore[method-assign]
        if "validate" in cls.__dict__:
            cls.validate = guarded_validate(cls.__dict__["validate"])  # type: ignore

    def run(self, task: types.Task, trigger: Any) -> str:
        """Runs the action once; returns a one-line summary or raises `ActionError`."""
        raise ActionError("run() is not written yet")
