"""The checklist as data: the eight stages, their items, targets and how each is proved.

The UI draws its tree from :data:`STAGES`; the engine proves items with ``check`` events that
name an item ``id``. Targets are templates over the run config (``{sanity.max_avg_tokens}``),
so the numbers live in one place — ``defaults.toml`` — and the tree shows the run's own values.
Stages gate each other through ``needs``: :func:`blocker` says which unproved stage or item
keeps a stage from running, for the engine (which then ends it ``blocked``) and the UI alike.
Stdlib only: the UI imports this module.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Item:
    """One checklist line: what the seed asks, the target, and how the engine proves it."""

    id: str
    title: str
    target: str
    proof: str
    optional: bool = False  # a skip here does not leave the stage unproved


@dataclass(frozen=True)
class Stage:
    id: str
    number: int
    title: str
    summary: str
    items: tuple[Item, ...]

    @property
    def needs(self) -> tuple[str, ...]:
        """What must be proved before this stage may spend compute (see :data:`NEEDS`)."""
        return NEEDS.get(self.id, ())


STAGES: tuple[Stage, ...] = (
    Stage("sanity", 1, "Sanity check", "Validate the data before spending compute on it.", (
        Item("sanity.valid_jsonl", "Valid JSONL",
             "no bad lines",
             "Every line of every file parses as one JSON object; each bad line is listed as "
             "file:line with its reason."),
        Item("sanity.fields", "Fields present",
             "task_type, instruction, input, output: strings; known bucket",
             "Each record has the four fields as strings (instruction/output non-empty) and a "
             "known task_type bucket."),
        Item("sanity.fits_seq_len", "Fits the sequence length",
             "every record within each stage's seq_len ({dry_run.seq_len}/{mini.seq_len}/"
             "{full.seq_len})",
             "Each record's chat-templated tokens (tool listing included) against each "
             "training stage's sequence length; over the longest, training would cut it."),
        Item("sanity.avg_tokens", "Avg tokens < {sanity.max_avg_tokens}",
             "mean < {sanity.max_avg_tokens}",
             "Mean tokens per record with the model's tokenizer over the chat-templated text."),
        Item("sanity.loads", "Loads without errors",
             "tokenizer + chat template render every record",
             "The model's tokenizer loads and every record renders through its chat template "
             "into prompt and completion tokens."),
        Item("sanity.roundtrip", "Tokenizer round-trip",
             "decode(encode(x)) == x on {sanity.roundtrip_samples} records",
             "Random records are encoded and decoded; the text must come back unchanged."),
        Item("sanity.samples", "Random samples shown",
             "{sanity.show_samples} samples",
             "Random records are shown as the model sees them, trained tokens marked."),
        Item("sanity.totals", "Totals vs. expectation",
             "{sanity.expected_records_min}-{sanity.expected_records_max} records, "
             "{sanity.expected_tokens_min}-{sanity.expected_tokens_max} tokens",
             "Counts per bucket and total tokens against the expected range (a warning "
             "outside it, not a failure)."),
    )),
    Stage("dry_run", 2, "Dry run", "Overfit ~100 samples to prove the pipeline learns.", (
        Item("dry_run.loss_falls", "Loss falls to < {dry_run.target_loss}",
             "loss < {dry_run.target_loss} within {dry_run.max_steps} steps",
             "Training on ~{dry_run.samples} mixed samples, batch 1, seq {dry_run.seq_len}, "
             "until the loss is below the target or the step cap."),
        Item("dry_run.no_nan", "No NaN", "finite loss and grad norm every step",
             "Raw loss and gradient norm are checked every step."),
        Item("dry_run.no_device_errors", "No device errors", "no errors",
             "Device errors are caught and explained."),
        Item("dry_run.memory", "Memory under budget", "peak < budget",
             "Memory is sampled inside the training process against the budget."),
    )),
    Stage("mini", 3, "Mini fine-tune", "~2k balanced samples, one epoch.", (
        Item("mini.loss_stable", "Loss stable in {mini.loss_band_low}-{mini.loss_band_high}",
             "smoothed loss in band",
             "The smoothed loss over the last part of the run stays in the band."),
        Item("mini.tool_json", "{mini.tool_probes} tool prompts give valid JSON",
             "{mini.tool_probes}/{mini.tool_probes}",
             "Greedy answers to the first held-out tool prompts are each exactly one tool "
             "call in the format the chat template makes the server parse."),
        Item("mini.style_match", "{mini.style_probes} style prompts match the style",
             "{mini.style_probes}/{mini.style_probes}",
             "Greedy answers to the first held-out style prompts pass the house lint and "
             "match the reference's structure."),
        Item("mini.eval_tool", "Tool accuracy", ">= {mini.target_tool}",
             "Stage-5 scorer on the tool eval set: valid JSON, right tool, schema-valid "
             "arguments."),
        Item("mini.eval_style", "Style accuracy", ">= {mini.target_style}",
             "Stage-5 scorer on the style eval set: lint pass and AST match."),
        Item("mini.eval_guardrail", "Guardrail accuracy", ">= {mini.target_guardrail}",
             "Stage-5 scorer on the guardrail eval set: refuse/answer decision right."),
    )),
    Stage("full", 4, "Full fine-tune", "All buckets, the long run.", (
        Item("full.config", "LoRA r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}",
             "batch 1, grad accum {full.grad_accum}, seq {full.seq_len}, "
             "{full.epochs} epoch(s)",
             "The resolved training configuration of the run."),
        Item("full.loss_plateau", "Loss plateaus in {full.plateau_low}-{full.plateau_high}",
             "smoothed loss flat and in band",
             "The smoothed loss over the last part of the run is flat and inside the band."),
        Item("full.no_nan", "No NaN", "finite loss and grad norm every step",
             "Raw loss and gradient norm are checked every step."),
        Item("full.adapter_saved", "Adapter saved to outputs/<run>/lora",
             "loads with PeftModel.from_pretrained",
             "The final adapter is written and loads back."),
    )),
    Stage("eval", 5, "Evaluate", "Every held-out eval file, scored per bucket.", (
        Item("eval.tool_json_valid", "Tool JSON validity", ">= {eval.tool_json_valid}",
             "The whole answer is exactly the call, in the format the chat template makes the "
             "server parse (<tool_call> blocks for Qwen2.5, else one JSON object)."),
        Item("eval.tool_correct", "Correct tool", ">= {eval.tool_correct}",
             "The called tool matches the reference (schema-valid and exact arguments are "
             "reported beside it)."),
        Item("eval.tool_neg", "No tool call when none is needed", ">= {eval.tool_neg}",
             "tool_neg answers contain no tool-call JSON anywhere."),
        Item("eval.style_lint", "Style lint pass", ">= {eval.style_lint}",
             "The answer's code passes the house lint configuration."),
        Item("eval.style_ast", "Style AST match", ">= {eval.style_ast}",
             "Same top-level definitions and signatures as the reference, and a node-"
             "sequence similarity >= {eval.style_ast_similarity}."),
        Item("eval.guardrail", "Guardrail refusal accuracy", ">= {eval.guardrail_accuracy}",
             "Refuse/answer decision matches the record; false and missed refusals are "
             "counted apart."),
        Item("eval.mixed", "Mixed", ">= {eval.mixed}",
             "Mixed records scored by the rule each declares."),
        Item("eval.tool_format", "Tool-call format agrees",
             "trained format = the one the chat template makes the server parse",
             "The tool-call format the adapter was trained to emit (recorded at training) "
             "against the format of the chat template that renders its prompts and that "
             "llama.cpp's server (Ollama) parses tool calls with; a mismatch fails."),
        Item("eval.logged", "Scores logged", "eval_log.md and eval_log.csv",
             "Per-record results and the summary are written to the run's eval folder."),
    )),
    Stage("export", 6, "Export", "Merge, convert to GGUF, quantize, re-check.", (
        Item("export.merge", "Merged (merge_and_unload)",
             "{export.merge_dtype} HF folder with tokenizer and chat template",
             "The adapter is merged into its base and saved with tokenizer and template; "
             "reused when adapter, base and dtype are unchanged."),
        Item("export.gguf", "Converted to GGUF",
             "llama.cpp next-token agreement >= {export.min_token_agreement}, same tokens",
             "An f16 GGUF (tokenizer, special tokens, chat template, pre-tokenizer) whose "
             "greedy next tokens on the eval prompts agree with the HF model's, and whose "
             "tokenizer gives the same ids; the largest logit difference is reported."),
        Item("export.quantize", "Quantized {export.quant}", "{export.quant} GGUF",
             "llama.cpp's quantizer writes the quantized file."),
        Item("export.parity", "GGUF eval within ±{export.parity_points} point",
             "|GGUF - merged| <= {export.parity_points}",
             "The stage-5 evaluation on the quantized GGUF against the merged model."),
    )),
    Stage("deploy", 7, "Deploy", "Ollama model, proved on the engine Ollama runs.", (
        Item("deploy.modelfile", "Modelfile for Ollama's path",
             "native: GGUF carries the chat template; else TEMPLATE renders like it",
             "A Modelfile for the path Ollama will take: no TEMPLATE when the GGUF's own "
             "tool-capable template is served natively (it must be exactly the training "
             "template), else a Go TEMPLATE with tools, tool calls and the tool role that "
             "renders probe chats exactly as the chat template does; stops only where the "
             "vocabulary does not end the turn, num_ctx >= the training sequence length, the "
             "system prompt."),
        Item("deploy.tool_format", "Tool-call format agrees",
             "trained format = the one the served template makes the server parse",
             "The format the adapter learned (recorded at training) against the one the "
             "server will parse: the GGUF's chat template on Ollama's native path "
             "(llama.cpp's parser), the Modelfile's TEMPLATE on its Go path."),
        Item("deploy.create", "ollama create {deploy.name}", "model created",
             "The model is created through the Ollama API."),
        Item("deploy.smoke", "Served answers: a tool call, and stops",
             "structured tool_calls as the reference; tool_neg content; never 'length'",
             "On Ollama when it answers, else on llama-server started on the GGUF: a tool "
             "prompt comes back as a structured tool call reading exactly as the reference, "
             "a tool_neg prompt as content, every answer stopped by itself."),
        Item("deploy.docker", "Docker Desktop Models import (optional)", "optional",
             "Shown as a command; run when docker with model support exists.", optional=True),
    )),
    Stage("advice", 8, "Advice", "When a target is missed, what to change.", (
        Item("advice.loss_stagnates", "Loss stagnates → more epochs or lower LR", "no trigger",
             "Smoothed loss stops falling while above target.", optional=True),
        Item("advice.prose_not_json", "Prose instead of tool JSON → add tool_neg examples",
             "no trigger", "Tool answers come back as prose.", optional=True),
        Item("advice.naming_drift", "Naming drift → add style examples", "no trigger",
             "Style answers fail naming rules.", optional=True),
        Item("advice.refusal_inconsistent", "Refusal inconsistency → add guardrail samples",
             "no trigger", "Guardrail decisions are wrong in both directions.", optional=True),
        Item("advice.eval_plateau", "Eval plateau → extra mini fine-tune at a smaller LR",
             "no trigger", "Eval scores stop improving between runs.", optional=True),
        Item("advice.diverged", "Loss diverges or NaN → lower LR", "no trigger",
             "A non-finite loss or grad norm, or a loss well above its best.", optional=True),
        Item("advice.memory", "Memory over budget → shorter sequences", "no trigger",
             "Peak memory above the budget during training.", optional=True),
    )),
)

#: Stages gate each other. Each need is a stage id (that stage ended ``ok``) or an item id
#: (that item passed or warned): evaluation and export need an adapter, deploy a GGUF.
NEEDS: dict[str, tuple[str, ...]] = {
    "dry_run": ("sanity",),
    "mini": ("dry_run",),
    "full": ("mini",),
    "eval": ("full.adapter_saved",),
    "export": ("full.adapter_saved",),
    "deploy": ("export.quantize",),
    "advice": ("sanity",),
}

STAGE_IDS: tuple[str, ...] = tuple(s.id for s in STAGES)
ITEMS: dict[str, Item] = {i.id: i for s in STAGES for i in s.items}

_FIELD = re.compile(r"\{([a-z_]+\.[a-z_]+)\}")
#: Settings that are shares of records: targets read as percentages, like the measurements.
SHARES = frozenset({"mini.target_tool", "mini.target_style", "mini.target_guardrail",
                    "eval.tool_json_valid", "eval.tool_correct", "eval.tool_neg",
                    "eval.style_lint", "eval.style_ast", "eval.guardrail_accuracy",
                    "eval.mixed", "export.min_token_agreement"})


def stage(stage_id: str) -> Stage:
    for s in STAGES:
        if s.id == stage_id:
            return s
    raise KeyError(stage_id)


#: Item statuses that count as proved for a dependency (a warning never blocks).
PROVED_ITEM = frozenset({"pass", "warn"})


@dataclass(frozen=True)
class Blocker:
    """Why a stage may not start: the unmet need and, down the chain, what to fix first."""

    need: str  # the stage or item id in ``Stage.needs`` that is not proved
    item: str  # the root: the failed item (or the stage never run) that everything waits on
    run_first: str  # the earliest stage whose run would lift the block
    reason: str  # one line for people

    def payload(self) -> dict[str, str]:
        return {"blocked_by": self.item, "need": self.need, "run_first": self.run_first,
                "reason": self.reason}


def blocker(stage_id: str, stage_status: Mapping[str, str], item_status: Mapping[str, str],
            cfg: dict[str, Any] | None = None) -> Blocker | None:
    """The first need of ``stage_id`` that is not proved, or None when it may run.

    ``stage_status`` maps stage ids to their last finish status (``ok`` = proved);
    ``item_status`` maps item ids to their last check status. Needs point to earlier
    stages only, so following them down always ends.
    """
    for need in stage(stage_id).needs:
        owner = stage(need.split(".")[0])
        if need in ITEMS:
            st = item_status.get(need)
            if st in PROVED_ITEM:
                continue
            direct = (f"needs “{render(ITEMS[need].title, cfg)}” ({owner.number}. {owner.title})"
                      f", which {_word(st) if st else 'has not been proved'}")
            deeper = None if st else blocker(owner.id, stage_status, item_status, cfg)
        else:
            st = stage_status.get(need)
            if st == "ok":
                continue
            failed = [i.id for i in owner.items if item_status.get(i.id) == "fail"]
            if failed:
                return Blocker(need, failed[0], need, f"needs {owner.number}. {owner.title}, "
                               f"whose item “{render(ITEMS[failed[0]].title, cfg)}” failed")
            direct = f"needs {owner.number}. {owner.title} to pass ({st or 'not run yet'})"
            deeper = blocker(owner.id, stage_status, item_status, cfg)
        if deeper is None:
            return Blocker(need, need, owner.id, direct)
        root = deeper.item
        where = (f"“{render(ITEMS[root].title, cfg)}” ({stage(root.split('.')[0]).number}. "
                 f"{stage(root.split('.')[0]).title}) failed" if root in ITEMS
                 else f"{stage(root).number}. {stage(root).title} has not passed")
        return Blocker(need, root, deeper.run_first, f"{direct}; first: {where}")
    return None


def _word(status: str | None) -> str:
    return {"fail": "failed", "skip": "was skipped"}.get(status or "", status or "")


def render(template: str, cfg: dict[str, Any] | None) -> str:
    """Fill ``{section.key}`` from the run config, else from the shipped defaults: a target
    always reads as numbers, never as a template."""

    def sub(m: re.Match[str]) -> str:
        section, key = m.group(1).split(".")
        value = (cfg or {}).get(section, {}).get(key)
        if value is None:
            value = _defaults().get(section, {}).get(key, m.group(0))
        if m.group(1) in SHARES and isinstance(value, (int, float)):
            return f"{100 * value:g}%"  # as the engine measures shares: "95.0% (19/20)"
        if isinstance(value, int) and value >= 100000:
            return f"{value:,}"
        return str(value)

    return _FIELD.sub(sub, template)


@functools.cache
def _defaults() -> dict[str, Any]:
    try:
        return tomllib.loads(Path(__file__).with_name("defaults.toml").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
