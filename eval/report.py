"""Write report.json, report.md and a self-contained report.html from an evaluation folder.

Everything comes from ``results.jsonl`` and ``run.json`` in that folder (plus the adapter's
loss curve when one was evaluated), so a report can be rebuilt at any time and always agrees
with the rows. The page templates live in ``eval/templates`` and render strictly. The
recommended settings go to ``settings.json`` beside the report (``eval/tuning.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from eval.costs import Hardware, estimate_costs
from eval.recommend import MIN_GAIN, describe_method
from eval.results import ResultsFile
from eval.run_summary import RunSummary
from eval.search_modes import read_modes, summarize_modes
from eval.summary import Summary, summarize
from eval.svg import Bar, Point, bar_chart, line_chart, stacked_bars
from eval.tuning import write_settings
from eval.variants import ATTRIBUTIONS, BASELINE
from rag.errors import InputError, PromptError

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]

    def markdown(self) -> str:
        if not self.rows:
            return "_(no data)_"
        lines = [
            "| " + " | ".join(self.headers) + " |",
            "|" + "|".join("---" for _ in self.headers) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        if not self.rows:
            return '<p class="note">(no data)</p>'
        head = "".join(f"<th>{escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(
    out: Path,
    *,
    target: float | None = None,
    min_gain: float = MIN_GAIN,
    hardware: Hardware = Hardware(),
    seed: int = 0,
) -> Summary:
    """Summarize ``out/results.jsonl`` and write the three report files beside it.

    Only the rows are read, so a report is rebuilt under another rule (``min_gain``,
    ``target``) without generating anything."""
    results = ResultsFile(out)
    rows = results.rows()
    if not rows:
        raise InputError(f"no results in {results.path}: run `rag eval` first")
    config = results.config()
    costs = []
    if config.get("corpus_tokens"):
        costs = estimate_costs(
            corpus_tokens=int(config["corpus_tokens"]),
            reader_parameters=config.get("reader_parameters"),
            hardware=hardware,
        )
    modes = summarize_modes(
        read_modes(out),
        used=str(config.get("mode", "hybrid")),
        k=int(config.get("k", 5)),
        seed=seed,
    )
    summary = summarize(
        rows,
        min_gain=min_gain,
        target=target,
        costs=costs,
        cost_basis=hardware.describe(),
        seed=seed,
        search_modes=modes,
        mode=str(config.get("mode", "hybrid")),
    )
    if summary.settings is not None:
        base = summary.get(BASELINE)
        source = {key: config.get(key) for key in ("qa", "index", "model", "adapter")}
        source.update(report=str(out), questions=base.n if base else None)
        write_settings(out, summary.settings, source)
    loss = _loss_curve(config)
    payload = {"config": config, **summary.to_dict(), "loss_curve": loss}
    (out / "report.json").write_text(
        json.dumps(_finite(payload), indent=2, default=str, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    tables = _tables(summary)
    title = f"Evaluation report: {config.get('model', '?')} on {config.get('qa', '?')}"
    headline = _headline(summary, config)
    setup = Table(["setting", "value"], [[k, str(v)] for k, v in config.items()])
    method = _method_note(summary)
    md_values = {
        "title": title,
        "method": method,
        "headline": headline,
        "recommendation": _markdown_lines(summary.recommendation),
        "settings": _markdown_lines(_settings_lines(summary)),
        **{name: table.markdown() for name, table in tables.items()},
        "finetune": _finetune_md(config, loss),
        "setup": setup.markdown(),
    }
    html_values = {
        "title": escape(title),
        "method": escape(method),
        "headline": escape(headline),
        "recommendation": "".join(f"<p>{escape(line)}</p>" for line in summary.recommendation),
        "settings": "".join(f"<p>{escape(line)}</p>" for line in _settings_lines(summary)),
        **{name: table.html() for name, table in tables.items()},
        **_plots(summary),
        "finetune": _finetune_html(config, loss),
        "setup": setup.html(),
    }
    (out / "report.md").write_text(_render("report.md", md_values), encoding="utf-8")
    (out / "report.html").write_text(_render("report.html", html_values), encoding="utf-8")
    return summary


def _settings_lines(summary: Summary) -> list[str]:
    if summary.settings is None:
        return [
            f"No settings recommended: {BASELINE}, the default they are compared with, was not run."
        ]
    return summary.settings.lines()


def _markdown_lines(lines: Sequence[str]) -> str:
    """Sentences as paragraphs, "- " lines as lists (a blank line ends a list)."""
    out: list[str] = []
    for line in lines:
        listed = line.lstrip().startswith("- ")
        if out and not (listed and out[-1].lstrip().startswith("- ")):
            out.append("")
        out.append(line)
    return "\n".join(out)


def _render(name: str, values: dict[str, str]) -> str:
    try:
        return Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(values)
    except (KeyError, ValueError) as error:
        raise PromptError(f"report template {name} does not render: {error}") from None


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _headline(summary: Summary, config: dict[str, Any]) -> str:
    base = summary.get(BASELINE)
    best = max((r for r in summary.runs if not r.sweep), key=lambda r: r.f1.value, default=None)
    parts = [f"{len({r.run for r in summary.runs})} runs"]
    if base is not None:
        parts.append(f"{BASELINE} F1 {base.f1.format()}")
    if best is not None:
        parts.append(f"best: {best.run} F1 {best.f1.format()}")
    parts.append(f"fine-tune: {summary.advice.decision.verdict}")
    if config.get("smoke"):
        parts.append("SMOKE RUN: too few questions for conclusions")
    return "; ".join(parts) + "."


def _method_note(summary: Summary) -> str:
    """How the intervals and tests are made, with this report's numbers (n, m, the rule)."""
    compared = next((r.diff_f1 for r in summary.runs if r.diff_f1 is not None), None)
    parts = [
        "F1 and EM are 0..1 (official SQuAD normalization), n = questions; their 95% intervals "
        "are t-intervals with one pseudo-question at each end of the scale, whose coverage is "
        "checked by simulation down to n = 6 (bench/decision_sim.py)."
    ]
    if compared is not None:
        parts.append(describe_method(compared))
    parts.append(
        f"Fine-tune only for a significant gain of at least {summary.min_gain:.2f} F1 (--min-gain)."
    )
    return " ".join(parts)


