"""`tf.nn.static_rnn`, `dynamic_rnn` and their bidirectional forms, and `tf.reverse_sequence`.

static_rnn unrolls the cell over a Python list of inputs; dynamic_rnn runs it in a `while_loop` over the
time axis, reading inputs from and writing outputs to TensorArrays. With `sequence_length`, steps past a
sequence's end output zeros and carry the state through unchanged, as in TF1.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, control_dependencies
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops import array_ops, math_ops
from jitflow.ops import loop_structure as ls
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.tensor_array import TensorArray
from jitflow.ops.while_loop import while_loop
from jitflow.variables import variable_scope


# -- reverse_sequence -----------------------------------------------------------------------------------------
def _rs_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, lens = ins
    sa, ba = op.attrs["seq_dim"], op.attrs["batch_dim"]
    lens = np.asarray(lens)
    if lens.shape != (x.shape[ba],):
        raise InvalidArgumentError(None, None, f"Length of seq_lengths != input.dims({ba}), "
                                               f"({lens.size} vs. {x.shape[ba]})")
    if np.any(lens > x.shape[sa]) or np.any(lens < 0):
        raise InvalidArgumentError(None, None, f"seq_lens(i) must be in [0, input.dims({sa})={x.shape[sa]}], got "
                                               f"{lens.tolist()}")
    res = x.copy()
    for b, n in enumerate(lens):
        n = int(n)
        src = [slice(None)] * x.ndim
        src[ba] = b  # type: ignore[call-overload]
        src[sa] = slice(n - 1, None, -1) if n > 0 else slice(0, 0)
        dst = list(src)
        dst[sa] = slice(0, n)
        res[tuple(dst)] = x[tuple(src)]
    return res


registry.register_op("ReverseSequence", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)], _rs_kernel)


@registry.register_gradient("ReverseSequence")
def _rs_grad(op: Operation, g: Tensor) -> list[Any]:
    return [reverse_sequence(g, op.inputs[1], op.attrs["seq_dim"], op.attrs["batch_dim"]), None]


def reverse_sequence(input: Any, seq_lengths: Any, seq_axis: int | None = None, batch_axis: int | None = None,  # noqa: A002
                     name: str | None = None, seq_dim: int | None = None, batch_dim: int | None = None) -> Tensor:
    """Reverses the first seq_lengths[b] elements along `seq_axis` of each batch entry b."""
    x = convert_to_tensor(input)
    lens = convert_to_tensor(seq_lengths)
    sa = seq_axis if seq_axis is not None else seq_dim
    ba = batch_axis if batch_axis is not None else (batch_dim if batch_dim is not None else 0)
    if sa is None:
        raise ValueError("seq_axis is required")
    return x.graph.create_op("ReverseSequence", [x, lens], {"seq_dim": int(sa), "batch_dim": int(ba),
                                                           "T": x.dtype}, name=name or "ReverseSequence").outputs[0]


# -- shared pieces --------------------------------------------------------------------------------------------
def _batch_size(x: Tensor, axis: int) -> Any:
    d = x.shape[axis].value if x.shape.ndims else None
    return d if d is not None else array_ops.shape(x)[axis]


def _initial_state(cell: Any, initial_state: Any, batch: Any, dtype: Any) -> Any:
    if initial_state is not None:
        return initial_state
    if dtype is None:
        raise ValueError("If there is no initial_state, you must give a dtype.")
    return cell.zero_state(batch, dtype)


def _seq_len(sequence_length: Any) -> Tensor | None:
    if sequence_length is None:
        return None
    s = math_ops.cast(convert_to_tensor(sequence_length), dtypes.int32)
    if s.shape.ndims not in (None, 1):
        raise ValueError(f"sequence_length must be a vector of length batch_size, but saw shape: {s.shape}")
    return array_ops.identity(s, name="sequence_length")


def _copy_through(time: Any, seq: Tensor, zero_out: Any, output: Any, old_state: Any, new_state: Any) -> tuple:
    """Where time >= seq[b]: zero output, old state; elsewhere the cell's."""
    done = math_ops.greater_equal(time, seq)

    def pick(a: Tensor, b: Tensor) -> Tensor:
        return math_ops.where(done, a, b)

    out = ls.pack(output, [pick(z, o) for z, o in zip(ls.flatten(zero_out), ls.flatten(output))])
    st = ls.pack(new_state, [pick(a, b) for a, b in zip(ls.flatten(old_state), ls.flatten(new_state))])
    return out, st


