r"""ogb's split files (``split/time/*.pt``) written and read in chunks, never unpickled.

ogb 1.3.x stores each split of ogbl-wikikg2 as ``torch.save`` of a dict of
int64 numpy arrays. ``torch.save`` writes a zip archive (every record stored
uncompressed) whose ``<stem>/data.pkl`` is a pickle of protocol 2; numpy's
reduction puts each array's raw bytes into it as
``_codecs.encode(<latin-1 str>, 'latin1')``, i.e. a ``BINUNICODE`` string
holding the UTF-8 encoding of those bytes read as latin-1 (bytes >= 0x80 take
two bytes). Both ``torch.save`` and ``torch.load`` hold the whole pickle in
memory (plus one or two copies of each array), which at the full size of
ogbl-wikikg2 (8.2 GB of int64 candidates) does not fit in a 24 GB machine.

* :func:`write_split_file` produces the same ``data.pkl`` byte for byte as
  ``torch.save`` (same opcodes, same memo references; checked by the tests;
  an empty array is the one exception, see :class:`_SplitPickler`)
  from :class:`ArraySource` objects that give the arrays in row chunks. Each
  array's data is visited twice (once to measure its UTF-8 length, which the
  ``BINUNICODE`` header needs, once to write it), so only one chunk is in
  memory at a time. The archive around it has the records of the installed
  torch (``.format_version``, ``byteorder``, ``version``...), zip64 where the
  pickle passes 2 GiB, as ``torch.save`` does.
* :func:`read_split_file` reads such a file (or one saved with pickle
  protocol 3 or 4, whose array data are ``BINBYTES``) with a small pickle
  interpreter that executes nothing: it knows a dozen opcodes and exactly
  four globals (``numpy...multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, ``_codecs.encode``), checks the arguments of each call
  against numpy's array reduction, and builds the arrays itself. Any other
  global is refused with the same message as
  :func:`~metasd_pyg.data.ogb_source.check_pickle`. Array data are decoded
  chunk by chunk straight into the output (int32 when asked and the values
  fit), so reading a file costs its arrays at the output width plus a few
  16 MiB buffers. The zip member is read once, sequentially, and its CRC-32 is
  checked.


The legacy (pre-zip, torch < 1.6) ``torch.save`` format is not read, as by
:func:`~metasd_pyg.data.ogb_source.check_pickle`.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import torch

from metasd_pyg.errors import DataError

#: Bytes of file data handled per step by the writer and the reader.
CHUNK_BYTES = 1 << 24

#: Largest string or bytes object accepted outside an array's data.
_SMALL = 4096

#: Most pickle opcodes read from one file (a split file has about a hundred): bounds the
#: work a crafted file can cause (each BUILD scans the memo).
_MAX_OPS = 100_000

#: BINUNICODE's length field is 4 bytes: the most a protocol-2 array can hold.
_MAX_BINUNICODE = 0xFFFFFFFF

#: Integer dtypes accepted in split files (numpy's ``dtype`` constructor name).
_DTYPES = {"i8": np.dtype("<i8"), "i4": np.dtype("<i4"), "u4": np.dtype("<u4"),
           "u8": np.dtype("<u8")}


def _reconstruct_func() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


# --------------------------------------------------------------------------- writer
class ArraySource:
    """An integer array given as chunks of rows, written as int64 (ogb's dtype).

    Args:
        shape: Shape of the whole array (``[N]`` or ``[N, C]``).
        chunks: Called once per pass over the data; returns an iterator of
            arrays whose rows, concatenated, are the array. It must give the
            same values every time it is called (the writer calls it twice).
    """

    def __init__(self, shape: tuple[int, ...], chunks: Callable[[], Iterator[np.ndarray]]):
        self.shape = tuple(int(s) for s in shape)
        self.chunks = chunks
        self.utf8_len = -1  # set by write_split_file's first pass

    @classmethod
    def from_array(cls, array: np.ndarray | torch.Tensor, rows: int | None = None) -> ArraySource:
        """A source over an array held in memory, converted to int64 ``rows`` rows at a time.

        Args:
            array: The array (numpy or CPU tensor); it is not copied.
            rows: Rows per chunk (default: about :data:`CHUNK_BYTES` of int64).
        """
        arr = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        width = int(np.prod(arr.shape[1:], dtype=np.int64)) if arr.ndim > 1 else 1
        step = rows or max(1, CHUNK_BYTES // (8 * max(width, 1)))

        def chunks() -> Iterator[np.ndarray]:
            for start in range(0, len(arr), step):
                yield arr[start:start + step]

        return cls(arr.shape, chunks)

    def int64_chunks(self) -> Iterator[bytes]:
        """The array's little-endian int64 bytes, chunk by chunk (shape checked)."""
        rows = 0
        for chunk in self.chunks():
            c = np.ascontiguousarray(chunk, dtype="<i8")
            if c.shape[1:] != self.shape[1:]:
                raise ValueError(f"chunk of shape {c.shape} in an array of shape {self.shape}")
            rows += len(c)
            yield c.tobytes()
        if rows != self.shape[0]:
            raise ValueError(f"chunks gave {rows} rows, the array has {self.shape[0]}")


class _Latin1:
    """The latin-1 string of an array's bytes, written as UTF-8 without being built."""

    def __init__(self, source: ArraySource):
        self.source = source


class _Data:
    """An array's raw bytes (pickled as ``_codecs.encode(_Latin1, 'latin1')``)."""

    def __init__(self, source: ArraySource):
        self.source = source


class _Sink:
    """Counts the bytes a pickle would have (the dry run that sizes the zip member)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


class _SplitPickler(pickle._Pickler):
    """Python's pickler with numpy's array reduction applied to :class:`ArraySource`.

    The values, object identities and hence memo references are those of
    ``torch.save(dict_of_int64_arrays)``: a fresh ``(0,)`` and shape tuple per
    array, numpy's shared int64 dtype, the interned ``b'b'`` and ``'latin1'``.
    """

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)
    # Set or defined by Python's pickler (not in its type stubs):
    write: Callable[[bytes], Any]
    memoize: Callable[[Any], None]

    def __init__(self, file: IO[bytes] | _Sink) -> None:
        super().__init__(file, protocol=2)
        self._dry = isinstance(file, _Sink)
        self._file = file
        self.dispatch_table = {ArraySource: self._reduce_source, _Data: self._reduce_data}

    @staticmethod
    def _reduce_source(src: ArraySource) -> tuple[Any, ...]:
        # For an empty array numpy gives b"", which protocol 2 pickles as bytes(): a global
        # that torch.load's weights-only unpickler refuses. Its _codecs.encode('', 'latin1')
        # form here loads everywhere (the only place where the pickle differs from torch.save).
        state = (1, tuple(int(s) for s in src.shape), np.dtype(np.int64), False, _Data(src))
        return _reconstruct_func(), (np.ndarray, tuple([0]), b"b"), state

    @staticmethod
    def _reduce_data(data: _Data) -> tuple[Any, ...]:
        return codecs.encode, (_Latin1(data.source), "latin1")

    def _save_latin1(self, obj: _Latin1) -> None:
        n = obj.source.utf8_len
        self.write(pickle.BINUNICODE + struct.pack("<I", n))
        if self._dry:
            assert isinstance(self._file, _Sink)
            self._file.size += n
        else:
            written = 0
            for raw in obj.source.int64_chunks():
                enc = raw.decode("latin1").encode("utf-8")
                written += len(enc)
                self.write(enc)
            if written != n:
                raise RuntimeError(f"array data changed between passes ({written} != {n} bytes)")
        self.memoize(obj)

    dispatch[_Latin1] = _save_latin1


def _torch_records() -> list[tuple[str, bytes]]:
    """The small records ``torch.save`` of the installed torch writes besides ``data.pkl``."""
    buf = io.BytesIO()
    torch.save({}, buf)
    with zipfile.ZipFile(buf) as zf:
        return [(name.split("/", 1)[1], zf.read(name)) for name in zf.namelist()
                if not name.endswith("/data.pkl")]


def write_split_file(path: str | os.PathLike[str], arrays: dict[str, ArraySource]) -> None:
    """Write ``arrays`` as ``torch.save`` would write the dict of their int64 arrays.

    ``torch.load(path)`` (with numpy's array globals allowed, as ogb's loader
    needs since torch 2.6) returns a dict of int64 numpy arrays equal to the
    sources; the pickle inside is byte-identical to ``torch.save``'s.

    Memory: one chunk of one array at a time (each is converted to int64,
    then to its UTF-8 form), whatever the size of the arrays.

    Args:
        path: File to write (replaced if it exists).
        arrays: Name -> source, in the dict's order.

    Raises:
        DataError: an array whose data would pass the 4 GiB that a
            protocol-2 pickle string can hold (``torch.save`` fails there too).
    """
    path = Path(path)
    for name, src in arrays.items():
        n = 0
        for raw in src.int64_chunks():
            n += len(raw) + int(np.count_nonzero(np.frombuffer(raw, dtype=np.uint8) >= 0x80))
        if n > _MAX_BINUNICODE:
            raise DataError(f"{path}: array {name!r} needs {n:,} bytes in a protocol-2 pickle, "
                            f"more than the {_MAX_BINUNICODE:,} it can hold")
        src.utf8_len = n
    sink = _Sink()
    _SplitPickler(sink).dump(dict(arrays))
    stem = path.stem
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo(f"{stem}/data.pkl", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = sink.size  # zipfile switches to zip64 when this passes 2 GiB
        with zf.open(info, "w") as member:
            _SplitPickler(member).dump(dict(arrays))
        for rel, data in _torch_records():
            rec = zipfile.ZipInfo(f"{stem}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(rec, data, compress_type=zipfile.ZIP_STORED)


# --------------------------------------------------------------------------- reader
class _Global:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_RECONSTRUCT, _NDARRAY, _DTYPE, _ENCODE, _BYTES = (
    _Global("_reconstruct"), _Global("ndarray"), _Global("dtype"), _Global("encode"),
    _Global("bytes"))


#: The only globals a split file may name.
_GLOBALS: dict[tuple[str, str], _Global] = {
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("_codecs", "encode"): _ENCODE,
    ("__builtin__", "bytes"): _BYTES,  # protocol 2 pickles b"" (an empty array's data) as bytes()
    ("builtins", "bytes"): _BYTES,
}


class _PendingDType:
    def __init__(self, code: str) -> None:
        self.code = code


class _PendingArray:
    """Result of ``_reconstruct(ndarray, (0,), b'b')``, waiting for its BUILD."""


class _Payload:
    """An array's data, already decoded into its output array."""

    def __init__(self, array: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.array, self.shape, self.dtype = array, shape, dtype


class _Reader:
    """Exact, CRC-checked sequential reads of the ``data.pkl`` member."""

    def __init__(self, fh: IO[bytes], size: int, path: Path) -> None:
        self.fh, self.size, self.pos, self.path = fh, size, 0, path

    def read(self, n: int) -> bytes:
        if n > self.size - self.pos:
            raise DataError(f"{self.path}: pickle data ends early (truncated or corrupt file)")
        data = self.fh.read(n)
        if len(data) != n:
            raise DataError(f"{self.path}: pickle data ends early (truncated or corrupt file)")
        self.pos += n
        return data

    def line(self) -> str:
        out = bytearray()
        while True:
            b = self.read(1)
            if b == b"\n":
                return out.decode("ascii", errors="replace")
            out += b
            if len(out) > 256:
                raise DataError(f"{self.path}: malformed pickle (overlong GLOBAL name)")


def _decode_payload(rd: _Reader, n: int, utf8: bool, shape: tuple[int, ...], dtype: np.dtype,
                    int32: bool) -> np.ndarray:
    """Stream ``n`` bytes of array data into a new array of ``shape`` (int32 if asked)."""
    path = rd.path
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = count * dtype.itemsize
    if not (nbytes <= n <= (2 * nbytes if utf8 else nbytes)):
        raise DataError(f"{path}: array data of {n:,} bytes cannot fill shape {shape} of "
                        f"{dtype.name}")
    if n > rd.size - rd.pos:
        raise DataError(f"{path}: pickle data ends early (truncated or corrupt file)")
    out_dtype = np.dtype(np.int32) if int32 else np.dtype(np.int64)
    out = np.empty(count, dtype=out_dtype)
    filled = 0
    enc_tail = b""
    raw_tail = b""
    left = n
    while left:
        piece = rd.read(min(CHUNK_BYTES, left))
        left -= len(piece)
        if utf8:
            buf = enc_tail + piece
            cut = len(buf) - 1 if left and buf and buf[-1] >= 0xC0 else len(buf)
            try:  # a lead byte at the end waits for its continuation byte
                raw = buf[:cut].decode("utf-8").encode("latin1")
            except UnicodeError:
                raise DataError(f"{path}: array data is not latin-1 text in UTF-8 (corrupt "
                                "file)") from None
            enc_tail = buf[cut:]
        else:
            raw = piece
        if raw_tail:
            raw = raw_tail + raw
        usable = len(raw) - len(raw) % dtype.itemsize
        vals = np.frombuffer(raw, dtype=dtype, count=usable // dtype.itemsize)
        raw_tail = raw[usable:]
        if filled + len(vals) > count:
            raise DataError(f"{path}: array data longer than its shape {shape}")
        if len(vals) and dtype != out_dtype:
            hi, lo = int(vals.max()), int(vals.min())
            if hi > np.iinfo(out_dtype).max or lo < np.iinfo(out_dtype).min:
                bad = hi if hi > np.iinfo(out_dtype).max else lo
                raise DataError(f"{path}: value {bad} does not fit in {out_dtype.name} "
                                "(ids must be below 2**31)" if int32 else
                                f"{path}: value {bad} does not fit in int64")
        out[filled:filled + len(vals)] = vals
        filled += len(vals)
    if filled != count or raw_tail or enc_tail:
        raise DataError(f"{path}: array data of {n:,} bytes does not match shape {shape}")
    return out.reshape(shape)


def _refuse(path: Path, what: str) -> DataError:
    return DataError(f"{path}: refusing to unpickle {what!r} (only numpy arrays are allowed in "
                     "ogbl-wikikg2 files)")



#: String and bytes opcodes: (struct format of their length, None = one byte; text?).
_STRING_OPS: dict[bytes, tuple[str | None, bool]] = {
    pickle.BINUNICODE: ("<I", True), pickle.SHORT_BINUNICODE: (None, True),
    pickle.BINUNICODE8: ("<Q", True), pickle.BINBYTES: ("<I", False),
    pickle.SHORT_BINBYTES: (None, False), pickle.BINBYTES8: ("<Q", False),
}

def _run(rd: _Reader, int32: bool) -> dict[str, np.ndarray]:
    """Interpret the pickle: a dict of str -> integer numpy array, nothing else."""
    path = rd.path
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def bad(msg: str) -> DataError:
        return DataError(f"{path}: malformed pickle at byte {rd.pos} ({msg})")

    def pop_mark() -> list[Any]:
        if not marks:
            raise bad("no MARK")
        k = marks.pop()
        items = stack[k:]
        del stack[k:]
        return items

    def pop() -> Any:
        if not stack or (marks and len(stack) <= marks[-1]):
            raise bad("stack underflow")
        return stack.pop()

    def text(n: int, utf8: bool) -> Any:
        # An array's data: [MARK] 1, shape, dtype, fortran, (encode,) <here>.
        k = len(stack) - (5 if utf8 else 4)
        if (marks and marks[-1] == k and k >= 0 and type(stack[k]) is int and stack[k] == 1
                and isinstance(stack[k + 1], tuple) and isinstance(stack[k + 2], np.dtype)
                and isinstance(stack[k + 3], bool) and (not utf8 or stack[k + 4] is _ENCODE)):
            shape = stack[k + 1]
            if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 40
                       for s in shape):
                raise bad(f"array shape {shape!r}")
            arr = _decode_payload(rd, n, utf8, shape, stack[k + 2], int32)
            return _Payload(arr, shape, stack[k + 2])
        if n > _SMALL:
            raise bad(f"unexpected {n:,}-byte string outside array data")
        data = rd.read(n)
        if not utf8:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("invalid UTF-8 string") from None

    def length(fmt: str) -> int:
        size = struct.calcsize(fmt)
        return int(struct.unpack(fmt, rd.read(size))[0])

    for _ in range(_MAX_OPS):
        op = rd.read(1)
        if op == pickle.PROTO:
            if rd.read(1)[0] > 4:
                raise bad("pickle protocol above 4")
        elif op == pickle.FRAME:
            rd.read(8)
        elif op == pickle.EMPTY_DICT:
            stack.append({})
        elif op == pickle.EMPTY_TUPLE:
            stack.append(())
        elif op == pickle.MARK:
            marks.append(len(stack))
        elif op == pickle.TUPLE:
            stack.append(tuple(pop_mark()))
        elif op in (pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3):
            n = {pickle.TUPLE1: 1, pickle.TUPLE2: 2, pickle.TUPLE3: 3}[op]
            items = [pop() for _ in range(n)][::-1]
            stack.append(tuple(items))
        elif op == pickle.BININT:
            stack.append(length("<i"))
        elif op == pickle.BININT1:
            stack.append(rd.read(1)[0])
        elif op == pickle.BININT2:
            stack.append(length("<H"))
        elif op == pickle.LONG1:
            n = rd.read(1)[0]
            if n > 8:
                raise bad("integer wider than 8 bytes")
            stack.append(int.from_bytes(rd.read(n), "little", signed=True))
        elif op == pickle.NONE:
            stack.append(None)
        elif op == pickle.NEWTRUE:
            stack.append(True)
        elif op == pickle.NEWFALSE:
            stack.append(False)
        elif op in _STRING_OPS:
            fmt, is_text = _STRING_OPS[op]
            stack.append(text(rd.read(1)[0] if fmt is None else length(fmt), is_text))
        elif op in (pickle.GLOBAL, pickle.STACK_GLOBAL):
            if op == pickle.GLOBAL:
                module, name = rd.line(), rd.line()
            else:
                name, module = pop(), pop()
                if not (isinstance(module, str) and isinstance(name, str)):
                    raise bad("STACK_GLOBAL of non-strings")
            glob = _GLOBALS.get((module, name))
            if glob is None:
                raise _refuse(path, f"{module}.{name}")
            stack.append(glob)
        elif op in (pickle.BINPUT, pickle.LONG_BINPUT, pickle.MEMOIZE):
            if not stack:
                raise bad("memo of an empty stack")
            idx = (rd.read(1)[0] if op == pickle.BINPUT else
                   length("<I") if op == pickle.LONG_BINPUT else len(memo))
            memo[idx] = stack[-1]
        elif op in (pickle.BINGET, pickle.LONG_BINGET):
            idx = rd.read(1)[0] if op == pickle.BINGET else length("<I")
            if idx not in memo:
                raise bad(f"memo {idx} not set")
            stack.append(memo[idx])
        elif op == pickle.REDUCE:
            args, func = pop(), pop()
            stack.append(_reduce(func, args, bad))
        elif op == pickle.BUILD:
            state = pop()
            if not stack:
                raise bad("BUILD without object")
            obj = stack[-1]
            stack[-1] = built = _build(obj, state, bad, int32)
            for idx, value in memo.items():  # BUILD changes the object in place for pickle
                if value is obj:
                    memo[idx] = built
        elif op in (pickle.SETITEM, pickle.SETITEMS):
            items = [pop(), pop()][::-1] if op == pickle.SETITEM else pop_mark()
            if len(items) % 2 or not stack or not isinstance(stack[-1], dict):
                raise bad("SETITEM(S) outside a dict")
            for key, value in zip(items[::2], items[1::2], strict=True):
                if not isinstance(key, str) or not isinstance(value, np.ndarray):
                    raise bad(f"dict item {key!r} is not a named numpy array")
                stack[-1][key] = value
        elif op == pickle.STOP:
            if len(stack) != 1 or marks or not isinstance(stack[0], dict):
                raise bad("the pickle is not a dict of numpy arrays")
            result: dict[str, np.ndarray] = stack[0]
            return result
        else:
            raise bad(f"unsupported opcode {op!r}")
    raise bad(f"more than {_MAX_OPS:,} operations (not a split file)")


def _reduce(func: Any, args: Any, bad: Callable[[str], DataError]) -> Any:
    if not isinstance(args, tuple):
        raise bad("REDUCE arguments are not a tuple")
    if func is _ENCODE:
        if len(args) == 2 and args[1] == "latin1":
            if isinstance(args[0], _Payload):
                return args[0]
            if isinstance(args[0], str):
                try:
                    return args[0].encode("latin1")
                except UnicodeEncodeError:
                    raise bad("bytes outside latin-1") from None
        raise bad(f"_codecs.encode{args!r}")
    if func is _BYTES:
        if args == ():
            return b""
        raise bad("bytes() with arguments")
    if func is _RECONSTRUCT:
        if len(args) == 3 and args[0] is _NDARRAY and args[1] == (0,) and args[2] == b"b":
            return _PendingArray()
        raise bad("unexpected arguments of numpy's _reconstruct")
    if func is _DTYPE:
        if len(args) == 3 and args[0] in _DTYPES and args[1:] == (False, True):
            return _PendingDType(args[0])
        raise bad(f"unsupported array dtype {args[0]!r}" if args else "dtype()")
    raise bad(f"call of {func!r}")


def _build(obj: Any, state: Any, bad: Callable[[str], DataError], int32: bool) -> Any:
    if isinstance(obj, _PendingDType):
        if (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and state[1] in ("<", "=") and state[2:] == (None, None, None, -1, -1, 0)):
            return _DTYPES[obj.code]
        raise bad(f"unsupported dtype state {state!r} (only little-endian integers)")
    if isinstance(obj, _PendingArray):
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise bad("unexpected array state")
        _, shape, dtype, fortran, data = state
        if isinstance(data, _Payload):
            if data.shape != shape or data.dtype != dtype or fortran is not False:
                raise bad("array state differs from its data's header")
            return data.array
        if (data == b"" and fortran is False and isinstance(dtype, np.dtype)
                and isinstance(shape, tuple) and 0 in shape):
            return np.empty(shape, dtype=np.int32 if int32 else np.int64)
        raise bad("array data outside the expected place")
    raise bad(f"BUILD of {type(obj).__name__}")


def read_split_file(path: str | os.PathLike[str], *, int32: bool = True) -> dict[str, np.ndarray]:
    """The dict of integer arrays in a ``torch.save`` split file, without unpickling it.

    See the module docstring for what is accepted. The result equals what
    ``torch.load(path)`` returns (numpy arrays with the same values), except
    for the dtype: int32 when ``int32`` is true (values must then lie in
    int32's range), else int64.

    Memory: the output arrays plus a few buffers of :data:`CHUNK_BYTES`; the
    pickle is never held whole.

    Args:
        path: The ``.pt`` file.
        int32: Decode into int32 arrays instead of int64.

    Raises:
        DataError: not a zip ``torch.save`` file, truncated or corrupt data
            (also a CRC-32 mismatch), a global other than numpy's array
            reconstruction, or anything but a dict of integer arrays.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            pkls = [i for i in zf.infolist() if i.filename.endswith("data.pkl")
                    and i.filename.count("/") <= 1]
            if len(pkls) != 1:
                raise DataError(f"{path}: not a torch.save file (expected one data.pkl record, "
                                f"found {len(pkls)})")
            info = pkls[0]
            if info.compress_type != zipfile.ZIP_STORED:
                raise DataError(f"{path}: compressed data.pkl record (torch stores it plain)")
            with zf.open(info) as member:
                rd = _Reader(member, info.file_size, path)
                result = _run(rd, int32)
                if rd.pos != info.file_size:
                    raise DataError(f"{path}: {info.file_size - rd.pos} bytes after the pickle")
                member.read(1)  # at the end of the member: zipfile checks the CRC-32 here
            return result
    except (zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
        # zipfile's own refusals of a damaged archive: a member name that is not text,
        # an unsupported flag, a bad CRC-32...
        raise DataError(f"{path}: not a readable torch file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
