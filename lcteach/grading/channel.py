"""The channel between the trusted grader and the process that holds a student's code.

The grader never runs student code in its own process. It connects to the student's process
(the sandboxed kernel, or a fresh measuring process) over a stream socket and asks it to call
functions; the answers come back as plain data. One message is a *frame*: a 4-byte length, a
JSON header, then the raw bytes of the tensors it carries. No pickle, no code, no object of
the other side ever crosses: the trusted side decodes a frame into tensors, numbers, strings,
tuples, lists, dicts and data records, and stands in for anything else with a ``Remote``
handle on which it can only call.

Values, both ways:

- ``None``, ``bool``, ``int``, ``str``; ``float`` (exactly, by its hex form, NaN and inf too);
- ``tuple``, ``list``, ``dict`` (str or int keys), nested up to ``MAX_DEPTH``;
- ``torch.Tensor`` (strided, of the dtypes in ``DTYPES``), numpy arrays and numpy scalars;
- dataclass instances, as their class name and fields: the trusted side gets a ``DataRecord``
  (attribute access, no methods); the student's side gets an instance of a dataclass of that
  name and fields, made on the spot;
- from the student's side, any other object as a ``Remote`` handle (a mask_mod the student's
  function returned, a cache policy object): the trusted side may call it, or call a method
  of it, through the channel; passing it back sends the original object;
- from the trusted side, a ``Callback``: the student's code gets a function that calls back
  into the trusted process (a grader's probe that watches how it is called), and a *tool*:
  a function the student's process has itself (``TOOLS``, e.g. FlexAttention's ``create_mask``).

Errors travel as exception types: a call that raises on the student's side raises
``StudentRaised`` on the trusted side, with the exception's class name and the names of its
builtin base classes (``raised.is_a(ValueError)``), never to be found by reading a message.
A reply that breaks this format raises ``ChannelError``; one that takes too long,
``ChannelTimeout``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

MAX_HEADER_BYTES = 16 * 2**20
MAX_BUFFER_BYTES = 1 * 2**30  # all tensors of one frame
MAX_DEPTH = 16
MAX_ITEMS = 1_000_000  # values in one frame
MAX_STRING = 1_000_000  # characters of one string

DTYPES = (
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "complex128",
)
NUMPY_DTYPES = tuple(d for d in DTYPES if d != "bfloat16")


class ChannelError(Exception):
    """The other side sent something that is not a frame of this protocol, or closed the channel."""


class ChannelTimeout(ChannelError):
    """The other side did not answer in time."""


class StudentRaised(Exception):
    """Student code raised ``type_name`` (a subclass of the builtin exceptions named in ``bases``)."""

    def __init__(self, type_name: str, bases: tuple[str, ...], message: str):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name, self.bases, self.message = type_name, bases, message

    def is_a(self, kind: type[BaseException]) -> bool:
        """Whether the student's exception is ``kind`` or a subclass of it (by builtin class names)."""
        return kind.__name__ == self.type_name or kind.__name__ in self.bases


@dataclasses.dataclass(frozen=True)
class DataRecord:
    """A dataclass instance of the student's side, as data: ``record.type_name``, ``record.<field>``."""

    type_name: str
    fields: dict

    def __getattr__(self, name: str):
        fields = object.__getattribute__(self, "fields")
        if name in fields:
            return fields[name]
        raise AttributeError(f"{object.__getattribute__(self, 'type_name')} has no field {name!r}")


class Remote:
    """A handle on an object of the student's side (``kind`` is its type name); calls go through the channel."""

    def __init__(self, channel: Client, handle: int, kind: str, is_callable: bool):
        self._channel, self.handle, self.kind, self.is_callable = channel, handle, kind, is_callable

    def __call__(self, *args, **kwargs):
        return self._channel.call(self, *args, **kwargs)

    def method(self, name: str) -> RemoteMethod:
        """The bound method ``name`` of the remote object, to call through the channel."""
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"not a public method name: {name!r}")
        return RemoteMethod(self, name)

    def __repr__(self) -> str:
        return f"<remote {self.kind}>"


