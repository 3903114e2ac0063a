"""`tf.nn.rnn_cell` (also `tf.contrib.rnn`): RNN cells with TF1's math, variable names and initializers.

A cell's variables live in a variable scope named after the cell (`basic_lstm_cell`, `lstm_cell_1`, ...)
under the scope it is first called in, so `rnn/multi_rnn_cell/cell_0/lstm_cell/kernel` is the same name
as under TensorFlow and checkpoints move both ways.
"""
from __future__ import annotations

import collections
import hashlib
from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops import array_ops, init_ops, math_ops, nn_ops
from jitflow.ops import loop_structure as ls
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.variables import get_variable, variable_scope

_LSTMStateTuple = collections.namedtuple("_LSTMStateTuple", ("c", "h"))


class LSTMStateTuple(_LSTMStateTuple):
    """(c, h): an LSTM's cell state and output."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"LSTMStateTuple(c={self.c!r}, h={self.h!r})"

    @property
    def dtype(self) -> dtypes.DType:
        c, h = self
        if c.dtype is not h.dtype:
            raise TypeError(f"Inconsistent internal state: {c.dtype} vs {h.dtype}")
        return c.dtype


def _zeros(size: Any, batch: Any, dtype: dtypes.DType) -> Any:
    if isinstance(size, (tuple, list)):
        return type(size)(*[_zeros(s, batch, dtype) for s in size]) if ls.is_namedtuple(size) else \
            type(size)(_zeros(s, batch, dtype) for s in size)
    b = batch if isinstance(batch, int) else None
    z = array_ops.zeros(array_ops.stack([batch, size]) if b is None else [b, size], dtype=dtype)
    z.set_shape([b, size])
    return z


class RNNCell:
    """The abstract cell: `output, new_state = cell(inputs, state)`."""

    _base_name = "rnn_cell"

    def __init__(self, reuse: Any = None, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        self._reuse = reuse
        self._name = name
        self._dtype = dtype
        self._scope: Any = None
        self._built = False
        self._variables: list[Any] = []

    @property
    def state_size(self) -> Any:
        raise NotImplementedError

    @property
    def output_size(self) -> Any:
        raise NotImplementedError

    @property
    def variables(self) -> list[Any]:
        return list(self._variables)

    trainable_variables = variables
    weights = variables
    trainable_weights = variables

    @property
    def name(self) -> str:
        return self._scope.name if self._scope is not None else (self._name or self._base_name)

    def build(self, inputs_shape: Any) -> None:
        """Creates the variables (called once, in the cell's variable scope)."""

    def _depth_dtype(self, inputs_shape: Any) -> tuple[int, dtypes.DType]:
        """The inputs' depth (which must be known) and the variables' dtype."""
        d = inputs_shape[-1].value if inputs_shape.ndims else None
        if d is None:
            raise ValueError(f"Expected inputs.shape[-1] to be known, saw shape: {inputs_shape}")
        return int(d), dtypes.as_dtype(self._dtype or dtypes.float32)

    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def _var(self, name: str, shape: list[int], dtype: dtypes.DType, initializer: Any = None) -> Any:
        v = get_variable(name, shape, dtype=dtype, initializer=initializer)
        if v not in self._variables:
            self._variables.append(v)
        return v

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        x = convert_to_tensor(inputs)
        if scope is not None:
            cm: Any = variable_scope(scope, reuse=self._reuse)
        elif self._scope is None:
            cm = variable_scope(self._name, default_name=None if self._name else self._base_name,
                                reuse=self._reuse)
        else:
            cm = variable_scope(self._scope, reuse=True)
        with cm as sc:
            if self._scope is None:
                self._scope = sc
            if not self._built:
                self.build(x.shape)
                self._built = True
            return self.call(x, state)

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        """The all-zeros state for a batch of `batch_size`."""
        with _name_scope(type(self).__name__ + "ZeroState"):
            return _zeros(self.state_size, batch_size, dtypes.as_dtype(dtype))

    def get_initial_state(self, inputs: Any = None, batch_size: Any = None, dtype: Any = None) -> Any:
        if inputs is not None:
            x = convert_to_tensor(inputs)
            batch_size = x.shape[0].value if x.shape[0].value is not None else array_ops.shape(x)[0]
            dtype = x.dtype
        return self.zero_state(batch_size, dtype)


def _act(activation: Any) -> Any:
    return activation if activation is not None else math_ops.tanh


class _UnitsCell(RNNCell):
    """A cell whose state and output are one [batch, num_units] tensor."""

    _num_units: int

    @property
    def state_size(self) -> int:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units


class BasicRNNCell(_UnitsCell):
    """output = new_state = activation(W [inputs, state] + b)."""

    _base_name = "basic_rnn_cell"

    def __init__(self, num_units: int, activation: Any = None, reuse: Any = None, name: str | None = None,
                 dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(reuse, name, dtype)
        self._num_units = num_units
        self._activation = _act(activation)

    def build(self, inputs_shape: Any) -> None:
        d, dt = self._depth_dtype(inputs_shape)
        self._kernel = self._var("kernel", [d + self._num_units, self._num_units], dt)
        self._bias = self._var("bias", [self._num_units], dt, init_ops.Zeros())

    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        x = math_ops.matmul(array_ops.concat([inputs, state], 1), self._kernel)
        out = self._activation(nn_ops.bias_add(x, self._bias))
        return out, out


class GRUCell(_UnitsCell):
    """Gated recurrent unit (Cho et al. 2014), TF1's formulation."""

    _base_name = "gru_cell"

    def __init__(self, num_units: int, activation: Any = None, reuse: Any = None, kernel_initializer: Any = None,
                 bias_initializer: Any = None, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(reuse, name, dtype)
        self._num_units = num_units
        self._activation = _act(activation)
        self._kernel_initializer = kernel_initializer
        self._bias_initializer = bias_initializer

    def build(self, inputs_shape: Any) -> None:
        d, dt = self._depth_dtype(inputs_shape)
        n = self._num_units
        self._gate_kernel = self._var("gates/kernel", [d + n, 2 * n], dt, self._kernel_initializer)
        self._gate_bias = self._var("gates/bias", [2 * n], dt, self._bias_initializer or init_ops.Constant(1.0))
        self._candidate_kernel = self._var("candidate/kernel", [d + n, n], dt, self._kernel_initializer)
        self._candidate_bias = self._var("candidate/bias", [n], dt, self._bias_initializer or init_ops.Zeros())

    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        gates = math_ops.sigmoid(nn_ops.bias_add(
            math_ops.matmul(array_ops.concat([inputs, state], 1), self._gate_kernel), self._gate_bias))
        r, u = array_ops.split(gates, 2, axis=1)
        cand = nn_ops.bias_add(math_ops.matmul(array_ops.concat([inputs, r * state], 1), self._candidate_kernel),
                               self._candidate_bias)
        c = self._activation(cand)
        new_h = u * state + (1 - u) * c
        return new_h, new_h


def _split_state(state: Any, n: int, tuple_state: bool) -> tuple[Tensor, Tensor]:
    if tuple_state:
        c, h = state
        return c, h
    return array_ops.slice(state, [0, 0], [-1, n]), array_ops.slice(state, [0, n], [-1, -1])


class BasicLSTMCell(RNNCell):
    """The basic LSTM (no peepholes, no projection), gates i, j, f, o; `forget_bias` added to f."""

    _base_name = "basic_lstm_cell"

    def __init__(self, num_units: int, forget_bias: float = 1.0, state_is_tuple: bool = True, activation: Any = None,
                 reuse: Any = None, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(reuse, name, dtype)
        self._num_units = num_units
        self._forget_bias = forget_bias
        self._state_is_tuple = state_is_tuple
        self._activation = _act(activation)

    @property
    def state_size(self) -> Any:
        n = self._num_units
        return LSTMStateTuple(n, n) if self._state_is_tuple else 2 * n

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, inputs_shape: Any) -> None:
        d, dt = self._depth_dtype(inputs_shape)
        n = self._num_units
        self._kernel = self._var("kernel", [d + n, 4 * n], dt)
        self._bias = self._var("bias", [4 * n], dt, init_ops.Zeros())

    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        c, h = _split_state(state, self._num_units, self._state_is_tuple)
        gates = nn_ops.bias_add(math_ops.matmul(array_ops.concat([inputs, h], 1), self._kernel), self._bias)
        i, j, f, o = array_ops.split(gates, 4, axis=1)
        fb = convert_to_tensor(self._forget_bias, dtype=f.dtype)
        new_c = c * math_ops.sigmoid(f + fb) + math_ops.sigmoid(i) * self._activation(j)
        new_h = self._activation(new_c) * math_ops.sigmoid(o)
        st = LSTMStateTuple(new_c, new_h) if self._state_is_tuple else array_ops.concat([new_c, new_h], 1)
        return new_h, st


class LSTMCell(RNNCell):
    """The LSTM with optional peepholes, cell clipping and output projection (TF1's LSTMCell)."""

    _base_name = "lstm_cell"

    def __init__(self, num_units: int, use_peepholes: bool = False, cell_clip: float | None = None,
                 initializer: Any = None, num_proj: int | None = None, proj_clip: float | None = None,
                 num_unit_shards: Any = None, num_proj_shards: Any = None, forget_bias: float = 1.0,
                 state_is_tuple: bool = True, activation: Any = None, reuse: Any = None, name: str | None = None,
                 dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(reuse, name, dtype)
        self._num_units = num_units
        self._use_peepholes = use_peepholes
        self._cell_clip = cell_clip
        self._initializer = initializer
        self._num_proj = num_proj
        self._proj_clip = proj_clip
        self._forget_bias = forget_bias
        self._state_is_tuple = state_is_tuple
        self._activation = _act(activation)

    @property
    def state_size(self) -> Any:
        n, p = self._num_units, self._num_proj or self._num_units
        return LSTMStateTuple(n, p) if self._state_is_tuple else n + p

    @property
    def output_size(self) -> int:
        return self._num_proj or self._num_units

    def build(self, inputs_shape: Any) -> None:
        d, dt = self._depth_dtype(inputs_shape)
        n = self._num_units
        h_depth = self._num_proj or n
        self._kernel = self._var("kernel", [d + h_depth, 4 * n], dt, self._initializer)
        self._bias = self._var("bias", [4 * n], dt, init_ops.Zeros())
        if self._use_peepholes:
            self._w_f_diag = self._var("w_f_diag", [n], dt, self._initializer)
            self._w_i_diag = self._var("w_i_diag", [n], dt, self._initializer)
            self._w_o_diag = self._var("w_o_diag", [n], dt, self._initializer)
        if self._num_proj is not None:
            self._proj_kernel = self._var("projection/kernel", [n, self._num_proj], dt, self._initializer)

    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        c_prev, m_prev = _split_state(state, self._num_units, self._state_is_tuple)
        lstm = nn_ops.bias_add(math_ops.matmul(array_ops.concat([inputs, m_prev], 1), self._kernel), self._bias)
        i, j, f, o = array_ops.split(lstm, 4, axis=1)
        fb = convert_to_tensor(self._forget_bias, dtype=f.dtype)
        if self._use_peepholes:
            c = math_ops.sigmoid(f + fb + self._w_f_diag * c_prev) * c_prev + \
                math_ops.sigmoid(i + self._w_i_diag * c_prev) * self._activation(j)
        else:
            c = math_ops.sigmoid(f + fb) * c_prev + math_ops.sigmoid(i) * self._activation(j)
        if self._cell_clip is not None:
            c = math_ops.clip_by_value(c, -self._cell_clip, self._cell_clip)
        if self._use_peepholes:
            m = math_ops.sigmoid(o + self._w_o_diag * c) * self._activation(c)
        else:
            m = math_ops.sigmoid(o) * self._activation(c)
        if self._num_proj is not None:
            m = math_ops.matmul(m, self._proj_kernel)
            if self._proj_clip is not None:
                m = math_ops.clip_by_value(m, -self._proj_clip, self._proj_clip)
        st = LSTMStateTuple(c, m) if self._state_is_tuple else array_ops.concat([c, m], 1)
        return m, st


class MultiRNNCell(RNNCell):
    """Cells stacked: each cell's output is the next one's input; the state is a tuple of their states."""

    _base_name = "multi_rnn_cell"

    def __init__(self, cells: list[RNNCell], state_is_tuple: bool = True) -> None:
        super().__init__()
        if not cells:
            raise ValueError("Must specify at least one cell for MultiRNNCell.")
        self._cells = list(cells)
        self._state_is_tuple = state_is_tuple

    @property
    def state_size(self) -> Any:
        sizes = tuple(c.state_size for c in self._cells)
        return sizes if self._state_is_tuple else sum(sizes)

    @property
    def output_size(self) -> Any:
        return self._cells[-1].output_size

    @property
    def variables(self) -> list[Any]:  # type: ignore[override]
        return [v for c in self._cells for v in c.variables]

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        with _name_scope(type(self).__name__ + "ZeroState"):
            if self._state_is_tuple:
                return tuple(c.zero_state(batch_size, dtype) for c in self._cells)
            return _zeros(self.state_size, batch_size, dtypes.as_dtype(dtype))

    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        cur = inputs
        new_states = []
        start = 0
        for k, cell in enumerate(self._cells):
            with variable_scope(f"cell_{k}"):
                if self._state_is_tuple:
                    cur_state = state[k]
                else:
                    size = cell.state_size
                    cur_state = array_ops.slice(state, [0, start], [-1, size])
                    start += size
                cur, ns = cell(cur, cur_state)
                new_states.append(ns)
        return cur, (tuple(new_states) if self._state_is_tuple else array_ops.concat(new_states, 1))


class _Wrapper(RNNCell):
    """A cell around another cell; adds no variable scope of its own."""

    def __init__(self, cell: RNNCell) -> None:
        super().__init__()
        self._cell = cell

    @property
    def wrapped_cell(self) -> RNNCell:
        return self._cell

    @property
    def state_size(self) -> Any:
        return self._cell.state_size

    @property
    def output_size(self) -> Any:
        return self._cell.output_size

    @property
    def variables(self) -> list[Any]:  # type: ignore[override]
        return self._cell.variables

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        with _name_scope(type(self).__name__ + "ZeroState"):
            return self._cell.zero_state(batch_size, dtype)


class ResidualWrapper(_Wrapper):
    """output = residual_fn(inputs, cell output) (default: their sum)."""

    def __init__(self, cell: RNNCell, residual_fn: Any = None) -> None:
        super().__init__(cell)
        self._residual_fn = residual_fn

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        x = convert_to_tensor(inputs)
        out, st = self._cell(x, state, scope=scope)
        if self._residual_fn is not None:
            return self._residual_fn(x, out), st
        if not x.shape.is_compatible_with(out.shape):
            raise ValueError(f"ResidualWrapper: the cell's input shape {x.shape} and output shape {out.shape} "
                             "differ")
        return x + out, st


class DeviceWrapper(_Wrapper):
    """Runs the cell on `device`."""

    def __init__(self, cell: RNNCell, device: str) -> None:
        super().__init__(cell)
        self._device = device

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        from jitflow.framework.graph import device

        with device(self._device):
            return self._cell(inputs, state, scope=scope)


class DropoutWrapper(_Wrapper):
    """Dropout on the cell's inputs, outputs and state (TF1's seeds: md5 of seed and salt)."""

    def __init__(self, cell: RNNCell, input_keep_prob: Any = 1.0, output_keep_prob: Any = 1.0,
                 state_keep_prob: Any = 1.0, variational_recurrent: bool = False, input_size: Any = None,
                 dtype: Any = None, seed: int | None = None, dropout_state_filter_visitor: Any = None) -> None:
        super().__init__(cell)
        for what, p in (("input", input_keep_prob), ("output", output_keep_prob), ("state", state_keep_prob)):
            if isinstance(p, (int, float)) and not 0 < p <= 1:
                raise ValueError(f"Parameter {what}_keep_prob must be between 0 and 1: {p}")
        if variational_recurrent:
            raise NotImplementedError("DropoutWrapper(variational_recurrent=True) is not supported")
        self._in, self._out, self._state = input_keep_prob, output_keep_prob, state_keep_prob
        self._seed = seed
        self._filter = dropout_state_filter_visitor

    def _gen_seed(self, salt: str, index: int) -> int | None:
        if self._seed is None:
            return None
        s = (str(self._seed) + f"{salt}_{index}").encode("utf-8")
        return int(hashlib.md5(s).hexdigest()[:8], 16) & 0x7FFFFFFF

    @staticmethod
    def _active(p: Any) -> bool:
        return not (isinstance(p, (int, float)) and p == 1)

    def _drop(self, values: Any, salt: str, keep: Any) -> Any:
        flat = ls.flatten(values)
        out = [nn_ops.dropout(v, keep_prob=keep, seed=self._gen_seed(salt, i)) for i, v in enumerate(flat)]
        return ls.pack(values, out)

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Any, Any]:
        if self._active(self._in):
            inputs = self._drop(inputs, "input", self._in)
        out, st = self._cell(inputs, state, scope=scope)
        if self._active(self._state):
            flat = ls.flatten(st)
            keep = [not isinstance(st, LSTMStateTuple) or k != 0 for k in range(len(flat))]  # never drop c
            dropped = [nn_ops.dropout(v, keep_prob=self._state, seed=self._gen_seed("state", i)) if kp else v
                       for i, (v, kp) in enumerate(zip(flat, keep))]
            st = ls.pack(st, dropped)
        if self._active(self._out):
            out = self._drop(out, "output", self._out)
        return out, st