def _zero_output(cell: Any, batch: Any, dtype: Any) -> Any:
    from jitflow.ops.rnn_cell import _zeros

    return _zeros(cell.output_size, batch, dtypes.as_dtype(dtype))


# -- static ---------------------------------------------------------------------------------------------------
def static_rnn(cell: Any, inputs: Any, initial_state: Any = None, dtype: Any = None, sequence_length: Any = None,
               scope: Any = None) -> tuple[list[Any], Any]:
    """The cell unrolled over the list `inputs` (each [batch, depth]); returns (outputs, final state)."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError("inputs must be a sequence")
    if not inputs:
        raise ValueError("inputs must not be empty")
    outputs: list[Any] = []
    with variable_scope(scope if scope is not None else "rnn") as vs:
        first = convert_to_tensor(ls.flatten(inputs[0])[0])
        batch = _batch_size(first, 0)
        state = _initial_state(cell, initial_state, batch, dtype if dtype is not None else first.dtype)
        seq = _seq_len(sequence_length)
        zero_out = _zero_output(cell, batch, state_dtype(state)) if seq is not None else None
        for t, x in enumerate(inputs):
            if t > 0:
                vs.reuse_variables()
            out, new_state = cell(x, state)
            if seq is not None:
                out, new_state = _copy_through(t, seq, zero_out, out, state, new_state)
            outputs.append(out)
            state = new_state
        return outputs, state


def state_dtype(state: Any) -> dtypes.DType:
    return convert_to_tensor(ls.flatten(state)[0]).dtype


def _reverse_list(xs: list[Any], seq: Tensor | None) -> list[Any]:
    if seq is None:
        return list(reversed(xs))
    stacked = array_ops.stack(xs)
    return array_ops.unstack(reverse_sequence(stacked, math_ops.cast(seq, dtypes.int64), 0, 1))


def static_bidirectional_rnn(cell_fw: Any, cell_bw: Any, inputs: Any, initial_state_fw: Any = None,
                             initial_state_bw: Any = None, dtype: Any = None, sequence_length: Any = None,
                             scope: Any = None) -> tuple[tuple[Any, ...], Any, Any]:
    """Forward and backward static_rnn; outputs concatenated per step: (outputs, state_fw, state_bw)."""
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise TypeError("inputs must be a non-empty list")
    with variable_scope(scope if scope is not None else "bidirectional_rnn"):
        with variable_scope("fw") as fw:
            out_fw, st_fw = static_rnn(cell_fw, inputs, initial_state_fw, dtype, sequence_length, scope=fw)
        with variable_scope("bw") as bw:
            rev = _reverse_list(list(inputs), sequence_length)
            tmp, st_bw = static_rnn(cell_bw, rev, initial_state_bw, dtype, sequence_length, scope=bw)
    out_bw = _reverse_list(tmp, sequence_length)
    outs = tuple(array_ops.concat([f, b], 1) for f, b in zip(out_fw, out_bw))
    return outs, st_fw, st_bw


# -- dynamic --------------------------------------------------------------------------------------------------
def _check_seq(seq: Tensor, steps: Any) -> Tensor:
    """sequence_length must not exceed the time axis (InvalidArgumentError at run time)."""
    from jitflow.ops.debug_ops import Assert

    ok = math_ops.reduce_all(math_ops.less_equal(seq, steps))
    chk = Assert(ok, ["sequence_length must be <= the number of time steps", steps, "but got", seq],
                 name="CheckSeqLen")
    with control_dependencies([chk]):
        return array_ops.identity(seq)


def _time_major(x: Tensor) -> Tensor:
    if x.shape.ndims is not None and x.shape.ndims < 2:
        raise ValueError(f"Expected inputs of rank >= 2 [batch, time, ...], got {x.shape}")
    perm = [1, 0] + list(range(2, x.shape.ndims or 3))
    return array_ops.transpose(x, perm)


def _batch_major(x: Tensor) -> Tensor:
    perm = [1, 0] + list(range(2, x.shape.ndims or 3))
    return array_ops.transpose(x, perm)


def dynamic_rnn(cell: Any, inputs: Any, sequence_length: Any = None, initial_state: Any = None, dtype: Any = None,
                parallel_iterations: int | None = None, swap_memory: bool = False, time_major: bool = False,
                scope: Any = None) -> tuple[Any, Any]:
    """The cell run over the time axis of `inputs` in a while_loop; returns (outputs, final state)."""
    with variable_scope(scope if scope is not None else "rnn"):
        flat = [convert_to_tensor(x) for x in ls.flatten(inputs)]
        if not time_major:
            flat = [_time_major(x) for x in flat]
        batch = _batch_size(flat[0], 1)
        state = _initial_state(cell, initial_state, batch, dtype if dtype is not None else flat[0].dtype)
        seq = _seq_len(sequence_length)
        steps_static = flat[0].shape[0].value
        steps = array_ops.shape(flat[0])[0] if steps_static is None else convert_to_tensor(steps_static)
        if seq is not None:
            seq = _check_seq(seq, steps)
        outputs, final = _dynamic_loop(cell, flat, inputs, state, seq, steps, batch,
                                       parallel_iterations or 32, swap_memory)
        if steps_static is not None:
            for o in ls.flatten(outputs):
                if o.shape.ndims:
                    o.set_shape([steps_static] + o.shape.as_list()[1:])
        if not time_major:
            outputs = ls.pack(outputs, [_batch_major(o) for o in ls.flatten(outputs)])
        return outputs, final


def _dynamic_loop(cell: Any, flat: list[Tensor], inputs: Any, state: Any, seq: Tensor | None, steps: Tensor,
                  batch: Any, parallel_iterations: int, swap_memory: bool) -> tuple[Any, Any]:
    dt = state_dtype(state)
    with _name_scope("dynamic_rnn"):
        in_tas = [TensorArray(x.dtype, size=steps, element_shape=x.shape[1:], tensor_array_name="input")
                  .unstack(x) for x in flat]
        out_sizes = ls.flatten(cell.output_size)
        out_tas = [TensorArray(dt, size=steps, element_shape=[batch if isinstance(batch, int) else None, n],
                               tensor_array_name="output") for n in out_sizes]
        zero_out = _zero_output(cell, batch, dt) if seq is not None else None
        bound = steps if seq is None else math_ops.minimum(steps, math_ops.maximum(1, math_ops.reduce_max(seq)))
        n_state = len(ls.flatten(state))

        def body(time: Tensor, *rest: Any) -> Any:
            st = ls.pack(state, list(rest[:n_state]))
            tas = rest[n_state:]
            x = ls.pack(inputs, [ta.read(time) for ta in in_tas])
            out, new_st = cell(x, st)
            if seq is not None:
                out, new_st = _copy_through(time, seq, zero_out, out, st, new_st)
            new_tas = [ta.write(time, o) for ta, o in zip(tas, ls.flatten(out))]
            return (time + 1, *ls.flatten(new_st), *new_tas)

        res = while_loop(lambda time, *_: time < bound, body, [0, *ls.flatten(state), *out_tas],
                         parallel_iterations=parallel_iterations, swap_memory=swap_memory,
                         maximum_iterations=steps, return_same_structure=True)
        final = ls.pack(state, list(res[1:1 + n_state]))
        outs = [ta.stack() for ta in res[1 + n_state:]]
        return ls.pack(cell.output_size, outs) if isinstance(cell.output_size, (list, tuple)) else outs[0], final


def bidirectional_dynamic_rnn(cell_fw: Any, cell_bw: Any, inputs: Any, sequence_length: Any = None,
                              initial_state_fw: Any = None, initial_state_bw: Any = None, dtype: Any = None,
                              parallel_iterations: int | None = None, swap_memory: bool = False,
                              time_major: bool = False, scope: Any = None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """dynamic_rnn forward and over the reversed sequences: ((out_fw, out_bw), (state_fw, state_bw))."""
    time_axis, batch_axis = (0, 1) if time_major else (1, 0)

    def rev(x: Any) -> Any:
        if sequence_length is None:
            return array_ops.reverse(x, [time_axis])
        return reverse_sequence(x, math_ops.cast(sequence_length, dtypes.int64), time_axis, batch_axis)

    with variable_scope(scope if scope is not None else "bidirectional_rnn"):
        with variable_scope("fw") as fw:
            out_fw, st_fw = dynamic_rnn(cell_fw, inputs, sequence_length, initial_state_fw, dtype,
                                        parallel_iterations, swap_memory, time_major, scope=fw)
        with variable_scope("bw") as bw:
            r_in = ls.pack(inputs, [rev(x) for x in ls.flatten(inputs)])
            tmp, st_bw = dynamic_rnn(cell_bw, r_in, sequence_length, initial_state_bw, dtype,
                                     parallel_iterations, swap_memory, time_major, scope=bw)
    out_bw = ls.pack(tmp, [rev(x) for x in ls.flatten(tmp)])
    return (out_fw, out_bw), (st_fw, st_bw)
