"""The tensor-bundle format: wire encoding, LevelDB tables, and bundles, checked against TF's own files."""
from __future__ import annotations

import os
import pathlib
import shutil
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow.errors as errors
from jitflow.train.checkpoint import bundle, crc, table, wire
from jitflow.train.checkpoint.protos import BundleEntry, BundleHeader

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tf_checkpoint"


def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "expected.npz") as z:
        return {k.replace("__", "/"): z[k] for k in z.files}


# ---- wire encoding -------------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_roundtrip(n: int) -> None:
    enc = wire.encode_varint(n)
    assert wire.decode_varint(enc, 0) == (n, len(enc))


def test_varint_known_bytes_and_negative() -> None:
    assert wire.encode_varint(0) == b"\x00"
    assert wire.encode_varint(300) == b"\xac\x02"
    assert len(wire.encode_varint(-1)) == 10
    assert wire.to_signed64(wire.decode_varint(wire.encode_varint(-5), 0)[0]) == -5


@pytest.mark.parametrize("bad", [b"\x80", b"\xff" * 11, b""])
def test_varint_truncated_or_overlong_is_data_loss(bad: bytes) -> None:
    with pytest.raises(errors.DataLossError):
        wire.decode_varint(bad, 0)


def test_crc_mask_roundtrip_and_known_value() -> None:
    # CRC32C("123456789") is the standard check value 0xE3069283.
    assert crc.value(b"123456789") == 0xE3069283
    for c in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert crc.unmask(crc.mask(c)) == c
    assert crc.mask(0) == 0xA282EAD8


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**31), min_size=0, max_size=5),
       st.sampled_from([1, 2, 3, 9, 10, 19]), st.integers(0, 2**40), st.integers(0, 2**40),
       st.integers(0, 2**32 - 1))
def test_bundle_entry_roundtrip(shape: list[int], dtype: int, offset: int, size: int, c: int) -> None:
    e = BundleEntry(dtype=dtype, shape=tuple(shape), offset=offset, size=size, crc32c=c)
    assert BundleEntry.decode(e.encode()) == e


def test_header_bytes_match_tf() -> None:
    # TF writes num_shards=1 and version{producer: 1}; little-endian (0) is the omitted default.
    assert BundleHeader().encode() == bytes.fromhex("08011a020801")
    h = BundleHeader.decode(bytes.fromhex("08011a020801"))
    assert (h.num_shards, h.endianness, h.producer) == (1, 0, 1)


# ---- tables --------------------------------------------------------------------------------------

def test_separator_and_successor() -> None:
    assert table.shortest_separator(b"abcd", b"abzz") == b"abd"
    assert table.shortest_separator(b"abc", b"abd") == b"abc"  # no room for a shorter key
    assert table.shortest_separator(b"ab", b"abc") == b"ab"
    assert table.short_successor(b"weight") == b"x"
    assert table.short_successor(b"\xff\xffa") == b"\xff\xffb"
    assert table.short_successor(b"\xff") == b"\xff"


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.binary(min_size=0, max_size=12), st.binary(max_size=40), max_size=120),
       st.sampled_from([64, 256, 4096]), st.sampled_from([1, 2, 16]))
def test_table_roundtrip_many_blocks(items: dict[bytes, bytes], block_size: int, restart: int) -> None:
    pairs = sorted(items.items())
    data = table.build_table(pairs, block_size=block_size, restart_interval=restart)
    assert table.parse_table(data) == pairs


def test_table_rejects_unsorted_keys() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        table.build_table([(b"b", b""), (b"a", b"")])


def test_table_layout_restarts_every_16_entries() -> None:
    pairs = [(b"key%03d" % i, b"v") for i in range(40)]
    data = table.build_table(pairs)
    # One data block: entries, then restart offsets 0, r16, r32 and their count 3.
    blocks = _block_handles(data)
    contents = data[blocks[0][0]:blocks[0][0] + blocks[0][1]]
    assert struct.unpack_from("<I", contents, len(contents) - 4)[0] == 3
    # Entry 16 restarts: shared prefix length 0, full key stored.
    r16 = struct.unpack_from("<I", contents, len(contents) - 4 - 8)[0]
    assert contents[r16] == 0 and contents[r16 + 3:r16 + 9] == b"key016"
    assert table.parse_table(data) == pairs


def _block_handles(data: bytes) -> list[tuple[int, int]]:
    footer = len(data) - table.FOOTER_SIZE
    _, pos = wire.decode_varint(data, footer)
    _, pos = wire.decode_varint(data, pos)
    off, pos = wire.decode_varint(data, pos)
    size, _ = wire.decode_varint(data, pos)
    index = table.parse_block(data[off:off + size])
    out = []
    for _, h in index:
        o, p = wire.decode_varint(h, 0)
        s, _ = wire.decode_varint(h, p)
        out.append((o, s))
    return out


