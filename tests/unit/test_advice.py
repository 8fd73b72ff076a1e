"""Every advice rule on synthetic streams: the seeded symptom triggers it, with evidence and a
suggested change; healthy streams (and look-alikes) never do."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from engine import advice, config, protocol
from engine.stages import advice as advice_stage
from engine.stages.base import StageContext

CFG = config.defaults()  # window 20, lr 2e-4, full plateau 0.6-1.0


def stream(losses: list[float], **extra: Any) -> list[dict[str, Any]]:
    return [{"step": i + 1, "values": {"loss": v, "lr": 2e-4, **extra}}
            for i, v in enumerate(losses)]


def falling(n: int = 100, start: float = 3.0, end: float = 0.8, noise: float = 0.0) -> list[float]:
    rng = random.Random(1)
    return [start + (end - start) * i / (n - 1) + rng.uniform(-noise, noise) for i in range(n)]


def flat(n: int, level: float, noise: float = 0.0) -> list[float]:
    """A level loss, zig-zagging by ±noise (no trend for chance to invent)."""
    return [level + (noise if i % 2 else -noise) for i in range(n)]


def well_formed(a: advice.Advice | None) -> advice.Advice:
    assert a is not None
    assert a.rule.startswith("advice.") and a.symptom and a.action and a.evidence
    assert a.change.get("stages")
    return a


# --- loss stagnates ---------------------------------------------------------------------------
def test_flat_loss_above_target_says_train_longer() -> None:
    a = well_formed(advice.loss_stagnates(stream(falling(60, 3.0, 1.6) + flat(60, 1.6)),
                                          CFG, "full"))
    assert a.change == {"stages": ["full"], "set": {"full.epochs": 2}}
    assert a.evidence["last_window_mean"] == pytest.approx(1.6)
    assert a.evidence["target"] == 1.0


def test_noisy_flat_loss_says_lower_the_learning_rate() -> None:
    a = well_formed(advice.loss_stagnates(stream(flat(80, 1.8, noise=0.5)), CFG, "mini"))
    assert a.change["set"] == {"train.learning_rate": 1e-4}


@pytest.mark.parametrize("losses", [
    falling(100),                      # still falling well
    falling(60, 3.0, 0.7) + flat(60, 0.7),  # flat, but below the target
    flat(30, 2.0),                     # too few steps to judge
], ids=["falling", "flat_below_target", "too_short"])
def test_loss_stagnation_does_not_trigger(losses: list[float]) -> None:
    assert advice.loss_stagnates(stream(losses), CFG, "full") is None


# --- divergence and NaN ------------------------------------------------------------------------
def test_nan_loss_triggers_with_its_step() -> None:
    s = stream(falling(30))
    s[17]["values"]["loss"] = math.nan
    a = well_formed(advice.diverged(s, CFG, "dry_run"))
    assert a.evidence["step"] == 18 and a.evidence["value"] == "nan"
    assert a.change["set"] == {"dry_run.learning_rate": CFG["dry_run"]["learning_rate"] / 2}
    # The other stages train at the shared learning rate.
    assert well_formed(advice.diverged(s, CFG, "full")).change["set"] == {
        "train.learning_rate": 1e-4}


def test_infinite_grad_norm_triggers() -> None:
    s = stream(falling(30), grad_norm=1.0)
    s[5]["values"]["grad_norm"] = math.inf
    assert well_formed(advice.diverged(s, CFG, "full")).evidence["metric"] == "grad_norm"


def test_loss_climbing_back_up_triggers() -> None:
    a = well_formed(advice.diverged(stream(falling(60, 3.0, 1.0) + falling(40, 1.0, 4.0)),
                                    CFG, "full"))
    assert a.evidence["last_window_mean"] > 1.5 * a.evidence["best_window_mean"]


def test_single_spikes_in_a_falling_loss_do_not_trigger() -> None:
    losses = falling(100, noise=0.2)
    for i in (30, 55, 80):
        losses[i] = 6.0
    assert advice.diverged(stream(losses), CFG, "full") is None


# --- memory -------------------------------------------------------------------------------------
def test_memory_over_budget_halves_the_sequence_length() -> None:
    events = [{"ts": 1.0, "rss_gb": 8.0, "device_peak_gb": 9.0, "budget_gb": 12.0},
              {"ts": 2.0, "rss_gb": 11.0, "device_peak_gb": 13.5, "budget_gb": 12.0}]
    a = well_formed(advice.memory_over_budget(events, CFG, "full"))
    assert a.evidence["peak_gb"] == 13.5 and a.change["set"] == {"full.seq_len": 1024}


@pytest.mark.parametrize("events", [
    [{"rss_gb": 11.9, "device_peak_gb": 11.0, "budget_gb": 12.0}],
    [{"rss_gb": 50.0, "device_peak_gb": None, "budget_gb": 0}],  # no budget known
    [],
], ids=["under", "no_budget", "none"])
def test_memory_under_budget_does_not_trigger(events: list[dict]) -> None:
    assert advice.memory_over_budget(events, CFG, "full") is None


# --- eval results ----------------------------------------------------------------------------
def row(rule: str, passed: bool, rid: str = "x", **info: Any) -> dict[str, Any]:
    return {"id": rid, "rule": rule, "passed": passed, "answer": "…", "reasons": [],
            "info": info}


def test_prose_instead_of_tool_json_suggests_tool_neg_examples() -> None:
    rows = ([row("tool", False, f"t{i}", prose=True) for i in range(3)]
            + [row("tool", True, f"ok{i}", prose=False) for i in range(7)])
    a = well_formed(advice.prose_not_json(rows, CFG))
    assert a.change == {"stages": ["mini"], "add_records": {"tool_neg": 200}}
    assert [e["id"] for e in a.evidence["examples"]] == ["t0", "t1", "t2"]


def test_invalid_json_that_is_not_prose_is_not_the_prose_symptom() -> None:
    rows = ([row("tool", False, f"t{i}", prose=False) for i in range(5)]
            + [row("tool", False, "p", prose=True)] + [row("tool", True) for _ in range(14)])
    assert advice.prose_not_json(rows, CFG) is None  # 1 of 20 prose < 20%


def test_naming_drift_suggests_style_examples() -> None:
    rows = ([row("style", False, "s1", naming=["N802 Function name `getUser` should be "
                                               "lowercase"]),
             row("style", False, "s2", naming=["renamed: maskSecret"])]
            + [row("style", True, naming=[]) for _ in range(8)])
    a = well_formed(advice.naming_drift(rows, CFG))
    assert a.evidence["codes"] == ["N802", "renamed:"] and a.change["add_records"] == {
        "style": 200}


def test_style_failures_without_naming_problems_do_not_trigger_naming_advice() -> None:
    rows = [row("style", False, naming=[]) for _ in range(10)]
    assert advice.naming_drift(rows, CFG) is None


def test_refusals_wrong_both_ways_suggest_guardrail_examples() -> None:
    rows = ([row("guardrail", False, "g1", refused=True, should_refuse=False),
             row("guardrail", False, "g2", refused=False, should_refuse=True)]
            + [row("guardrail", True, refused=True, should_refuse=True) for _ in range(18)])
    a = well_formed(advice.refusal_inconsistent(rows, CFG))
    assert "both directions" in a.symptom
    assert a.evidence["false_refusals"] == ["g1"] and a.evidence["missed_refusals"] == ["g2"]


def test_guardrail_accuracy_on_target_does_not_trigger() -> None:
    rows = ([row("guardrail", False, "g1", refused=True, should_refuse=False)]
            + [row("guardrail", True, refused=True, should_refuse=True) for _ in range(99)])
    assert advice.refusal_inconsistent(rows, CFG) is None  # 99% >= 98%


# --- plateau -------------------------------------------------------------------------------------
def hist(*overall: float, tool: float = 0.7) -> list[dict[str, str]]:
    return [{"run": f"r{i}", "source": "adapter", "time": f"t{i}", "overall": str(o),
             "tool.json_valid": str(tool), "guardrail.accuracy": "1.0"}
            for i, o in enumerate(overall)]


def test_eval_plateau_suggests_an_extra_mini_run_at_a_smaller_lr() -> None:
    a = well_formed(advice.eval_plateau(hist(0.60, 0.74, 0.745, 0.748), CFG))
    assert a.change == {"stages": ["mini"], "set": {"train.learning_rate": 1e-4},
                        "resume_from": "outputs/r3/lora"}
    assert a.evidence["missed"] == ["tool.json_valid"]


@pytest.mark.parametrize("history", [
    hist(0.60, 0.70, 0.80),             # improving
    hist(0.74, 0.745),                  # too few evaluations
    hist(0.99, 0.99, 0.99, tool=0.99),  # flat, but every target met
], ids=["improving", "too_few", "targets_met"])
def test_eval_plateau_does_not_trigger(history: list[dict[str, str]]) -> None:
    assert advice.eval_plateau(history, CFG) is None


# --- the stage, on a run folder --------------------------------------------------------------------
def test_the_stage_emits_advice_with_evidence_and_marks_its_items(tmp_path: Path,
                                                                  outputs: Path) -> None:
    run = outputs / "r1"
    run.mkdir()
    w = protocol.EventWriter(run / "events.jsonl", "r1")
    w.stage = "full"
    for e in stream(falling(60, 3.0, 1.6) + flat(60, 1.6)):
        w.emit("metric", **e)
    w.emit("memory", rss_gb=3.0, device_gb=None, device_peak_gb=None, system_used_gb=8.0,
           system_total_gb=32.0, budget_gb=12.0)
    w.close()
    (run / "eval").mkdir()
    (run / "eval" / "records.jsonl").write_text("\n".join(
        __import__("json").dumps(r) for r in [row("tool", False, "t1", prose=True),
                                              row("tool", True, "t2", prose=False)]))
    events: list[dict[str, Any]] = []
    ctx = StageContext(cfg=CFG, emit=lambda type, **p: events.append({"type": type, **p}),
                       run_dir=run)
    assert advice_stage.run(ctx) == "ok"
    given = [e for e in events if e["type"] == "advice"]
    assert {e["rule"] for e in given} == {"advice.loss_stagnates", "advice.prose_not_json"}
    assert all(e["evidence"] and e["change"] for e in given)
    status = {e["item"]: e["status"] for e in events if e["type"] == "check"}
    assert status == {"advice.loss_stagnates": "warn", "advice.prose_not_json": "warn",
                      "advice.naming_drift": "pass", "advice.refusal_inconsistent": "pass",
                      "advice.eval_plateau": "skip", "advice.diverged": "pass",
                      "advice.memory": "pass"}
