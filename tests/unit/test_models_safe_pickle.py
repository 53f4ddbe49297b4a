"""The canonical pickler and the restricted unpickler: what loads, what never runs."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamlearn.models import SPECS
from streamlearn.models.checks import training_stream
from streamlearn.models.exceptions import ForbiddenClass, SnapshotRejected, UndecodableSnapshot
from streamlearn.models.safe_pickle import (
    ALLOWED_GLOBALS,
    ALLOWED_RIVER_PACKAGES,
    RestrictedUnpickler,
    dumps,
    loads,
)


def _trained(name: str, n: int) -> Any:
    spec = SPECS[name]
    model = spec.new_model()
    for x, label in training_stream(spec, n):
        spec.learn(model, x, label)
    return model


class _Tracer(RestrictedUnpickler):
    def __init__(self, file: io.BytesIO, seen: set[tuple[str, str]]) -> None:
        super().__init__(file)
        self.seen = seen

    def find_class(self, module: str, name: str) -> Any:
        self.seen.add((module, name))
        return super().find_class(module, name)


@pytest.mark.slow
def test_allowlist_covers_exactly_what_trained_specs_need(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Re-derive the globals every shipped spec's payload uses after real training (enough
    for the tree to split on numbers and categories) and check each is allowed."""
    seen: set[tuple[str, str]] = set()
    for name in SPECS:
        _Tracer(io.BytesIO(dumps(_trained(name, 12_000))), seen).load()
    non_river = {(m, n) for m, n in seen if not m.startswith("river.")}
    river = {(m, n) for m, n in seen if m.startswith("river.")}
    assert non_river <= ALLOWED_GLOBALS
    assert all(any(m.startswith(p) for p in ALLOWED_RIVER_PACKAGES) for m, _ in river)
    # The tree did grow: numeric and nominal branches are among the classes used.
    assert ("river.tree.nodes.branch", "NominalMultiwayBranch") in river
    assert ("river.tree.nodes.branch", "NumericBinaryBranch") in river
    with capsys.disabled():
        print("\nglobals used by the shipped specs' payloads:")
        for module, name in sorted(seen):
            print(f"  {module}.{name}")


def _touch_payload(reducer: Any, args: tuple[Any, ...]) -> bytes:
    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return (reducer, args)

    return pickle.dumps(Evil(), protocol=5)


def _global_call(module: str, name: str, argument: str) -> bytes:
    """A protocol-0 pickle calling ``module.name(argument)``, whatever the local module
    layout (``pickle.dumps(os.system)`` would name ``posix``, not ``os``)."""
    return f"c{module}\n{name}\n(V{argument}\ntR.".encode()


_ATTACKS = {
    "os.system": (lambda target: _global_call("os", "system", f"touch {target}"), "os", "system"),
    "posix.system": (
        lambda target: _touch_payload(os.system, (f"touch {target}",)),
        os.system.__module__,
        "system",
    ),
    "builtins.eval": (
        lambda target: _touch_payload(eval, (f"__import__('os').system('touch {target}')",)),
        "builtins",
        "eval",
    ),
    "subprocess.Popen": (
        lambda target: _touch_payload(subprocess.Popen, (["touch", str(target)],)),
        "subprocess",
        "Popen",
    ),
    "builtins.exec": (
        lambda target: _global_call("builtins", "exec", f"open('{target}', 'w').close()"),
        "builtins",
        "exec",
    ),
}


@pytest.mark.parametrize("attack", ["os.system", "posix.system", "builtins.eval"])
def test_the_attack_payloads_are_live(tmp_path: Path, attack: str) -> None:
    """Without the restrictions these payloads do run: the rejections below are real."""
    make, _, _ = _ATTACKS[attack]
    target = tmp_path / "ran"
    pickle.loads(make(target))
    assert target.exists()