def test_table_every_single_byte_flip_is_detected() -> None:
    data = table.build_table([(b"", b"hdr"), (b"alpha", b"1" * 10), (b"beta", b"2" * 5)])
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x41
        try:
            result = table.parse_table(bytes(damaged))
        except errors.DataLossError:
            continue
        # A flip in the footer padding changes nothing that is read; anything else must be caught.
        assert result == table.parse_table(data), i


def test_table_truncation_is_data_loss() -> None:
    data = table.build_table([(b"a", b"1"), (b"b", b"2")])
    for n in range(len(data)):
        with pytest.raises(errors.DataLossError):
            table.parse_table(data[:n])


# ---- bundles -------------------------------------------------------------------------------------

def test_reads_tf_fixture_exactly() -> None:
    r = bundle.BundleReader(str(DATA / "model.ckpt-3"))
    exp = expected()
    assert set(r.entries) == set(exp)
    for name, want in exp.items():
        got = r.read(name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert int(bundle.BundleReader(str(DATA / "model.ckpt-2")).read("global_step")) == 2


def test_writer_output_is_byte_identical_to_tf(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "model.ckpt-3")
    bundle.write_bundle(prefix, expected())
    for suffix in (".index", ".data-00000-of-00001"):
        assert pathlib.Path(prefix + suffix).read_bytes() == (DATA / ("model.ckpt-3" + suffix)).read_bytes()


def test_strings_match_tf(tmp_path: pathlib.Path) -> None:
    r = bundle.BundleReader(str(DATA / "tf_strings"))
    s, t = r.read("s"), r.read("t")
    assert s.shape == (2, 2) and s.tolist() == [[b"hello", b""], [b"x" * 300, b"\xff\x00z"]]
    assert t.shape == () and t[()] == b"scalar"
    prefix = str(tmp_path / "s")
    bundle.write_bundle(prefix, {"s": s, "t": t})
    for suffix in (".index", ".data-00000-of-00001"):
        assert pathlib.Path(prefix + suffix).read_bytes() == (DATA / ("tf_strings" + suffix)).read_bytes()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
                                   "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128"])
def test_roundtrip_dtypes(tmp_path: pathlib.Path, dtype: str) -> None:
    rng = np.random.default_rng(0)
    vals = {"a": (rng.standard_normal((3, 4)) * 50).astype(dtype), "empty": np.zeros((0, 3), dtype),
            "scalar": np.array(7, dtype)}
    bundle.write_bundle(str(tmp_path / "c"), vals)
    got = bundle.BundleReader(str(tmp_path / "c")).read_many(vals)
    for k, v in vals.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)


def test_noncontiguous_and_big_endian_inputs(tmp_path: pathlib.Path) -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    vals = {"t": base.T, "be": base.astype(">f4")}
    bundle.write_bundle(str(tmp_path / "c"), vals)
    r = bundle.BundleReader(str(tmp_path / "c"))
    np.testing.assert_array_equal(r.read("t"), base.T)
    np.testing.assert_array_equal(r.read("be"), base)
    assert r.read("be").dtype == np.dtype("<f4")


def test_string_tensor_of_other_objects_is_type_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        bundle.write_bundle(str(tmp_path / "c"), {"s": np.array([b"a", 3], dtype=object)})
    bundle.write_bundle(str(tmp_path / "c"), {"s": np.array(["\u00e9t\u00e9", b"x"], dtype=object)})
    assert bundle.BundleReader(str(tmp_path / "c")).read("s").tolist() == ["\u00e9t\u00e9".encode(), b"x"]


def test_bad_keys_are_value_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="Duplicate"):
        bundle.write_bundle(str(tmp_path / "c"), [("a", 1.0), ("a", 2.0)])
    with pytest.raises(ValueError, match="non-empty"):
        bundle.write_bundle(str(tmp_path / "c"), {"": 1.0})
    assert not os.listdir(tmp_path)


def test_missing_checkpoint_and_key(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.NotFoundError, match="nope"):
        bundle.BundleReader(str(tmp_path / "nope"))
    bundle.write_bundle(str(tmp_path / "c"), {"a": np.ones(2)})
    with pytest.raises(errors.NotFoundError, match="Key zzz not found"):
        bundle.BundleReader(str(tmp_path / "c")).read("zzz")


def _copy_fixture(tmp_path: pathlib.Path) -> str:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(DATA / ("model.ckpt-3" + suffix), tmp_path / ("m" + suffix))
        os.chmod(tmp_path / ("m" + suffix), 0o644)
    return str(tmp_path / "m")


def test_data_corruption_is_data_loss(tmp_path: pathlib.Path) -> None:
    prefix = _copy_fixture(tmp_path)
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[40] ^= 1  # inside conv1/weights
    data.write_bytes(bytes(raw))
    r = bundle.BundleReader(prefix)
    np.testing.assert_array_equal(r.read("bias"), expected()["bias"])  # other tensors still read
    with pytest.raises(errors.DataLossError, match="conv1/weights"):
        r.read("conv1/weights")


