"""The grading channel: plain data both ways, handles, callbacks, tools, errors as types, bad frames."""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import struct
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lcteach.grading.channel import (
    Callback,
    ChannelError,
    ChannelTimeout,
    Client,
    DataRecord,
    Remote,
    Server,
    StudentRaised,
    Tool,
    send_frame,
)


def serve(hello: dict, time_limit: float = 10.0):
    """A Client connected to a Server (in a thread) that says ``hello``; returns (client, hello, thread)."""
    trusted, student = socket.socketpair()
    result = {}

    def run():
        try:
            result["summary"] = Server(student).serve(hello)
        except Exception as error:  # noqa: BLE001
            result["error"] = error
        finally:
            student.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    client = Client(trusted, time_limit=time_limit)
    return client, client.hello(), thread, result


def identity(x):
    return x


@dataclasses.dataclass
class Config:
    window: int
    scale: float


class Counter:
    def __init__(self):
        self.calls = 0

    def step(self, x):
        self.calls += 1
        return x + self.calls


def test_plain_values_round_trip_exactly():
    client, hello, _, _ = serve({"identity": identity})
    echo = hello["identity"]
    assert isinstance(echo, Remote) and echo.is_callable
    values = [
        None,
        True,
        0,
        -(2**70),
        "text ✓",
        0.1,
        -0.0,
        math.inf,
        (1, [2.5, "x"], {"a": (None,)}),
        {3: "int key"},
        [],
        (),
    ]
    for value in values:
        assert echo(value) == value and type(echo(value)) is type(value)
    assert math.copysign(1, echo(-0.0)) == -1
    assert math.isnan(echo(math.nan))
    client.finish()


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool]),
    shape=st.lists(st.integers(0, 4), max_size=4),
)
def test_tensors_round_trip_with_dtype_shape_and_bits(dtype, shape):
    client, hello, _, _ = serve({"identity": identity})
    tensor = (torch.randn(shape, dtype=torch.float64) * 100).to(dtype)
    back = hello["identity"](tensor)
    assert type(back) is torch.Tensor and back.dtype == dtype and back.shape == tensor.shape
    assert torch.equal(back, tensor)
    client.finish()


def test_non_contiguous_tensors_parameters_numpy_and_dataclasses():
    client, hello, _, _ = serve({"identity": identity, "config": Config(3, 0.5)})
    echo = hello["identity"]
    tensor = torch.arange(12.0).reshape(3, 4).t()
    assert torch.equal(echo(tensor), tensor)
    parameter = echo(torch.nn.Parameter(torch.ones(2)))
    assert type(parameter) is torch.Tensor and not parameter.requires_grad
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    back = echo(array)
    assert type(back) is np.ndarray and back.dtype == np.int32 and np.array_equal(back, array)
    scalar = echo(np.float64(2.5))
    assert type(scalar) is np.float64 and scalar == 2.5
    config = hello["config"]
    assert isinstance(config, DataRecord) and config.type_name == "Config" and config.window == 3
    # a trusted dataclass reaches the student's side as a dataclass with the same fields
    assert client.call(Remote(client, hello["identity"].handle, "function", True), Config(4, 1.0)) == DataRecord(
        "Config", {"window": 4, "scale": 1.0}
    )
    client.finish()


def test_a_namedtuple_travels_as_a_tuple():
    from collections import namedtuple

    State = namedtuple("State", "m l")
    client, hello, _, _ = serve({"identity": identity})
    assert hello["identity"](State(1, 2.5)) == (1, 2.5)
    client.finish()


def test_remote_objects_keep_state_and_methods_are_called_through_the_channel():
    client, hello, _, _ = serve({"make": Counter})
    counter = hello["make"]()
    assert isinstance(counter, Remote) and counter.kind == "Counter" and not counter.is_callable
    step = counter.method("step")
    assert step(10) == 11 and step(10) == 12
    with pytest.raises(ValueError):
        counter.method("__init__")
    client.finish()


def test_remote_function_passed_back_is_the_original_and_tools_run_on_the_student_side():
    def generate(window):
        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx >= kv_idx) & (q_idx - kv_idx < window)

        return mask_mod

    client, hello, _, _ = serve({"generate": generate})
    mask_mod = hello["generate"](3)
    assert isinstance(mask_mod, Remote) and mask_mod.is_callable
    mask = client.call(Tool("create_mask"), mask_mod, None, None, 6, 6, device="cpu")
    i, j = torch.arange(6)[:, None], torch.arange(6)[None, :]
    assert torch.equal(mask[0, 0], (i >= j) & (i - j < 3))
    client.finish()


