"""keyfan._bench.trainer: the ensemble-trainer group's bookkeeping at a tiny size (timing itself is
not tested), and that its contenders compute the same kind of step."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from keyfan._bench import trainer

TINY = trainer.Size("tiny", 2, 4, 3, 8, 2, runs=3)


@pytest.mark.slow  # 28 CPU-s: the bench machinery's JSON is guarded in the default tier by test_bench.py
def test_group_runs_every_contender_and_writes_json(tmp_path):
    pytest.importorskip("equinox")
    doc = trainer.run([TINY], out=tmp_path, min_sample_ms=0)
    assert json.loads((tmp_path / "ensemble-trainer.json").read_text()) == json.loads(json.dumps(doc))
    (entry,) = doc["sizes"]
    assert entry["label"] == "MLP 2-4-4-3, batch 8, K=2"
    names = [c["contender"] for c in entry["contenders"]]
    assert names == ["keyfan Trainer (default)", "keyfan member_group=2", "keyfan donate=False",
                     "keyfan K one-member states", "keyfan products='gemm'", "keyfan layout_invariant=False",
                     "hand-written jit(vmap(train_step))", "Equinox filter_vmap",
                     "Python loop over K jitted steps"]
    assert entry["rule_choice"] == trainer.ELEMENTWISE  # the rule's choice for a 2-4-4-3 MLP
    assert [c["contender"] for c in entry["contenders"] if c["chosen"]] == ["keyfan Trainer (default)"]
    assert entry["contenders"][0]["arrangement"] == trainer.ELEMENTWISE
    rows = {c["contender"]: c for c in entry["contenders"]}
    assert rows["hand-written jit(vmap(train_step))"]["time_vs_hand"] == 1.0
    assert rows["Equinox filter_vmap"]["time_vs_equinox"] == 1.0
    for row in rows.values():
        assert row["median_ms"] > 0 and row["first_call_s"] > 0 and row["xla_temp_mb"] >= 0
        assert row["time_vs_hand"] == pytest.approx(row["median_ms"] / rows["hand-written jit(vmap(train_step))"]
                                                    ["median_ms"])
    assert any("torch" in note for note in doc["notes"])
    table = trainer.table(doc)
    assert rows["Python loop over K jitted steps"]["time_vs_loop"] == 1.0
    assert all(row["cpu_median_ms"] > 0 and row["rss_mb"] > 0 for row in rows.values())
    for name in ("keyfan Trainer (default)", "hand-written jit(vmap(train_step))"):  # cold, alternated
        runs = rows[name]["first_call_runs_s"]
        assert len(runs) == trainer.FIRST_CALL_REPEATS and rows[name]["first_call_s"] == sorted(runs)[1]
    assert len(table) == 9 and table[0][2] == trainer.ELEMENTWISE + " *"


@pytest.mark.slow  # 22 CPU-s; the keyfan contenders' steps: bitwise below, in the default tier
def test_contenders_return_one_loss_per_member_near_log_classes():
    """Every step starts from small random weights on 3 classes: the mean loss is near log 3."""
    contenders = trainer.keyfan_contenders(TINY)
    eqx = trainer.equinox_contender(TINY)
    for c in contenders + ([eqx] if eqx is not None else []):
        losses = np.asarray(jax.block_until_ready(c.make()()), dtype=np.float32).reshape(-1)
        assert losses.shape == (TINY.members,), c.name
        np.testing.assert_allclose(losses, np.log(3.0), atol=0.6, err_msg=c.name)


def test_cli_rejects_an_unknown_group():
    from typer.testing import CliRunner

    from keyfan.cli import app

    result = CliRunner().invoke(app, ["bench", "--group", "gpu"])
    shown = " ".join(result.output.replace("│", " ").split())  # the error box wraps the line
    assert result.exit_code == 2 and "group must be 'all', 'ensemble-trainer' or 'portable', got 'gpu'" in shown


@pytest.mark.slow  # the benchmark's contenders (14 CPU-s); member groups' bits in the default tier:
# tests/test_ensemble_blocks.py::test_step_equals_the_numpy_tree_of_block_gradients (groups None, 1, 2)
@pytest.mark.bitwise
def test_the_trainer_arrangements_give_the_same_losses_bit_for_bit():
    """The rule's choice (elementwise products, all members in one vmap, at this size), two
    members per vmap, without donation and one state per member stepped by its own dispatch:
    the same losses, bit for bit; the gemm form rounds otherwise but agrees closely."""
    contenders = {c.name: c for c in trainer.keyfan_contenders(TINY)}
    losses = {name: np.asarray(contenders[name].make()()) for name in
              ("keyfan Trainer (default)", "keyfan member_group=2", "keyfan donate=False",
               "keyfan K one-member states")}
    losses["keyfan K one-member states"] = np.concatenate(losses["keyfan K one-member states"])
    for name, value in losses.items():
        np.testing.assert_array_equal(value, losses["keyfan Trainer (default)"], err_msg=name)
    gemm = np.asarray(contenders["keyfan products='gemm'"].make()())  # the other form: other rounding
    np.testing.assert_allclose(gemm, losses["keyfan Trainer (default)"], rtol=1e-5)