@pytest.mark.parametrize("attack", sorted(_ATTACKS))
def test_forbidden_calls_are_rejected_and_never_run(tmp_path: Path, attack: str) -> None:
    make, module, name = _ATTACKS[attack]
    target = tmp_path / "pwned"
    with pytest.raises(ForbiddenClass) as caught:
        loads(make(target))
    assert caught.value.reason == "forbidden_class"
    assert (caught.value.module, caught.value.name) == (module, name)
    assert f"{module}.{name}" in str(caught.value)
    assert not target.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "getattr"),  # would reach any function's __globals__
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("river.tree.hoeffding_tree", "sys"),  # a module imported by an allowed module
        ("river.tree.hoeffding_tree", "ABC"),  # a class imported there, defined elsewhere
        ("river.tree.hoeffding_tree", "calculate_object_size"),  # a function
        ("river.tree.hoeffding_tree", "io.open"),  # a dotted path out of the module
        ("river.compose.pipeline", "Pipeline.__init__"),
        ("river.datasets", "Bananas"),  # River, but not a model package
        ("river.stream", "iter_csv"),
        ("riverx.tree", "Thing"),  # a prefix lookalike
        ("streamlearn.models.safe_pickle", "loads"),
        ("collections", "namedtuple"),
    ],
)
def test_non_model_globals_are_forbidden(module: str, name: str) -> None:
    payload = f"c{module}\n{name}\n.".encode()
    with pytest.raises(ForbiddenClass) as caught:
        loads(payload)
    assert (caught.value.module, caught.value.name) == (module, name)


def test_stack_global_with_a_dotted_name_is_forbidden() -> None:
    # Protocol 4 STACK_GLOBAL resolves dotted names; the allowlist must not let it.
    module, name = "river.tree.hoeffding_tree", "math.floor"
    body = (
        b"\x80\x05"
        + b"\x8c" + bytes([len(module)]) + module.encode()
        + b"\x8c" + bytes([len(name)]) + name.encode()
        + b"\x93."
    )  # fmt: skip
    with pytest.raises(ForbiddenClass):
        loads(body)


def test_broken_payloads_are_undecodable() -> None:
    good = dumps({"a": [1, 2.5, "x"]})
    for bad in (b"", good[:-3], good + b"\x00", b"not a pickle at all", b"\x80\x05K\x01Q."):
        with pytest.raises(UndecodableSnapshot) as caught:
            loads(bad)
        assert isinstance(caught.value, SnapshotRejected)
        assert caught.value.reason == "undecodable"


def test_sets_pickle_sorted_and_stay_shared() -> None:
    shared = {"b", "a", "c"}
    value = {"x": shared, "y": shared, "z": frozenset({3, 1, 2}), "mixed": {1, "one"}}
    loaded = loads(dumps(value))
    assert loaded == value
    assert loaded["x"] is loaded["y"]
    assert dumps({"s": {"a", "b", "c"}}) == dumps({"s": {"c", "b", "a"}})


def test_bytes_do_not_depend_on_string_identity() -> None:
    one = "".join(["fea", "ture"])
    other = "".join(["feat", "ure"])
    assert one == other
    assert one is not other
    assert dumps([one, other]) == dumps([one, one])
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(dumps([one]))


_HASH_SEED_SCRIPT = """
import hashlib
from streamlearn.models import SPECS, safe_pickle
from streamlearn.models.checks import training_stream
for name, spec in sorted(SPECS.items()):
    model = spec.new_model(3)
    for x, label in training_stream(spec, 6000):
        spec.learn(model, x, label)
    print(name, hashlib.sha256(safe_pickle.dumps(model)).hexdigest())
"""


@pytest.mark.slow
def test_payloads_are_identical_across_processes_and_hash_seeds() -> None:
    """Sets of category strings iterate in hash-seed order; payloads must not."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _HASH_SEED_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert sorted(line.split()[0] for line in outputs[0].splitlines()) == sorted(SPECS)
