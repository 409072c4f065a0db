"""A restricted pickle interpreter: the opcodes and the globals PyTorch's ``weights_only=True`` admits, nothing else.

Python's own ``pickle`` executes whatever a file names (``os.system``...). This
interpreter reads the same byte stream but

* accepts only the instructions PyTorch's weights-only unpickler accepts
  (protocol-2 binary opcodes: containers, numbers, strings, memo, MARK/TUPLE,
  GLOBAL, REDUCE, NEWOBJ, BUILD, BINPERSID);
* resolves ``GLOBAL module name`` through an explicit table given by the
  caller; any other name raises :class:`UnsafePickleError` naming it, before
  anything is called;
* calls (REDUCE/NEWOBJ) only the table's own factories, which are trainkit
  functions that check their arguments, never the named PyTorch objects;
* appends/sets items only on plain lists/dicts, and BUILDs only OrderedDicts
  (their ``_metadata`` attribute, as ``state_dict()`` writes).

Every length read from the stream is checked against the bytes actually
present, so a claimed size never allocates more than the pickle holds.
"""
from __future__ import annotations

import io
import struct
from collections import Counter, OrderedDict
from pickle import decode_long
from typing import Any, Callable

from .errors import UnsafePickleError

# Python 2 module names that protocol-2 pickles written by PyTorch may use (pickle's own mapping).
_OLD_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_OLD_NAMES = {("__builtin__", "unicode"): ("builtins", "str"), ("__builtin__", "long"): ("builtins", "int")}
#: Modules never admitted, whatever a table says (as in PyTorch).
_BLOCKED_MODULES = ("sys", "os", "posix", "nt")


class Factory:
    """A callable a pickle may invoke through REDUCE (and NEWOBJ when ``newobj``), with the name it was found under."""

    __slots__ = ("name", "fn", "newobj")

    def __init__(self, name: str, fn: Callable, newobj: bool = False):
        self.name, self.fn, self.newobj = name, fn, newobj

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Budget:
    """Caps what factories may allocate in total, in elements, for one file.

    Opcodes only push references, so a short pickle can name one big list many
    times; a factory that copies its argument (``set(big_list)``) charges the
    copy here, which keeps the total proportional to the file's size.
    """

    def __init__(self, limit: int, source: str):
        self.limit, self.used, self.source = int(limit), 0, source

    def charge(self, n: int, what: str) -> None:
        """Account for ``n`` more elements; raise once the total passes the limit."""
        self.used += int(n)
        if self.used > self.limit:
            raise UnsafePickleError(f"{self.source}: the pickle asks for more than {self.limit} elements in "
                                    f"total (at {what}); far more than a file of this size can hold")