def test_data_truncation_is_data_loss(tmp_path: pathlib.Path) -> None:
    prefix = _copy_fixture(tmp_path)
    data = pathlib.Path(prefix + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:-3])
    with pytest.raises(errors.DataLossError, match="truncated"):
        bundle.BundleReader(prefix).read("weight")
    os.remove(data)
    with pytest.raises(errors.DataLossError, match="missing"):
        bundle.BundleReader(prefix).read("weight")


def test_index_corruption_is_data_loss(tmp_path: pathlib.Path) -> None:
    prefix = _copy_fixture(tmp_path)
    index = pathlib.Path(prefix + ".index")
    good = index.read_bytes()
    for pos in (5, 100, 200, len(good) - 1):
        raw = bytearray(good)
        raw[pos] ^= 0x10
        index.write_bytes(bytes(raw))
        with pytest.raises(errors.DataLossError):
            bundle.BundleReader(prefix)
    index.write_bytes(good[:-10])
    with pytest.raises(errors.DataLossError):
        bundle.BundleReader(prefix)


def test_size_mismatch_in_index_is_data_loss(tmp_path: pathlib.Path) -> None:
    # An index whose entry claims a shape that does not fit its byte size.
    bundle.write_bundle(str(tmp_path / "c"), {"a": np.ones(4, np.float32)})
    entry = BundleEntry(dtype=1, shape=(5,), offset=0, size=16, crc32c=0)
    items = [(b"", BundleHeader().encode()), (b"a", entry.encode())]
    (tmp_path / "c.index").write_bytes(table.build_table(items))
    with pytest.raises(errors.DataLossError, match="needs 20 bytes"):
        bundle.BundleReader(str(tmp_path / "c")).read("a")


def test_failed_write_leaves_previous_files(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "c")
    bundle.write_bundle(prefix, {"a": np.arange(3.0)})

    class Boom:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        bundle.write_bundle(prefix, {"a": np.arange(3.0), "b": Boom()})
    np.testing.assert_array_equal(bundle.BundleReader(prefix).read("a"), np.arange(3.0))
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001", "c.index"]


def test_reads_tf_multi_shard_checkpoint(tmp_path: pathlib.Path) -> None:
    r = bundle.BundleReader(str(DATA / "sharded"))
    assert r.header.num_shards == 2 and r.entries["b"].shard_id == 1
    got = r.read_many(["a", "b", "c"])
    np.testing.assert_array_equal(got["a"], np.arange(4, dtype=np.float32))
    assert got["b"].dtype == np.float64 and got["b"].tolist() == [[1.5, 2.5]]
    assert got["c"].dtype == np.int32 and int(got["c"]) == 7
    for suffix in (".index", ".data-00000-of-00002"):
        shutil.copy(DATA / ("sharded" + suffix), tmp_path / ("s" + suffix))
    with pytest.raises(errors.DataLossError, match="missing"):
        bundle.BundleReader(str(tmp_path / "s")).read("b")  # its shard file is gone
    np.testing.assert_array_equal(bundle.BundleReader(str(tmp_path / "s")).read("a"), got["a"])


def test_huge_claimed_size_is_data_loss_not_memory_error(tmp_path: pathlib.Path) -> None:
    bundle.write_bundle(str(tmp_path / "c"), {"a": np.ones(4, np.float32)})
    entry = BundleEntry(dtype=1, shape=(2**40,), offset=0, size=2**42, crc32c=0)
    items = [(b"", BundleHeader().encode()), (b"a", entry.encode())]
    (tmp_path / "c.index").write_bytes(table.build_table(items))
    with pytest.raises(errors.DataLossError, match="truncated"):
        bundle.BundleReader(str(tmp_path / "c")).read("a")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_damage_never_gives_wrong_values(data: st.DataObject) -> None:
    # Any flipped, truncated or appended bytes: reading gives the original values or a TF error, never
    # other values and never another exception.
    import tempfile

    exp = expected()
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "m")
        bundle.write_bundle(prefix, exp, sync=False)
        which = data.draw(st.sampled_from([".index", ".data-00000-of-00001"]))
        path = pathlib.Path(prefix + which)
        raw = bytearray(path.read_bytes())
        action = data.draw(st.sampled_from(["flip", "truncate", "append"]))
        if action == "flip":
            for _ in range(data.draw(st.integers(1, 3))):
                raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        elif action == "truncate":
            del raw[data.draw(st.integers(0, len(raw) - 1)):]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=20))
        path.write_bytes(bytes(raw))
        try:
            r = bundle.BundleReader(prefix)
            got = {k: r.read(k) for k in exp}
        except (errors.DataLossError, errors.UnimplementedError, errors.NotFoundError):
            return
        for k, v in exp.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape
            np.testing.assert_array_equal(got[k], v)