def test_callbacks_run_in_the_trusted_process():
    def chunked(fn, x):
        return torch.cat([fn(x[:2]), fn(x[2:])])

    client, hello, _, _ = serve({"chunked": chunked})
    seen = []

    def probe(chunk):
        seen.append(chunk.tolist())
        return chunk * 2

    out = hello["chunked"](Callback(probe), torch.arange(5.0))
    assert seen == [[0.0, 1.0], [2.0, 3.0, 4.0]] and torch.equal(out, torch.arange(5.0) * 2)

    def failing(chunk):
        raise OverflowError("too many calls")

    with pytest.raises(StudentRaised) as raised:
        hello["chunked"](Callback(failing), torch.arange(5.0))
    assert raised.value.is_a(OverflowError) and raised.value.is_a(ArithmeticError)
    client.finish()


def test_errors_travel_as_types():
    class WindowError(ValueError):
        pass

    def check(window):
        if window < 1:
            raise WindowError("window must be positive")
        return window

    client, hello, _, _ = serve({"check": check})
    with pytest.raises(StudentRaised) as raised:
        hello["check"](0)
    error = raised.value
    assert error.type_name == "WindowError" and error.is_a(ValueError) and not error.is_a(TypeError)
    assert error.message == "window must be positive"
    assert hello["check"](2) == 2  # the channel still works after an error
    client.finish()


def test_a_slow_call_times_out_and_closes_the_channel():
    client, hello, _, _ = serve({"sleep": time.sleep}, time_limit=0.3)
    with pytest.raises(ChannelTimeout):
        hello["sleep"](2)
    assert client.closed
    with pytest.raises(ChannelError):
        hello["sleep"](0)


def test_done_returns_the_summary_to_the_student_side():
    client, _, thread, result = serve({})
    client.finish({"score": 1.5})
    thread.join(5)
    assert result["summary"] == {"score": 1.5}


def hostile_client(frames: list[bytes]) -> Client:
    """A Client whose other side sends these raw bytes."""
    trusted, student = socket.socketpair()
    for frame in frames:
        student.sendall(frame)
    student.close()
    return Client(trusted, time_limit=2)


def raw_frame(header: dict, buffers: list[bytes] = ()) -> bytes:
    header = dict(header, sizes=[len(b) for b in buffers])
    text = json.dumps(header).encode()
    return struct.pack(">I", len(text)) + text + b"".join(buffers)


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00\x00\x05notjs",
        struct.pack(">I", 2**31),
        raw_frame({"op": "hello", "value": {"tensor": ["float32", [4], 0]}}, [b"\x00" * 3]),
        raw_frame({"op": "hello", "value": {"tensor": ["object", [1], 0]}}, [b"\x00" * 8]),
        raw_frame({"op": "hello", "value": {"tensor": ["float32", [-1], 0]}}),
        raw_frame({"op": "hello", "value": {"pickle": "gASVAAAAAAAAAAB9lC4="}}),
        raw_frame({"op": "hello", "value": {"float": "nonsense"}}),
        raw_frame({"op": "hello", "value": {"dict": [[[1], 2]]}}),
        raw_frame({"op": "hello", "value": {"list": [1], "tuple": [2]}}),
        raw_frame({"op": "hello", "value": {"numpy": ["float64", [2], 0, True]}}, [b"\x00" * 16]),
        raw_frame({"op": "hello", "value": {"remote": ["x", "function", True]}}),
        raw_frame({"op": "hello", "value": json.loads("[" * 40 + "]" * 40)}),
        raw_frame({"op": "return"}),
        b"\x00\x00",
    ],
)
def test_malformed_frames_raise_channel_error(frame):
    with pytest.raises(ChannelError):
        hostile_client([frame]).hello()


def test_a_deeply_nested_value_is_refused_by_the_sender_too():
    nested = []
    for _ in range(40):
        nested = [nested]
    client, hello, _, _ = serve({"identity": identity})
    with pytest.raises(ChannelError):
        hello["identity"](nested)


def test_the_trusted_side_refuses_to_send_its_own_objects():
    client, hello, _, _ = serve({"identity": identity})
    with pytest.raises(TypeError):
        hello["identity"](object())
    with pytest.raises(TypeError):
        client.call(print)


def test_a_frame_sent_by_send_frame_is_read_back():
    a, b = socket.socketpair()
    send_frame(a, {"op": "hello", "value": {"tensor": ["uint8", [3], 0]}}, [b"abc"])
    client = Client(b, time_limit=2)
    assert client.hello().tolist() == [97, 98, 99]