class Unpickler:
    """Interpret one pickle with a fixed table of globals.

    Args:
        data: the pickle bytes.
        globals_table: ``"module.name" -> object``; a :class:`Factory` can be
            called by the pickle, any other object is only pushed as a value.
        persistent_load: called with the persistent id (a tuple) of BINPERSID.
        source: the name used in error messages.
        max_depth: nesting limit of MARKs (a guard against pathological streams).
    """

    def __init__(self, data: bytes, globals_table: dict[str, Any], persistent_load: Callable[[tuple], Any],
                 source: str, max_depth: int = 10_000):
        self._buf = io.BytesIO(data)
        self._table = globals_table
        self._persistent_load = persistent_load
        self._source = source
        self._max_depth = max_depth

    # ------------------------------------------------------------------ reading
    def _error(self, message: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self._source}: {message}")

    def _read(self, n: int) -> bytes:
        data = self._buf.read(n)
        if len(data) != n:
            raise self._error(f"pickle data was truncated (wanted {n} bytes, {len(data)} left)")
        return data

    def _readline(self) -> bytes:
        line = self._buf.readline(1024)
        if not line.endswith(b"\n"):
            raise self._error("pickle data was truncated or has an over-long GLOBAL name")
        return line[:-1]

    # ----------------------------------------------------------------- dispatch
    def load(self) -> Any:
        """Run the stream to its STOP and return the object it built."""
        try:
            return self._run()
        except UnsafePickleError:
            raise
        except (IndexError, KeyError, TypeError, ValueError, struct.error, RecursionError) as exc:
            # Stack underflow, a missing memo entry, a wrong argument type...: a malformed stream.
            raise self._error(f"malformed pickle ({type(exc).__name__}: {exc})") from None

    def _run(self) -> Any:
        stack: list = []
        metastack: list[list] = []
        memo: dict[int, Any] = {}
        read, unpack = self._read, struct.unpack
        while True:
            key = self._buf.read(1)
            if not key:
                raise self._error("pickle data ended without a STOP instruction")
            op = key[0]
            if op == 0x80:  # PROTO
                self._read(1)
            elif op == 0x2E:  # STOP
                return stack.pop()
            elif op == 0x28:  # MARK
                if len(metastack) >= self._max_depth:
                    raise self._error(f"pickle nests deeper than {self._max_depth} levels")
                metastack.append(stack)
                stack = []
            elif op == 0x4E:  # NONE
                stack.append(None)
            elif op == 0x88:  # NEWTRUE
                stack.append(True)
            elif op == 0x89:  # NEWFALSE
                stack.append(False)
            elif op == 0x29:  # EMPTY_TUPLE
                stack.append(())
            elif op == 0x5D:  # EMPTY_LIST
                stack.append([])
            elif op == 0x7D:  # EMPTY_DICT
                stack.append({})
            elif op == 0x8F:  # EMPTY_SET
                stack.append(set())
            elif op == 0x74:  # TUPLE
                items, stack = stack, metastack.pop()
                stack.append(tuple(items))
            elif op == 0x85:  # TUPLE1
                stack[-1] = (stack[-1],)
            elif op == 0x86:  # TUPLE2
                stack[-2:] = [(stack[-2], stack[-1])]
            elif op == 0x87:  # TUPLE3
                stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
            elif op == 0x4A:  # BININT
                stack.append(unpack("<i", read(4))[0])
            elif op == 0x4B:  # BININT1
                stack.append(read(1)[0])
            elif op == 0x4D:  # BININT2
                stack.append(unpack("<H", read(2))[0])
            elif op == 0x8A:  # LONG1
                stack.append(decode_long(read(read(1)[0])))
            elif op == 0x47:  # BINFLOAT
                stack.append(unpack(">d", read(8))[0])
            elif op == 0x58:  # BINUNICODE
                n = unpack("<I", read(4))[0]
                stack.append(str(read(n), "utf-8", "surrogatepass"))
            elif op == 0x55:  # SHORT_BINSTRING (Python 2 str, read as ASCII as PyTorch does)
                raw = read(read(1)[0])
                try:
                    stack.append(raw.decode("ascii"))
                except UnicodeDecodeError:
                    raise self._error("a SHORT_BINSTRING is not ASCII") from None
            elif op in (0x71, 0x72):  # BINPUT, LONG_BINPUT
                idx = read(1)[0] if op == 0x71 else unpack("<I", read(4))[0]
                memo[idx] = stack[-1]
            elif op in (0x68, 0x6A):  # BINGET, LONG_BINGET
                idx = read(1)[0] if op == 0x68 else unpack("<I", read(4))[0]
                if idx not in memo:
                    raise self._error(f"memo entry {idx} is read before it is written")
                stack.append(memo[idx])
            elif op == 0x61:  # APPEND
                item = stack.pop()
                self._list(stack[-1], "APPEND").append(item)
            elif op == 0x65:  # APPENDS
                items, stack = stack, metastack.pop()
                self._list(stack[-1], "APPENDS").extend(items)
            elif op == 0x73:  # SETITEM
                value, k = stack.pop(), stack.pop()
                self._mapping(stack[-1], "SETITEM")[k] = value
            elif op == 0x75:  # SETITEMS
                items, stack = stack, metastack.pop()
                target = self._mapping(stack[-1], "SETITEMS")
                if len(items) % 2:
                    raise self._error("SETITEMS with an odd number of items")
                for i in range(0, len(items), 2):
                    target[items[i]] = items[i + 1]
            elif op == 0x63:  # GLOBAL
                stack.append(self._global(self._readline(), self._readline()))
            elif op == 0x52:  # REDUCE
                args = stack.pop()
                stack[-1] = self._call(stack[-1], args, "REDUCE")
            elif op == 0x81:  # NEWOBJ
                args = stack.pop()
                cls = stack.pop()
                if not (isinstance(cls, Factory) and cls.newobj):
                    raise self._error(f"NEWOBJ can only create the objects PyTorch allows (Parameter, "
                                      f"OrderedDict, ...), not {self._describe(cls)}")
                stack.append(self._call(cls, args, "NEWOBJ"))
            elif op == 0x62:  # BUILD
                state = stack.pop()
                self._build(stack[-1], state)
            elif op == 0x51:  # BINPERSID
                pid = stack.pop()
                if type(pid) is not tuple or not pid or pid[0] != "storage":
                    raise self._error("only persistent ids of storages are allowed, got "
                                      f"{self._describe(pid)}")
                stack.append(self._persistent_load(pid))
            else:
                raise self._error(f"unsupported pickle instruction {key!r} (opcode {op}); PyTorch's "
                                  "weights_only loader does not admit it either")

    # ------------------------------------------------------------------- checks
    def _global(self, module_raw: bytes, name_raw: bytes) -> Any:
        try:
            module, name = module_raw.decode("utf-8"), name_raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error("a GLOBAL name is not UTF-8") from None
        module, name = _OLD_NAMES.get((module, name), (_OLD_MODULES.get(module, module), name))
        full = f"{module}.{name}"
        if module.split(".")[0] in _BLOCKED_MODULES or full not in self._table:
            raise self._error(f"forbidden global {full!r}: not one of the globals PyTorch's weights_only=True "
                              "loader admits (tensors, storages, dtypes, OrderedDict, plain containers). "
                              "Nothing from this file was run")
        return self._table[full]

    def _call(self, fn: Any, args: Any, opcode: str) -> Any:
        if not isinstance(fn, Factory):
            raise self._error(f"{opcode} on {self._describe(fn)}, which is not a callable PyTorch's weights_only "
                              "loader admits")
        if type(args) is not tuple:
            raise self._error(f"{opcode} arguments must be a tuple, got {self._describe(args)}")
        return fn.fn(*args)

    def _build(self, inst: Any, state: Any) -> None:
        if type(inst) is not OrderedDict:
            # PyTorch also BUILDs Tensor/Parameter, but only in legacy (pre-1.6 layout) pickles.
            raise self._error(f"BUILD is only allowed on OrderedDict, not {self._describe(inst)}")
        # state_dict() pickles its per-module version table as the OrderedDict's ``_metadata``.
        if not isinstance(state, dict) or not all(isinstance(k, str) and k.isidentifier() and not k.startswith("__")
                                                  for k in state):
            raise self._error("BUILD state of an OrderedDict must map attribute names to values")
        for k, v in state.items():
            setattr(inst, k, v)

    def _list(self, obj: Any, opcode: str) -> list:
        if type(obj) is not list:
            raise self._error(f"{opcode} on {self._describe(obj)}; only lists can be appended to")
        return obj

    def _mapping(self, obj: Any, opcode: str) -> dict:
        if type(obj) not in (dict, OrderedDict, Counter):
            raise self._error(f"{opcode} on {self._describe(obj)}; only dict, OrderedDict and Counter take items")
        return obj

    @staticmethod
    def _describe(obj: Any) -> str:
        if isinstance(obj, Factory):
            return obj.name
        return f"a {type(obj).__name__}"