def _tables(summary: Summary) -> dict[str, Table]:
    main = [r for r in summary.runs if not r.sweep]
    memory = any(r.memory_rate is not None for r in main)
    unanswerable = any("refusal_recall" in r.refusal for r in main)
    variants = Table(
        [
            "variant",
            "shots",
            "n",
            "F1 [95% CI]",
            "EM [95% CI]",
            f"ΔF1 vs {BASELINE} [simultaneous 95% CI]",
            "Holm p",
            "contains gold",
            "refusal rate",
            *(["refusal P / R"] if unanswerable else []),
            "citation acc.",
            *(["from memory"] if memory else []),
        ],
        [
            [
                r.run,
                str(r.shots),
                str(r.n),
                r.f1.format(),
                r.em.format(),
                _difference(r),
                _fmt(r.diff_f1.p_holm, 3) if r.diff_f1 is not None else "",
                _fmt(r.contains_rate),
                _fmt(r.refusal["refusal_rate"]),
                *([_refusal_pr(r)] if unanswerable else []),
                f"{_fmt(r.citation['citation_accuracy'])} ({int(r.citation['cited'])} cited)",
                *([_fmt(r.memory_rate)] if memory else []),
            ]
            for r in main
        ],
    )
    sweep = Table(
        ["demonstrations", "F1 [95% CI]"],
        [[str(shots), estimate.format()] for shots, estimate in summary.sweep],
    )
    k_sweep = Table(
        ["passages (k)", "F1 [95% CI]"],
        [[str(k), estimate.format()] for k, estimate in summary.k_sweep],
    )
    doc = {k: f"{v:.2f} (n={n})" for k, v, n in summary.recall_curve}
    passage = {k: f"{v:.2f} (n={n})" for k, v, n in summary.passage_recall_curve}
    recall = Table(
        ["k", "gold document in top k", "answer-bearing passage in top k"],
        [[str(k), doc.get(k, "n/a"), passage.get(k, "n/a")] for k in sorted({*doc, *passage})],
    )
    with_mrr = next((r.retrieval for r in main if r.retrieval), None)
    if with_mrr:
        mrr = f"{with_mrr['mrr']:.2f} (n={int(with_mrr['n'])})"
        recall = Table(recall.headers, [*recall.rows, ["MRR", mrr, ""]])
    ks = [k for k, _ in summary.search_modes[0].recall] if summary.search_modes else []
    modes = Table(
        [
            "search mode",
            *(f"gold document in top {k}" for k in ks),
            "Δ at the runs' k [simultaneous 95% CI]",
            "Holm p",
        ],
        [
            [
                m.mode,
                *(e.format() for _, e in m.recall),
                m.diff.difference.format(signed=True)
                if m.diff is not None
                else "(used by the runs)",
                _fmt(m.diff.p_holm, 3) if m.diff is not None else "",
            ]
            for m in summary.search_modes
        ],
    )
    cost = Table(
        ["variant", "n", "prompt tokens", "completion tokens", "latency p50 ms", "latency p95 ms"],
        [
            [
                r.run,
                str(r.n),
                _fmt(r.cost["prompt_tokens"], 0),
                _fmt(r.cost["completion_tokens"], 0),
                _fmt(r.cost["latency_p50_ms"], 0),
                _fmt(r.cost["latency_p95_ms"], 0),
            ]
            for r in main
        ],
    )
    attribution = Table(
        ["variant", "n", *ATTRIBUTIONS],
        [[r.run, str(r.n), *(str(r.attribution.get(a, 0)) for a in ATTRIBUTIONS)] for r in main],
    )
    return {
        "variants_table": variants,
        "sweep_table": sweep,
        "k_sweep_table": k_sweep,
        "recall_table": recall,
        "modes_table": modes,
        "cost_table": cost,
        "attribution_table": attribution,
    }