def is_function(value) -> bool:
    """Whether ``value`` can be called: a function here, or a handle on a function of the student's side."""
    return value.is_callable if isinstance(value, Remote) else callable(value)


class RemoteMethod:
    """The method ``name`` of a Remote object."""

    def __init__(self, owner: Remote, name: str):
        self.owner, self.name = owner, name

    def __call__(self, *args, **kwargs):
        return self.owner._channel.call(self, *args, **kwargs)


class Callback:
    """A trusted function passed to student code: its calls come back to the trusted process."""

    def __init__(self, fn: Callable):
        self.fn = fn


class Tool:
    """A function of the student's side named by the trusted side (one of ``TOOLS``)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<tool {self.name}>"


# Functions of the student's side that the trusted side names: "module:function", imported
# where first used (the trusted side maps its own copies of them to these names, remote.py).
TOOLS = {
    "create_mask": "torch.nn.attention.flex_attention:create_mask",
    "call_with_global_seed": "lcteach.grading.probes:call_with_global_seed",
    "call_and_inputs": "lcteach.grading.probes:call_and_inputs",
    "table_mask_mod": "lcteach.grading.probes:table_mask_mod",
}


def tool(name: str) -> Callable:
    """The function ``TOOLS`` names ``name``, in this process."""
    module, _, function = TOOLS[name].partition(":")
    return getattr(importlib.import_module(module), function)


# ---------------------------------------------------------------- frames


def send_frame(sock: socket.socket, header: dict, buffers: list[bytes | memoryview]) -> None:
    header = dict(header, sizes=[len(b) if isinstance(b, bytes) else b.nbytes for b in buffers])
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    sock.sendall(struct.pack(">I", len(text)) + text)
    for buffer in buffers:
        sock.sendall(buffer)


def recv_frame(sock: socket.socket, deadline: float | None = None) -> tuple[dict, list[bytearray]]:
    """One frame; raises ChannelError on a malformed one, ChannelTimeout past ``deadline`` (monotonic)."""
    (length,) = struct.unpack(">I", _recv_exact(sock, 4, deadline))
    if length > MAX_HEADER_BYTES:
        raise ChannelError(f"a frame header of {length} bytes is over the limit")
    try:
        header = json.loads(_recv_exact(sock, length, deadline))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ChannelError("a frame header is not JSON") from None
    if type(header) is not dict:
        raise ChannelError("a frame header is not a JSON object")
    sizes = header.get("sizes")
    if type(sizes) is not list or not all(type(s) is int and s >= 0 for s in sizes):
        raise ChannelError("a frame header has no valid buffer sizes")
    if sum(sizes) > MAX_BUFFER_BYTES:
        raise ChannelError(f"a frame of {sum(sizes)} bytes of tensors is over the limit")
    return header, [_recv_exact(sock, size, deadline) for size in sizes]


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    data = bytearray(size)
    view, received = memoryview(data), 0
    while received < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("no answer in time")
            sock.settimeout(left)
        try:
            count = sock.recv_into(view[received:])
        except TimeoutError:
            raise ChannelTimeout("no answer in time") from None
        except OSError as error:
            raise ChannelError(f"the channel broke ({error})") from None
        if count == 0:
            raise ChannelError("the other side closed the channel")
        received += count
    return data


# ---------------------------------------------------------------- values


class _Encoder:
    """Turns a value into JSON data plus buffers; ``other`` encodes what is not plain data."""

    def __init__(self, other: Callable[[Any], dict]):
        self.other, self.buffers, self.count = other, [], 0

    def encode(self, value, depth: int = 0):
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_ITEMS:
            raise ChannelError("a value nested too deep or too large to send")
        kind = type(value)
        if value is None or kind in (bool, int):
            return value
        if kind is str:
            return value if len(value) <= MAX_STRING else value[:MAX_STRING]
        if kind is float:
            return {"float": value.hex()}
        if isinstance(value, (tuple, list)):  # a namedtuple travels as the tuple it is
            tag = "list" if isinstance(value, list) else "tuple"
            return {tag: [self.encode(item, depth + 1) for item in value]}
        if kind is dict and all(type(key) in (str, int) for key in value):
            return {"dict": [[key, self.encode(item, depth + 1)] for key, item in value.items()]}
        tensor = _as_plain_tensor(value)
        if tensor is not None:
            return self._tensor(tensor)
        numpy_value = _numpy_data(value)
        if numpy_value is not None:
            return self._numpy(*numpy_value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self.encode(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
            return {"dataclass": [_safe_type_name(value), fields]}
        return self.other(value)

    def _buffer(self, data) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def _tensor(self, tensor) -> dict:
        import torch

        dtype = str(tensor.dtype).removeprefix("torch.")
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy() if flat.numel() else b""
        return {
            "tensor": [dtype, list(tensor.shape), self._buffer(memoryview(data).cast("B") if flat.numel() else b"")]
        }

    def _numpy(self, array, scalar: bool) -> dict:
        data = memoryview(array.tobytes())
        return {"numpy": [str(array.dtype), list(array.shape), self._buffer(data), scalar]}


def _as_plain_tensor(value):
    """``value`` as a strided torch tensor of an allowed dtype, or None (torch is imported only if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return None
    if value.layout != torch.strided or value.is_meta or str(value.dtype).removeprefix("torch.") not in DTYPES:
        return None
    return torch.Tensor._make_subclass(torch.Tensor, value.detach()) if type(value) is not torch.Tensor else value


def _numpy_data(value):
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if type(value) is np.ndarray and str(value.dtype) in NUMPY_DTYPES:
        return np.ascontiguousarray(value), False
    if isinstance(value, np.generic) and type(value).__module__ == "numpy" and str(value.dtype) in NUMPY_DTYPES:
        return np.asarray(value), True
    return None


def _safe_type_name(value) -> str:
    """The name of ``value``'s class, read without running a metaclass's code."""
    name = vars(type)["__name__"].__get__(type(value), type)
    return name[:80] if type(name) is str and name.isidentifier() else "object"


class _Decoder:
    """Turns JSON data plus buffers back into values; ``other`` decodes the side-specific entries."""

    def __init__(self, buffers: list[bytearray], other: Callable[[str, Any], Any], records: Callable):
        self.buffers, self.other, self.records, self.count = buffers, other, records, 0

    def decode(self, data, depth: int = 0):
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_ITEMS:
            raise ChannelError("a value nested too deep or too large")
        if data is None or type(data) in (bool, int, str):
            return data
        if type(data) is not dict or len(data) != 1:
            raise ChannelError(f"an unexpected entry ({type(data).__name__})")
        ((tag, body),) = data.items()
        if tag == "float":
            try:
                return float.fromhex(_expect(body, str, tag))
            except ValueError:
                raise ChannelError("a float entry is not a number") from None
        if tag in ("tuple", "list"):
            items = [self.decode(item, depth + 1) for item in _expect(body, list, tag)]
            return tuple(items) if tag == "tuple" else items
        if tag == "dict":
            pairs = _expect(body, list, tag)
            if not all(type(p) is list and len(p) == 2 and type(p[0]) in (str, int) for p in pairs):
                raise ChannelError("a dict entry with bad keys")
            return {key: self.decode(item, depth + 1) for key, item in pairs}
        if tag == "tensor":
            return self._tensor(body)
        if tag == "numpy":
            return self._numpy(body)
        if tag == "dataclass":
            if not (type(body) is list and len(body) == 2 and type(body[0]) is str and type(body[1]) is dict):
                raise ChannelError("a dataclass entry is damaged")
            name = body[0] if body[0].isidentifier() else "object"
            fields = {key: self.decode(item, depth + 1) for key, item in body[1].items() if key.isidentifier()}
            return self.records(name, fields)
        return self.other(tag, body)

    def _buffer(self, index, size: int) -> bytearray:
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise ChannelError("an entry names a buffer the frame does not have")
        data = self.buffers[index]
        if len(data) != size:
            raise ChannelError("a buffer does not match its shape and dtype")
        return data

    def _tensor(self, body) -> Any:
        import torch

        dtype, shape, index = self._array_header(body, DTYPES)
        torch_dtype = getattr(torch, dtype)
        size = math.prod(shape) * torch.empty((), dtype=torch_dtype).element_size()
        data = self._buffer(index, size)
        if not size:
            return torch.empty(shape, dtype=torch_dtype)
        return torch.frombuffer(data, dtype=torch.uint8).view(torch_dtype).reshape(shape)

    def _numpy(self, body) -> Any:
        import numpy as np

        if type(body) is not list or len(body) != 4 or type(body[3]) is not bool:
            raise ChannelError("a numpy entry is damaged")
        dtype, shape, index = self._array_header(body[:3], NUMPY_DTYPES)
        size = math.prod(shape) * np.dtype(dtype).itemsize
        array = np.frombuffer(self._buffer(index, size), dtype=dtype).reshape(shape)
        if body[3]:
            if shape:
                raise ChannelError("a numpy scalar with a shape")
            return array[()]
        return array

    @staticmethod
    def _array_header(body, dtypes) -> tuple[str, list[int], int]:
        if type(body) is not list or len(body) != 3:
            raise ChannelError("an array entry is damaged")
        dtype, shape, index = body
        if dtype not in dtypes or type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
            raise ChannelError("an array entry has a bad dtype or shape")
        if len(shape) > 16 or math.prod(shape) > MAX_BUFFER_BYTES:
            raise ChannelError("an array entry is too large")
        return dtype, shape, index


def _expect(value, kind: type, what: str):
    if type(value) is not kind:
        raise ChannelError(f"a {what} entry holds {type(value).__name__}, expected {kind.__name__}")
    return value


def _exception_entry(error: BaseException) -> dict:
    import builtins

    if isinstance(error, StudentRaised):  # a trusted callback's error, passing back through student code
        return {"type": error.type_name, "bases": list(error.bases), "message": error.message}
    bases = tuple(cls.__name__ for cls in type(error).__mro__[1:] if getattr(builtins, cls.__name__, None) is cls)
    text = str(error).strip().splitlines() if not isinstance(error, KeyError) else [repr(error.args[0])]
    return {"type": _safe_type_name(error), "bases": list(bases), "message": text[0][:300] if text else ""}


def raised_by(error: BaseException) -> StudentRaised:
    """``error`` as the trusted side would see it come through the channel."""
    return _raised(_exception_entry(error))


def _raised(body: dict) -> StudentRaised:
    if type(body) is not dict or type(body.get("type")) is not str or type(body.get("message")) is not str:
        raise ChannelError("an error reply is damaged")
    bases = body.get("bases")
    if type(bases) is not list or not all(type(b) is str for b in bases):
        raise ChannelError("an error reply is damaged")
    name = body["type"] if body["type"].isidentifier() else "Exception"
    return StudentRaised(name, tuple(bases), body["message"][:300])


# ---------------------------------------------------------------- the trusted side


class Client:
    """The trusted side of a channel: calls functions of the student's process and decodes the answers.

    ``time_limit`` bounds each call (seconds, from the request to its answer, callbacks
    included). After a timeout or a protocol error the channel is closed for good.
    """

    def __init__(self, sock: socket.socket, time_limit: float = 60.0):
        self.sock, self.time_limit = sock, time_limit
        self._callbacks: list[Callable] = []
        self.closed = False

    def hello(self) -> dict:
        """The first frame the student's side sends: what it serves (e.g. ``{"part": ..., "student": Remote}``)."""
        header, buffers = self._receive(time.monotonic() + self.time_limit)
        if header.get("op") != "hello":
            self._fail("the student's side did not start with hello")
        return self._decode(header.get("value"), buffers)

    def call(self, fn: Remote | RemoteMethod | Tool, *args, **kwargs):
        """Call ``fn`` on the student's side; return its result as data (or Remote handles)."""
        if self.closed:
            raise ChannelError("the channel is closed")
        if isinstance(fn, RemoteMethod):
            target = {"ref": fn.owner.handle, "method": fn.name}
        elif isinstance(fn, Remote):
            target = {"ref": fn.handle}
        elif isinstance(fn, Tool) and fn.name in TOOLS:
            target = {"tool": fn.name}
        else:
            raise TypeError(f"cannot call {fn!r} through the channel")
        encoder = _Encoder(self._encode_other)
        request = {"op": "call", "target": target, "args": encoder.encode(list(args)), "kwargs": encoder.encode(kwargs)}
        deadline = time.monotonic() + self.time_limit
        self._send(request, encoder.buffers)
        while True:
            header, buffers = self._receive(deadline)
            op = header.get("op")
            if op == "return":
                return self._decode(header.get("value"), buffers)
            if op == "raise":
                raise _raised(header.get("error"))
            if op == "callback":
                self._answer_callback(header, buffers)
                continue
            self._fail(f"an unexpected reply {str(op)[:40]!r}")

    def finish(self, summary: dict | None = None) -> None:
        """Tell the student's side that grading is over, and close the channel."""
        self.done(summary)
        self.close()

    def done(self, summary: dict | None = None) -> None:
        """Tell the student's side that this session is over (``Server.serve`` returns), keeping the
        channel open for what comes next."""
        if not self.closed:
            try:
                self._send({"op": "done", "summary": _Encoder(self._encode_other).encode(summary or {})}, [])
            except (OSError, ChannelError):
                self.close()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _answer_callback(self, header: dict, buffers) -> None:
        index = header.get("id")
        if type(index) is not int or not 0 <= index < len(self._callbacks):
            self._fail("a callback request names no callback")
        args = self._decode(header.get("args"), buffers)
        kwargs = self._decode(header.get("kwargs"), buffers)
        if type(args) is not list or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
            self._fail("a callback request is damaged")
        try:
            value = self._callbacks[index](*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the trusted callback's error goes to the student's code
            self._send({"op": "raise", "error": _exception_entry(error)}, [])
            return
        encoder = _Encoder(self._encode_other)
        self._send({"op": "return", "value": encoder.encode(value)}, encoder.buffers)

    def _encode_other(self, value) -> dict:
        if isinstance(value, Remote):
            return {"ref": value.handle}
        if isinstance(value, Callback):
            self._callbacks.append(value.fn)
            return {"callback": len(self._callbacks) - 1}
        if isinstance(value, Tool) and value.name in TOOLS:
            return {"tool": value.name}
        raise TypeError(f"the grader cannot send a {type(value).__name__} to student code")

    def _decode(self, data, buffers):
        def other(tag, body):
            if tag == "remote" and type(body) is list and len(body) == 3:
                handle, kind, is_callable = body
                if type(handle) is int and type(kind) is str and type(is_callable) is bool:
                    return Remote(self, handle, kind if kind.isidentifier() else "object", is_callable)
            raise ChannelError(f"an unknown entry {str(tag)[:40]!r}")

        try:
            return _Decoder(buffers, other, DataRecord).decode(data)
        except ChannelError:
            self.close()
            raise

    def _send(self, header: dict, buffers) -> None:
        try:
            send_frame(self.sock, header, buffers)
        except OSError as error:
            self.close()
            raise ChannelError(f"the student's side is gone ({error})") from None

    def _receive(self, deadline: float):
        try:
            return recv_frame(self.sock, deadline)
        except ChannelError:
            self.close()
            raise

    def _fail(self, why: str):
        self.close()
        raise ChannelError(why)


# ---------------------------------------------------------------- the student's side


class Server:
    """The student's side of a channel: answers the trusted side's calls until it says done.

    Runs in the student's process; it decides nothing. Objects that are not plain data go
    out as handles kept in ``self.handles``.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.handles: list = []

    def serve(self, hello: dict) -> dict:
        """Send ``hello`` (values may be any objects: they go out as handles), answer calls; return
        the summary the trusted side sends with done."""
        self._send_value("hello", hello)
        while True:
            header, buffers = recv_frame(self.sock)
            if header.get("op") == "done":
                summary = self._decode(header.get("summary"), buffers)
                return summary if type(summary) is dict else {}
            if header.get("op") != "call":
                raise ChannelError(f"unexpected request {str(header.get('op'))[:40]!r}")
            self._answer(header, buffers)

    def _answer(self, header: dict, buffers) -> None:
        try:
            fn = self._target(header.get("target"))
            args = self._decode(header.get("args"), buffers)
            kwargs = self._decode(header.get("kwargs"), buffers)
            value = fn(*args, **kwargs)
        except (ChannelError, KeyboardInterrupt):
            raise
        except BaseException as error:  # noqa: BLE001 - student code's exceptions (SystemExit too) go to the grader
            self._send({"op": "raise", "error": _exception_entry(error)}, [])
            return
        self._send_value("return", value)

    def _target(self, target) -> Callable:
        if type(target) is not dict:
            raise ChannelError("a call without a target")
        if "tool" in target:
            if target["tool"] not in TOOLS:
                raise ChannelError("a call to an unknown tool")
            return tool(target["tool"])
        obj = self._handle(target.get("ref"))
        if "method" in target:
            name = target["method"]
            if type(name) is not str or not name.isidentifier() or name.startswith("_"):
                raise ChannelError("a call to a bad method name")
            return getattr(obj, name)
        return obj

    def _handle(self, index):
        if type(index) is not int or not 0 <= index < len(self.handles):
            raise ChannelError("a reference to an unknown handle")
        return self.handles[index]

    def _send_value(self, op: str, value) -> None:
        encoder = _Encoder(self._encode_other)
        try:
            encoded = encoder.encode(value)
        except ChannelError as error:
            self._send({"op": "raise", "error": _exception_entry(error)}, [])
            return
        self._send({"op": op, "value": encoded}, encoder.buffers)

    def _encode_other(self, value) -> dict:
        self.handles.append(value)
        return {"remote": [len(self.handles) - 1, _safe_type_name(value), callable(value)]}

    def _decode(self, data, buffers):
        def other(tag, body):
            if tag == "ref":
                return self._handle(body)
            if tag == "tool" and body in TOOLS:
                return tool(body)
            if tag == "callback" and type(body) is int:
                return self._callback(body)
            raise ChannelError(f"an unknown entry {str(tag)[:40]!r}")

        return _Decoder(buffers, other, _make_record).decode(data)

    def _callback(self, index: int) -> Callable:
        def call_back(*args, **kwargs):
            encoder = _Encoder(self._encode_other)
            request = {"op": "callback", "id": index, "args": encoder.encode(list(args))}
            request["kwargs"] = encoder.encode(kwargs)
            self._send(request, encoder.buffers)
            header, buffers = recv_frame(self.sock)
            if header.get("op") == "raise":
                raise _raised(header.get("error"))
            if header.get("op") != "return":
                raise ChannelError("a callback got no answer")
            return self._decode(header.get("value"), buffers)

        call_back.__name__ = call_back.__qualname__ = "grader_callback"
        return call_back

    def _send(self, header: dict, buffers) -> None:
        send_frame(self.sock, header, buffers)


def _make_record(name: str, fields: dict):
    """On the student's side a dataclass arrives as an instance of a fresh dataclass of that name."""
    cls = dataclasses.make_dataclass(name, list(fields), frozen=True)
    return cls(**fields)
