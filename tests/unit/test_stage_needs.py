"""Stages gate each other: the dependencies are data, and one function judges them."""

from __future__ import annotations

from engine import checklist
from engine.checklist import blocker


def test_needs_point_backwards_to_known_stages_and_items() -> None:
    order = {s.id: s.number for s in checklist.STAGES}
    for s in checklist.STAGES:
        for need in s.needs:
            assert need in order or need in checklist.ITEMS, need
            assert order[need.split(".")[0]] < s.number, (s.id, need)
    assert checklist.stage("dry_run").needs == ("sanity",)
    assert checklist.stage("eval").needs == ("full.adapter_saved",)  # an adapter, not a pass
    assert checklist.stage("deploy").needs == ("export.quantize",)  # a GGUF
    assert checklist.stage("sanity").needs == ()


def test_a_failed_item_blocks_everything_after_it_and_is_named() -> None:
    status = {"sanity": "failed"}
    items = {"sanity.valid_jsonl": "fail", "sanity.totals": "warn"}
    b = blocker("dry_run", status, items)
    assert (b.need, b.item, b.run_first) == ("sanity", "sanity.valid_jsonl", "sanity")
    assert "“Valid JSONL” failed" in b.reason
    status["dry_run"] = "blocked"
    b = blocker("mini", status, items)
    assert (b.need, b.item, b.run_first) == ("dry_run", "sanity.valid_jsonl", "sanity")
    assert b.reason.startswith("needs 2. Dry run to pass (blocked); first: “Valid JSONL”")


def test_warnings_do_not_block() -> None:
    assert blocker("dry_run", {"sanity": "ok"}, {"sanity.totals": "warn"}) is None
    assert blocker("deploy", {"export": "failed"}, {"export.quantize": "warn",
                                                    "export.parity": "fail"}) is None


def test_an_adapter_from_an_earlier_run_of_stage_4_is_enough_for_eval() -> None:
    # Stage 4 missed its loss band but saved the adapter: evaluating it is still possible.
    assert blocker("eval", {"full": "failed"}, {"full.adapter_saved": "pass",
                                                "full.loss_plateau": "fail"}) is None
    b = blocker("eval", {}, {}, {"export": {"quant": "q4_k_m"}})
    assert b.need == "full.adapter_saved" and b.run_first == "sanity"
    b = blocker("deploy", {"export": "failed"}, {"export.quantize": "fail"},
                {"export": {"quant": "q4_k_m"}})
    assert b.item == "export.quantize" and "“Quantized q4_k_m” (6. Export), which failed" \
        in b.reason