def _refusal_pr(run: RunSummary) -> str:
    """Precision / recall of refusing, over the unanswerable questions."""
    precision = run.refusal.get("refusal_precision")
    recall = run.refusal.get("refusal_recall")
    return f"{_fmt(precision)} / {_fmt(recall)} ({int(run.refusal.get('unanswerable', 0))} unans.)"


def _difference(run: RunSummary) -> str:
    if run.diff_f1 is not None:
        return run.diff_f1.difference.format(signed=True)
    return "(baseline)" if run.run == BASELINE else "n/a"


def _plots(summary: Summary) -> dict[str, str]:
    main = [r for r in summary.runs if not r.sweep]
    accuracy = bar_chart(
        "F1 per variant (95% CI)",
        [Bar(r.run, r.f1.value, r.f1.low, r.f1.high, f"n={r.n}") for r in main],
        "F1",
        y_max=1.0,
    )
    sweep = line_chart(
        "F1 vs number of demonstrations (with retrieval)",
        {"rag": [Point(s, e.value, e.low, e.high, f"n={e.n}") for s, e in summary.sweep]},
        "demonstrations",
        "F1",
        y_max=1.0,
    )
    k_sweep = line_chart(
        "F1 vs passages retrieved (k)",
        {BASELINE: [Point(k, e.value, e.low, e.high, f"n={e.n}") for k, e in summary.k_sweep]},
        "k",
        "F1",
        y_max=1.0,
    )
    curves = {}
    if summary.recall_curve and not summary.search_modes:  # else the used mode's curve shows it
        curves["gold document"] = [Point(k, v, note=f"n={n}") for k, v, n in summary.recall_curve]
    if summary.passage_recall_curve:
        curves["answer passage"] = [Point(k, v) for k, v, _ in summary.passage_recall_curve]
    for mode in summary.search_modes:  # the gold document's recall, one series per mode
        curves[mode.mode] = [Point(k, e.value, e.low, e.high, f"n={e.n}") for k, e in mode.recall]
    title = "Recall@k: gold document by search mode" if summary.search_modes else "Recall@k"
    recall = line_chart(title, curves, "k", "recall", y_max=1.0)
    cost = bar_chart(
        "Tokens per question (prompt + completion)",
        [
            Bar(
                r.run,
                r.cost["prompt_tokens"] + r.cost["completion_tokens"],
                note=f"p50 {_fmt(r.cost['latency_p50_ms'], 0)} ms",
            )
            for r in main
        ],
        "tokens",
    )
    attribution = stacked_bars(
        "Failure attribution", [(r.run, r.attribution) for r in main], ATTRIBUTIONS
    )
    return {
        "plot_accuracy": accuracy,
        "plot_sweep": sweep,
        "plot_k_sweep": k_sweep,
        "plot_recall": recall,
        "plot_cost": cost,
        "plot_attribution": attribution,
    }


def _loss_curve(config: dict[str, Any]) -> list[dict[str, float]]:
    adapter = config.get("adapter")
    if not adapter:
        return []
    path = Path(adapter) / "loss.json"
    if not path.is_file():
        return []
    data: list[dict[str, float]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _adapter_meta(config: dict[str, Any]) -> dict[str, Any]:
    path = Path(str(config.get("adapter", ""))) / "adapter_meta.json"
    if not config.get("adapter") or not path.is_file():
        return {}
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def _finetune_md(config: dict[str, Any], loss: list[dict[str, float]]) -> str:
    meta = _adapter_meta(config)
    if not meta:
        return ""
    table = Table(["adapter setting", "value"], [[k, str(v)] for k, v in meta.items()])
    curve = ", ".join(f"{p['step']}: {p['loss']:.3f}" for p in loss[:: max(1, len(loss) // 12)])
    return f"## Fine-tuning\n\n{table.markdown()}\n\nLoss by step: {curve}\n"


def _finetune_html(config: dict[str, Any], loss: list[dict[str, float]]) -> str:
    meta = _adapter_meta(config)
    if not meta:
        return ""
    table = Table(["adapter setting", "value"], [[k, str(v)] for k, v in meta.items()])
    plot = (
        line_chart(
            "LoRA training loss",
            {"loss": [Point(p["step"], p["loss"]) for p in loss]},
            "step",
            "loss",
        )
        if loss
        else ""
    )
    return f"<h2>Fine-tuning</h2><figure>{plot}</figure>{table.html()}"


def _finite(value: Any) -> Any:
    """NaN (a metric over no questions) as null, so report.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
