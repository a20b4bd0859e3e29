"""Checkpoints of a training run with orbax-checkpoint: ensemble, optimizer state, step, keys.

A checkpoint holds everything :class:`~keyfan.ensemble.TrainState` holds -- the stacked
parameters, the member keys (as their raw ``uint32`` key data, since orbax stores plain arrays),
the stacked optimizer state, the step and the bootstrap weights -- under
``directory/<step>/``. :func:`restore` rebuilds the state on the structure of a template run,
so a restored run continues bit for bit as if it had never stopped: the dropout keys of the
next step depend only on the member keys, the step and the example ids, all restored exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import jax

from keyfan._checks import as_int, check_writable_dir, is_typed_key
from keyfan.ensemble._disk_errors import os_error, reported_once
from keyfan.ensemble._train import TrainState

__all__ = ["latest_step", "restore", "save"]

PyTree = Any


def _orbax() -> Any:
    """orbax-checkpoint, imported on first use (it takes a noticeable time to import)."""
    import orbax.checkpoint

    return orbax.checkpoint


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and is_typed_key(leaf)


def _to_data(tree: PyTree) -> PyTree:
    """Typed keys as their uint32 key data (orbax saves plain arrays)."""
    return jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, tree)


def _to_keys(tree: PyTree, like: PyTree) -> PyTree:
    """Key data back into typed keys wherever ``like`` holds typed keys (same implementation)."""
    return jax.tree.map(lambda a, ref: jax.random.wrap_key_data(a, impl=jax.random.key_impl(ref))
                        if _is_key(ref) else a, tree, like)


def _layout(tree: PyTree) -> dict[tuple[str, ...], tuple[tuple[int, ...], str]]:
    """``{leaf path: (shape, dtype)}``, with paths as plain names (orbax stores tuples as lists
    and named tuples as dicts, so only the names are comparable)."""
    def name(entry: Any) -> str:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                return str(getattr(entry, attr))
        return str(entry)

    return {tuple(name(e) for e in path): (tuple(leaf.shape), str(leaf.dtype))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _check_layout(saved: dict[Any, Any], wanted: dict[Any, Any], where: str) -> None:
    """Raises before reading anything unless the checkpoint holds exactly the arrays of ``like``."""
    if saved == wanted:
        return
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    changed = sorted(p for p in set(saved) & set(wanted) if saved[p] != wanted[p])
    detail = []
    if missing:
        detail.append(f"missing {'/'.join(missing[0])}")
    if extra:
        detail.append(f"unexpected {'/'.join(extra[0])}")
    if changed:
        p = changed[0]
        detail.append(f"{'/'.join(p)} is {saved[p][0]} {saved[p][1]} in the checkpoint, {wanted[p][0]} "
                      f"{wanted[p][1]} in like=")
    raise ValueError(f"the checkpoint of {where} does not match the structure of like= ({'; '.join(detail)}); "
                     f"build like= with the same model, members, optimizer and bootstrap as the saved run.")


def _payload(state: TrainState) -> dict[str, Any]:
    payload = {"params": state.ensemble.params, "keys": state.ensemble.keys, "opt_state": state.opt_state,
               "step": state.step, "weights": state.weights}
    data: dict[str, Any] = _to_data({name: value for name, value in payload.items() if value is not None})
    return data


def _directory(directory: Any) -> pathlib.Path:
    path = os.fspath(directory) if isinstance(directory, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise TypeError(f"directory must be a path (a str or an os.PathLike such as pathlib.Path), got "
                        f"{type(directory).__name__} {directory!r:.80}.")
    return pathlib.Path(path).expanduser().resolve()


_COMPLETE = "_CHECKPOINT_METADATA"
"""The file orbax writes into a step's directory when it finalises the save (before the rename
from its temporary name, in every orbax of the supported range): a numeric directory without it
is not a checkpoint."""


def _step_dirs(path: pathlib.Path) -> tuple[list[int], list[int]]:
    """The complete and the incomplete numeric step directories under ``path``, each sorted."""
    complete: list[int] = []
    incomplete: list[int] = []
    for entry in path.iterdir():
        if entry.name.isdigit() and entry.is_dir():
            (complete if (entry / _COMPLETE).is_file() else incomplete).append(int(entry.name))
    return sorted(complete), sorted(incomplete)


def _check_readable(path: pathlib.Path) -> None:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"directory {str(path)!r} is a file, not a checkpoint directory.")


def _check_item_metadata(step_dir: pathlib.Path) -> None:
    """Raises ``ValueError`` naming the file if the step's array metadata is missing or not a
    JSON object (orbax raised a bare ``JSONDecodeError``, or reported a structure mismatch)."""
    meta = step_dir / "default" / "_METADATA"
    if not meta.is_file():
        raise ValueError(f"the checkpoint {str(step_dir)!r} is incomplete or corrupt: {str(meta)!r} is missing; "
                         f"restore another step (step=) or save again.")
    try:
        parsed = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the checkpoint {str(step_dir)!r} is corrupt: {str(meta)!r} is not valid JSON ({err}); "
                         f"restore another step (step=) or save again.") from err
    if not isinstance(parsed, dict):
        raise ValueError(f"the checkpoint {str(step_dir)!r} is corrupt: {str(meta)!r} holds a JSON "
                         f"{type(parsed).__name__}, not orbax's metadata object.")


def _corrupt(step_dir: pathlib.Path, err: Exception) -> ValueError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"the checkpoint {str(step_dir)!r} cannot be read, it is incomplete or corrupt "
                      f"({type(err).__name__}: {first[:300]}); restore another step (step=) or save again.")


def _check_state(name: str, state: Any) -> TrainState:
    if not isinstance(state, TrainState):
        raise TypeError(f"{name} must be a kf.ensemble.TrainState (from Trainer.init), got {type(state).__name__}.")
    return state


def save(directory: str | os.PathLike[str], state: TrainState, *, max_to_keep: int | None = None) -> pathlib.Path:
    """Saves ``state`` under ``directory/<step>`` and waits until it is on disk.

    Guarantee: :func:`restore` of this checkpoint returns ``state`` bitwise (parameters, member
    keys, optimizer state, step and bootstrap weights), so a run resumed from it continues with
    the same bits as the run that never stopped; a checkpoint is written whole or not at all.

    Args:
      directory: the run's checkpoint directory (created if needed).
      state: the :class:`TrainState` to save; its step names the checkpoint.
      max_to_keep: keep only the newest this many checkpoints (default: all).

    Returns:
      The checkpoint's directory, ``directory/<step>`` as an absolute ``pathlib.Path``.

    Raises:
      NotADirectoryError: ``directory`` (or a parent, or ``directory/<step>``) is a file.
      PermissionError: ``directory`` cannot be written. Both are raised before orbax starts.
      OSError: writing failed part way (a full disk, a directory made read-only): the message
        names the step and the directory; the checkpoints saved before are intact (orbax writes
        into a temporary directory and renames it only when complete, so a partial checkpoint
        is never read as one). It is the error's only report: the copies that orbax's writer
        threads, tasks and callbacks would print are silenced (``keyfan.ensemble._disk_errors``).
      TypeError: ``state`` is not a :class:`TrainState`, or ``directory`` is not a ``str`` or
        ``os.PathLike``, or ``max_to_keep`` is not an integer.
      ValueError: ``max_to_keep`` is below 1.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, optax, tempfile, keyfan as kf
      >>> x, y = jnp.ones((4, 2)), jnp.zeros((4,), jnp.int32)
      >>> trainer = kf.ensemble.Trainer(optax.sgd(0.1))
      >>> def fresh():
      ...     return trainer.init(kf.Ensemble.init(nn.Dense(2), kf.key(0), members=2, sample_input=x))
      >>> state, _ = trainer.step(fresh(), x, y, jnp.arange(4))
      >>> run_dir = tempfile.mkdtemp()
      >>> kf.ensemble.save(run_dir, state).name
      '1'
      >>> int(kf.ensemble.restore(run_dir, like=fresh()).step)
      1
    """
    state = _check_state("state", state)
    path = _directory(directory)
    keep = None if max_to_keep is None else as_int("max_to_keep", max_to_keep, lo=1)
    try:
        check_writable_dir("directory", path)
    except PermissionError as err:
        before = latest_step(path) if path.is_dir() else None
        if before is None:
            raise
        raise PermissionError(f"could not write the checkpoint of step {int(state.step)}: {err} The checkpoint of "
                              f"step {before} is intact.") from err
    if (path / str(int(state.step))).exists() and not (path / str(int(state.step))).is_dir():
        raise NotADirectoryError(f"{str(path / str(int(state.step)))!r} is a file; the checkpoint of step "
                                 f"{int(state.step)} needs that name for its directory.")
    step = int(state.step)
    ocp = _orbax()
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    before = latest_step(path)  # complete checkpoints only, as resuming counts them
    try:
        with reported_once(), ocp.CheckpointManager(path, options=options) as manager:
            manager.save(step, args=ocp.args.StandardSave(_payload(state)), force=True)
            manager.wait_until_finished()
    except Exception as err:  # orbax and tensorstore wrap a full disk or a read-only directory variously
        cause = os_error(err)
        if cause is None:
            raise
        kept = "no earlier checkpoint" if before is None else f"the checkpoint of step {before} is intact"
        raise OSError(cause.errno, f"could not write the checkpoint of step {step} under {str(path)!r} "
                                   f"({cause.strerror or cause}); {kept}. Free space or make the directory "
                                   f"writable, then resume.") from err
    return path / str(step)


def latest_step(directory: str | os.PathLike[str]) -> int | None:
    """The newest step saved under ``directory`` by :func:`save`: the step a resumed run restores.

    Guarantee: read-only, it never creates or changes anything under ``directory``; only
    complete checkpoints count: a save interrupted part way (still in orbax's temporary
    directory) and a numeric directory without orbax's completion record
    (``<step>/_CHECKPOINT_METADATA``, e.g. an empty ``5/``) are not steps.

    Args:
      directory: the run's checkpoint directory (it need not exist).

    Returns:
      The newest saved step as an ``int``, or None when ``directory`` does not exist or holds no
        checkpoint.

    Raises:
      TypeError: ``directory`` is not a ``str`` or ``os.PathLike`` (bytes paths included).
      NotADirectoryError: ``directory`` is a file.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, optax, tempfile, keyfan as kf
      >>> x, y = jnp.ones((4, 2)), jnp.zeros((4,), jnp.int32)
      >>> trainer = kf.ensemble.Trainer(optax.sgd(0.1))
      >>> state = trainer.init(kf.Ensemble.init(nn.Dense(2), kf.key(0), members=2, sample_input=x))
      >>> run_dir = tempfile.mkdtemp()
      >>> print(kf.ensemble.latest_step(run_dir))
      None
      >>> for _ in range(3):
      ...     state, _ = trainer.step(state, x, y, jnp.arange(4))
      ...     _ = kf.ensemble.save(run_dir, state)
      >>> kf.ensemble.latest_step(run_dir)
      3
    """
    path = _directory(directory)
    if not path.exists():
        return None
    _check_readable(path)
    complete, _ = _step_dirs(path)
    return complete[-1] if complete else None


def restore(directory: str | os.PathLike[str], *, like: TrainState, step: int | None = None) -> TrainState:
    """Restores a :class:`TrainState` saved by :func:`save`.

    Guarantee: the restored state equals the saved one bitwise (typed member keys come back with
    ``like``'s key implementation), laid out as ``like`` is (its shardings), so training on from
    it gives the bits of the run that never stopped. A checkpoint that does not match ``like``'s
    structure is refused before anything is read into it.

    Args:
      directory: the run's checkpoint directory.
      like: a state of the same run's structure (e.g. ``trainer.init(Ensemble.init(...))``); its
        values are not used, its shapes, dtypes, shardings, key implementations, model and input
        spec are.
      step: the step to restore (default: the newest).

    Returns:
      The saved :class:`TrainState` of ``step``, bitwise, with ``like``'s model, input spec and
        shardings.

    Raises:
      FileNotFoundError: there is no complete checkpoint (at ``step``) under ``directory`` (the
        message names numeric step directories that are incomplete or corrupt).
      NotADirectoryError: ``directory`` is a file.
      TypeError: ``like`` is not a :class:`TrainState`, ``directory`` is not a ``str`` or
        ``os.PathLike``, or ``step`` is not an integer.
      ValueError: the checkpoint does not match the structure of ``like``, or its files are
        missing, truncated or corrupt (the message names the checkpoint's directory), or
        ``step`` is negative.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, optax, tempfile, keyfan as kf
      >>> x, y = jnp.ones((4, 2)), jnp.zeros((4,), jnp.int32)
      >>> trainer = kf.ensemble.Trainer(optax.sgd(0.1))
      >>> def fresh():
      ...     return trainer.init(kf.Ensemble.init(nn.Dense(2), kf.key(0), members=2, sample_input=x))
      >>> state, _ = trainer.step(fresh(), x, y, jnp.arange(4))
      >>> run_dir = tempfile.mkdtemp()
      >>> _ = kf.ensemble.save(run_dir, state)
      >>> back = kf.ensemble.restore(run_dir, like=fresh())
      >>> jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), back, state))
      True
    """
    like = _check_state("like", like)
    path = _directory(directory)
    found = latest_step(path)
    if found is None:
        incomplete = _step_dirs(path)[1] if path.is_dir() else []
        damaged = (f" ({', '.join(str(path / str(i)) for i in incomplete)} "
                   f"{'is' if len(incomplete) == 1 else 'are'} incomplete or corrupt: no {_COMPLETE})"
                   if incomplete else "")
        raise FileNotFoundError(f"no checkpoint under {path}{damaged}; save one with "
                                f"kf.ensemble.save({str(path)!r}, state).")
    step = found if step is None else as_int("step", step, lo=0)
    template = _payload(like)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),  # type: ignore[no-untyped-call]
                            template)
    ocp = _orbax()
    with ocp.CheckpointManager(path, item_handlers=ocp.StandardCheckpointHandler()) as manager:
        if step not in manager.all_steps():
            raise FileNotFoundError(f"no checkpoint of step {step} under {path}; saved steps: {manager.all_steps()}.")
        step_dir = path / str(step)
        _check_item_metadata(step_dir)
        try:
            saved = _layout(manager.item_metadata(step))
        except Exception as err:  # orbax's and tensorstore's errors on damaged files vary by kind
            raise _corrupt(step_dir, err) from err
        _check_layout(saved, _layout(abstract), f"step {step} under {path}")
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:
            raise _corrupt(step_dir, err) from err
    restored = _to_keys(dict(restored), {name: getattr(like.ensemble, name, None) if name in ("params", "keys")
                                         else getattr(like, name) for name in restored})
    ens = dataclasses.replace(like.ensemble, params=restored["params"], keys=restored.get("keys"))
    return TrainState(ens, restored["opt_state"], restored["step"], restored.get("weights"))
