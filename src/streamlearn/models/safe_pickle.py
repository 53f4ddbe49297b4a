"""Canonical pickling of models, and an unpickler that can only build model classes.

Writing (:func:`dumps`): pickle protocol 5, made canonical so that equal models give equal
bytes in any process (replay ``--verify`` and resume-after-crash compare payloads):

- a ``set``'s iteration order depends on the process's string hash seed
  (``PYTHONHASHSEED``), and River's Hoeffding trees keep each categorical feature's values
  in sets. The C pickler has no hook for exact ``set`` instances except ``persistent_id``,
  so sets and frozensets are written as persistent ids carrying their elements sorted (one
  id per set object, so a set shared by two owners stays shared);
- the pickle memo works by object identity, so the bytes would depend on which equal
  strings happen to be one object: a fresh River pipeline's step names *are* its classes'
  interned ``__name__`` strings, a loaded one's are not, and the same model pickled
  differently after a restart. Strings are therefore also written through
  ``persistent_id``, deduplicated by value.

The price: a payload is not readable by a bare ``pickle.loads``, which is intended (nothing
should load one without the checks below); pickling a grown tree takes ~2x the plain C
pickler (~10 ms instead of ~5 ms for 0.5 MB), a pure-Python pickler with a sorted
``save_set`` would be ~5x slower still and not fix the string identity.

Reading (:func:`loads`): ``find_class`` is the only way a pickle reaches code, so it allows
exactly:

- the non-River globals in :data:`ALLOWED_GLOBALS` (containers, ``random.Random``, and
  streamlearn's own model components), found by pickling every shipped spec after
  training (``tests/unit/test_models_safe_pickle.py`` re-derives the set and fails if a
  spec needs something new);
- classes (never functions, modules or dotted attribute paths) *defined* in the River
  subpackages of :data:`ALLOWED_RIVER_PACKAGES`. Those are pure in-memory estimators,
  statistics and tree nodes; a whole subpackage rather than the classes one training run
  happened to use, because a tree grows new node and leaf types as it learns, and a
  snapshot must not become unloadable the day its tree first splits on a category.

Anything else — ``os.system``, ``posix.system``, ``builtins.eval``/``getattr``,
``subprocess.Popen``, a module object, ``river.x.os.system`` — raises
:class:`~streamlearn.models.exceptions.ForbiddenClass` before it is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from streamlearn.models.exceptions import ForbiddenClass, UndecodableSnapshot

PROTOCOL = 5

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # Used by the shipped specs' payloads today: builtins.dict, collections.OrderedDict,
        # collections.defaultdict and streamlearn's own classes (random.Random by ctr_tree
        # snapshots written before SeededGaussian left its generator out). The other
        # entries are side-effect-free constructors River uses as defaultdict factories or
        # in reductions (Counter, deque, set...), allowed so a new spec or River release
        # using them does not make its snapshots unloadable.
        ("builtins", "complex"),
        ("builtins", "dict"),
        ("builtins", "float"),
        ("builtins", "frozenset"),
        ("builtins", "int"),
        ("builtins", "list"),
        ("builtins", "range"),
        ("builtins", "set"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "Counter"),
        ("collections", "deque"),
        ("random", "Random"),
        ("streamlearn.models.calibration", "HistogramCalibrated"),
        ("streamlearn.models.features", "DerivedFeatures"),
        ("streamlearn.models.features", "FeatureEncoder"),
        ("streamlearn.models.features", "SeededGaussian"),
        ("streamlearn.models.features", "SeededGaussianSplitter"),
        ("streamlearn.models.inheriting_tree", "InheritingHoeffdingTreeClassifier"),
        ("streamlearn.models.inheriting_tree", "InheritingNaiveBayesLeaf"),
        ("streamlearn.models.trailing_average", "TrailingAverage"),
    }
)
"""Exact (module, name) pairs allowed besides River classes."""

ALLOWED_RIVER_PACKAGES: tuple[str, ...] = (
    "river._river_rust",
    "river.compose",
    "river.linear_model",
    "river.optim",
    "river.preprocessing",
    "river.proba",
    "river.stats",
    "river.tree",
)
"""River subpackages whose classes a payload may build."""

_SET_KINDS = {"set": set, "frozenset": frozenset}


def _in_allowed_river_package(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_RIVER_PACKAGES)


def _sort_key(value: object) -> tuple[str, str]:
    return (type(value).__qualname__, repr(value))


class _CanonicalPickler(pickle.Pickler):
    """Pickles strings by value and sets sorted (see the module documentation)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._strings: dict[str, str] = {}
        # id(set) -> its persistent id, reused so a set shared by two owners stays shared.
        self._sets: dict[int, tuple[str, tuple[Any, ...]]] = {}

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str:
            return self._strings.setdefault(obj, obj)
        if kind is set or kind is frozenset:
            pid = self._sets.get(id(obj))
            if pid is None:
                try:
                    items = sorted(obj)
                except TypeError:
                    items = sorted(obj, key=_sort_key)
                pid = ("set" if kind is set else "frozenset", tuple(items))
                self._sets[id(obj)] = pid
            return pid
        return None


def dumps(model: Any) -> bytes:
    """The canonical payload of ``model``: equal models pickle to equal bytes in any process.

    A plain function so callers can run it off the event loop (``asyncio.to_thread``) for
    large models, as long as nothing learns while it runs.
    """
    buffer = io.BytesIO()
    _CanonicalPickler(buffer).dump(model)
    return buffer.getvalue()


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only allowlisted globals; see the module documentation."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if "." in name or not _in_allowed_river_package(module):
            raise ForbiddenClass(module, name)
        # Import through the normal machinery (River is imported by then anyway), then
        # insist on a class defined in that very module: not a function, a module or a
        # class merely imported there.
        found = super().find_class(module, name)
        if not isinstance(found, type) or found.__module__ != module:
            raise ForbiddenClass(module, name)
        return found

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        # id(pid) -> (pid, set): a pid read twice (memoized) is one shared set.
        self._sets: dict[int, tuple[Any, Any]] = {}

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is str:
            return pid
        known = self._sets.get(id(pid))
        if known is not None:
            return known[1]
        if type(pid) is tuple and len(pid) == 2 and pid[0] in _SET_KINDS and type(pid[1]) is tuple:
            built = _SET_KINDS[pid[0]](pid[1])
            self._sets[id(pid)] = (pid, built)
            return built
        raise UndecodableSnapshot(f"unexpected persistent id of type {type(pid).__name__}")


def loads(payload: bytes) -> Any:
    """The model in ``payload``, built only from allowed classes.

    Raises :class:`ForbiddenClass` for a disallowed global and
    :class:`UndecodableSnapshot` for bytes that are not a complete pickle.
    """
    stream = io.BytesIO(payload)
    try:
        model = RestrictedUnpickler(stream).load()
    except (ForbiddenClass, UndecodableSnapshot):
        raise
    except Exception as exc:  # a broken pickle can fail in any of a dozen ways
        raise UndecodableSnapshot(f"payload is not a valid model pickle: {exc!r}") from exc
    if stream.tell() != len(payload):
        raise UndecodableSnapshot(f"{len(payload) - stream.tell()} bytes after the pickle's end")
    return model
