"""Hypothesis strategies shared by the property tests (imported by the tests as `strategies`): actions inside and
outside a Discrete or Box space, seeds, damaged bytes; and how many examples a property runs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import strategies as st

EXAMPLES = [pytest.param(200, id="200"), pytest.param(1000, id="1000", marks=pytest.mark.slow)]
"""Examples per property: parametrize a property test with `examples` over these and run its check under
`settings(max_examples=examples)`: 200 in the default run, 1,000 more with -m slow."""

INT_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
JUNK = st.one_of(  # things that are no action of any space
    st.none(), st.text(max_size=4), st.binary(max_size=4), st.complex_numbers(max_magnitude=10),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.just(object()),
    st.just([[1], [1, 2]]),  # ragged: numpy cannot make an array of it
    st.just(np.array([None, "x"], dtype=object)))


def _discrete_values(space: gym.spaces.Discrete):
    return st.integers(int(space.start), int(space.start + space.n - 1))


def _typed_int(value: int):
    """`value` as a Python int, a numpy integer scalar of a dtype that holds it, or a 0-d array."""
    dtypes = [d for d in INT_DTYPES if np.iinfo(d).min <= value <= np.iinfo(d).max]
    return st.one_of(st.just(value), st.sampled_from(dtypes).map(lambda d: d(value)),
                     st.sampled_from(dtypes).map(lambda d: np.array(value, d)))


def good_actions(space: gym.Space):
    """Actions inside `space` in the forms a user passes them (Python and numpy scalars, lists, arrays)."""
    if isinstance(space, gym.spaces.Discrete):
        return _discrete_values(space).flatmap(_typed_int)
    floats = st.lists(st.floats(-1.0, 1.0), min_size=int(np.prod(space.shape)), max_size=int(np.prod(space.shape)))
    assert np.all(space.low == -1) and np.all(space.high == 1), "good_actions knows Box(-1, 1) only"
    return st.one_of(floats.map(lambda v: np.array(v, space.dtype).reshape(space.shape)),
                     floats.map(lambda v: np.array(v, np.float64).reshape(space.shape)),
                     floats.map(lambda v: np.array(v, np.float32).reshape(space.shape).tolist()))


def good_batches(space: gym.Space, n: int):
    """Batches of `n` actions inside `space` for a vector env: one array (n, *space.shape) of one dtype, or a list
    of n actions."""
    if isinstance(space, gym.spaces.Discrete):
        values = st.lists(_discrete_values(space), min_size=n, max_size=n)
        dtypes = st.sampled_from([np.int64, np.int32, np.uint8] if space.start >= 0 else [np.int64, np.int32])
        return st.one_of(st.tuples(values, dtypes).map(lambda t: np.array(t[0], t[1])), values)
    return st.lists(good_actions(space), min_size=n, max_size=n).flatmap(
        lambda rows: st.sampled_from([np.float32, np.float64]).map(lambda d: np.array(rows, d)))


def bad_actions(space: gym.Space):
    """Actions outside `space`: out of range, NaN, inf, a wrong dtype or shape, or no number at all."""
    shapes = st.sampled_from([s for s in [(), (1,), (2,), (3,), (1, 1), (2, 1), (0,)] if s != space.shape])
    if isinstance(space, gym.spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n - 1)
        out_of_range = st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1))
        return st.one_of(
            out_of_range.filter(lambda v: -(2**63) <= v < 2**63).flatmap(_typed_int),
            out_of_range,  # Python ints of any size
            st.floats(allow_nan=True, allow_infinity=True),  # floats, also 1.0: Discrete actions are integers
            st.sampled_from([np.float32, np.float16]).flatmap(lambda d: st.floats(width=16).map(d)),
            st.booleans().map(np.bool_),
            st.tuples(shapes.filter(lambda s: s != ()), _discrete_values(space)).map(
                lambda sv: np.full(sv[0], sv[1], np.int64)),  # a good value in a wrong shape
            st.lists(_discrete_values(space), min_size=1, max_size=3),
            JUNK)
    size = int(np.prod(space.shape))
    coordinate = st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not -1 <= v <= 1),
                           st.sampled_from([float("nan"), float("inf"), -float("inf"), 1.0000001, -1.5, 1e30]))
    def with_coordinate(t) -> np.ndarray:
        values, index, value, dtype = t
        with np.errstate(over="ignore"):  # 1e300 is inf in float32: still outside
            return np.array([value if i == index else v for i, v in enumerate(values)], dtype).reshape(space.shape)

    return st.one_of(
        st.tuples(st.lists(st.floats(-1, 1), min_size=size, max_size=size), st.integers(0, size - 1), coordinate,
                  st.sampled_from([np.float32, np.float64])).map(with_coordinate).filter(
            lambda a: not (np.isfinite(a).all() and (np.abs(a) <= 1).all())),  # 1 + 1e-9 is 1 in float32
        st.tuples(shapes, st.floats(-1, 1)).map(lambda sv: np.full(sv[0], sv[1], np.float32)),  # wrong shape
        st.just(np.zeros(space.shape, np.complex64)), st.just(np.zeros(space.shape, bool)),
        st.just(np.zeros(space.shape).astype(str)),
        JUNK)


def seeds():
    """Seeds `reset` takes: non-negative integers of any size, as Python or numpy ints."""
    return st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**63 - 1).map(np.int64), st.integers(min_value=0))


def describe(action) -> str:
    """How an error message shows a scalar action (np.asarray(a).tolist(), or its repr)."""
    try:
        return str(np.asarray(action).tolist())
    except ValueError:
        return repr(action)


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """`data` truncated, with bits flipped, overwritten or grown; changes fall often in the first 4 KiB and the last
    1 KiB (where safetensors and zip files keep their headers and directories)."""
    kind = draw(st.sampled_from(["truncate", "flip", "flip", "overwrite", "append"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    out = bytearray(data)
    position = st.one_of(st.integers(0, min(len(data), 4096) - 1), st.integers(max(len(data) - 1024, 0), len(data) - 1),
                         st.integers(0, len(data) - 1))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            out[draw(position)] ^= 1 << draw(st.integers(0, 7))
    elif kind == "overwrite":
        start = draw(position)
        chunk = draw(st.binary(min_size=1, max_size=64))
        out[start : start + len(chunk)] = chunk
    else:
        out += draw(st.binary(min_size=1, max_size=64))
    return bytes(out)
