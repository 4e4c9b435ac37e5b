"""The report's closing recommendation, stated as rules a reader can check against the tables.

"few-shot RAG reaches F1 0.71 [0.66, 0.76]; LoRA adds +0.02 [-0.03, 0.07]: not significant: do
not fine-tune." Significance means the paired 95% interval excludes zero. When a target F1 is
set and nothing reaches it, the recommendation says what would: whether failures are retrieval
or reading misses, what the gold passage (oracle) reaches, and what training would cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eval.search_modes import mode_verdict
from eval.variants import BASELINE

if TYPE_CHECKING:
    from eval.summary import RunSummary, Summary


def recommend(summary: Summary) -> list[str]:
    base = summary.get(BASELINE)
    if base is None:
        return [
            f"{BASELINE} was not run, so there is no baseline to compare against: rerun with "
            f"{BASELINE} among --variants."
        ]
    lines = [f"{BASELINE} reaches F1 {base.f1.format()}."]
    main = [r for r in summary.runs if not r.sweep and r.run != BASELINE]
    for run in main:
        if run.diff_f1 is not None:
            lines.append(
                f"{run.run}: F1 {run.f1.format()}; difference from {BASELINE} "
                f"{run.diff_f1.format(signed=True)}: {_significance(run)}."
            )
    lines.append(_finetune_verdict(summary))
    verdict = mode_verdict(summary.search_modes)
    if verdict is not None:
        lines.append(verdict)
    if summary.target is not None:
        lines.extend(_target_lines(summary, base))
    return lines


def _significance(run: RunSummary) -> str:
    assert run.diff_f1 is not None
    if not run.diff_f1.significant:
        return "not significant"
    return "significantly better" if run.diff_f1.value > 0 else "significantly worse"


def _finetune_verdict(summary: Summary) -> str:
    lora = summary.get("lora-rag") or summary.get("lora")
    if lora is None or lora.diff_f1 is None:
        return (
            "Fine-tuning was not tested: train an adapter with `rag finetune` and rerun "
            "`rag eval --adapter DIR` to see whether it adds anything."
        )
    diff = lora.diff_f1
    if diff.significant and diff.value > 0:
        verdict = "significant: fine-tune"
    elif diff.significant:
        verdict = "significantly worse: do not fine-tune"
    else:
        verdict = "not significant: do not fine-tune"
    return f"Rule: {lora.run} adds {diff.format(signed=True)} over {BASELINE}: {verdict}."


def _target_lines(summary: Summary, base: RunSummary) -> list[str]:
    target = summary.target
    assert target is not None
    deployable = [r for r in summary.runs if not r.sweep and r.variant != "oracle"]
    best = max(deployable, key=lambda r: (r.f1.value, r.run == BASELINE))
    if best.f1.value >= target:
        sure = (
            "its interval's lower end clears the target too"
            if best.f1.low >= target
            else f"but its interval's lower end ({best.f1.low:.2f}) does not: more questions "
            "would settle it"
        )
        return [
            f"Rule: {best.run} reaches the target F1 {target:.2f} with {best.f1.format()}; {sure}."
        ]
    lines = [
        f"Rule: nothing reaches the target F1 {target:.2f}; the best is {best.run} with "
        f"{best.f1.format()}. What would:"
    ]
    counts = base.attribution
    retrieval, reading = counts.get("retrieval miss", 0), counts.get("reading miss", 0)
    lines.append(
        f"- Of {base.n} questions, {BASELINE} answered {retrieval + reading} wrongly: "
        f"{retrieval} retrieval misses (gold passage not in the prompt), {reading} reading "
        f"misses (gold passage in the prompt, answer wrong); {counts.get('refused', 0)} refused."
    )
    oracle = summary.get("oracle")
    if oracle is not None and oracle.f1.value >= target:
        lines.append(
            f"- With the gold passage (oracle) F1 is {oracle.f1.format()}, at or over the target: "
            "better retrieval alone could get there (another search mode, see the table of "
            "modes; a larger k; smaller chunks)."
        )
    elif oracle is not None:
        lines.append(
            f"- Even with the gold passage (oracle) F1 is only {oracle.f1.format()}: retrieval "
            "alone cannot reach the target; the reader must improve (a larger model, or "
            "`rag finetune --on qa --with-context` to train it on the prompts it reads)."
        )
    elif retrieval > reading:
        lines.append(
            "- Retrieval misses dominate: improve retrieval first (run `oracle` to "
            "confirm the reader can answer with the gold passage)."
        )
    else:
        lines.append("- Reading misses dominate: a larger reader or fine-tuning the reader.")
    if summary.costs:
        lines.append(f"- Training cost at {summary.cost_basis}:")
        for line in summary.costs:
            lines.append(
                f"  - {line.what}: 6 x {line.parameters:.3g} parameters x {line.tokens:.3g} "
                f"tokens = {line.flops:.2e} FLOPs, {_amount(line.gpu_hours)} GPU-hours, "
                f"${_amount(line.usd)} ({line.note})"
            )
    return lines


def _amount(value: float) -> str:
    """Two decimals for everyday amounts, significant digits for tiny ones."""
    return f"{value:,.2f}" if value >= 0.1 else f"{value:.2g}"
