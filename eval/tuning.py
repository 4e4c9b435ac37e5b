"""The settings the evaluation recommends (k, demonstrations, search mode), chosen by the rule
the fine-tune decision uses, and written where `rag ask`, `rag chat` and `rag serve` read them.

The baseline run (``rag-few-shot`` at the run's k and shots) is the default. Every sweep point
that changes one setting (the demonstrations sweep at the run's k, the k sweep at the run's
shots) is compared with it question by question, as one family: a sign-flip test, Holm over the
family, and `eval/recommend.py`'s `decide` with ``--min-gain``. A setting changes only when a
point beats the default significantly by at least the minimum gain; otherwise the default stays,
and an undecided comparison says how many questions would settle it. The search mode follows the
same rule on the gold document's recall (retrieval alone, `eval/search_modes.py`), not on F1.

``OUT/settings.json`` holds the result; ``rag eval --apply-settings`` (or copying the file) puts
it in the index folder, where it becomes that index's default.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eval.recommend import Decision, decide
from eval.results import Row
from eval.search_modes import ModeRecall
from eval.stats import PERMUTATIONS, compare_paired
from eval.variants import BASELINE, VARIANTS
from rag.errors import ConfigError
from rag.settings import SETTINGS_FILE
from rag.store_layout import read_current

Setting = Literal["k", "shots", "mode"]


@dataclass(frozen=True)
class SettingChoice:
    """One setting: its default, what the rule chose, and the comparison that decided."""

    name: Setting
    default: int | str
    chosen: int | str
    #: The candidate whose comparison is reported: the chosen one, else the best undecided or
    #: measured one (None: no other value was measured).
    candidate: str | None = None
    value: int | str | None = None
    decision: Decision | None = None

    @property
    def changed(self) -> bool:
        return self.chosen != self.default

    def line(self) -> str:
        label = {"k": "k (passages)", "shots": "demonstrations", "mode": "search mode"}[self.name]
        measure = "gold-document recall" if self.name == "mode" else "F1"
        if self.decision is None or self.decision.comparison is None:
            return f"- {label}: keep {self.default} (no other value was measured)."
        diff = self.decision.comparison.difference.format(signed=True)
        p = self.decision.comparison.p_holm
        evidence = (
            f"{self.candidate} ({self.name}={self.value}) {measure} {diff} over the default, "
            f"Holm p {'< 0.001' if p < 0.001 else f'{p:.3f}'}"
        )
        if self.changed:
            return f"- {label}: {self.chosen} instead of {self.default}: {evidence}."
        if self.decision.verdict == "undecided":
            return (
                f"- {label}: keep {self.default}; the best other, {evidence}, is undecided: "
                f"about {self.decision.more_questions:,} more questions would settle a gain of "
                f"{self.decision.min_gain:.2f}."
            )
        return (
            f"- {label}: keep {self.default}: no other value is significantly better by "
            f"{self.decision.min_gain:.2f} (best: {evidence})."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.name,
            "default": self.default,
            "chosen": self.chosen,
            "candidate": self.candidate,
            "value": self.value,
            "decision": self.decision.to_dict() if self.decision is not None else None,
        }


@dataclass(frozen=True)
class RecommendedSettings:
    choices: tuple[SettingChoice, ...]
    min_gain: float

    def get(self, name: Setting) -> SettingChoice:
        return next(c for c in self.choices if c.name == name)

    def values(self) -> dict[str, int | str]:
        """What `rag ask`, `rag chat` and `rag serve` read: k, shots, mode."""
        return {c.name: c.chosen for c in self.choices}

    def lines(self) -> list[str]:
        values = ", ".join(f"{name}={value}" for name, value in self.values().items())
        out = [
            f"Recommended settings: {values} (the default stays unless another value is "
            f"significantly better by at least {self.min_gain:.2f}, the --min-gain rule; "
            f"{SETTINGS_FILE}, applied with `rag eval ... --apply-settings`)."
        ]
        out.extend(choice.line() for choice in self.choices)
        k, shots = self.get("k"), self.get("shots")
        if k.changed and shots.changed:
            out.append(
                f"- k and demonstrations were each measured with the other at its default: "
                f"confirm the pair with `rag eval --k {k.chosen} --shots {shots.chosen}`."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.values(),
            "min_gain": self.min_gain,
            "choices": [c.to_dict() for c in self.choices],
            "lines": self.lines(),
        }


def choose_settings(
    by_run: Mapping[str, Sequence[Row]],
    *,
    mode: str,
    search_modes: Sequence[ModeRecall] = (),
    min_gain: float,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
) -> RecommendedSettings | None:
    """The rule over the sweep points; None when the baseline was not run."""
    base_rows = by_run.get(BASELINE)
    if not base_rows:
        return None
    base_k, base_shots = base_rows[0].k, base_rows[0].shots
    baseline = {row.qid: row.f1 for row in base_rows}
    candidates: dict[str, tuple[Setting, int | str]] = {}
    for name, rows in by_run.items():
        if name == BASELINE or not _plain_retrieval(rows[0]):
            continue
        first = rows[0]
        if first.k == base_k and first.shots != base_shots:
            candidates[name] = ("shots", first.shots)
        elif first.shots == base_shots and first.k != base_k:
            candidates[name] = ("k", first.k)
    pairs = {}
    for name in candidates:
        paired = [(row.f1, baseline[row.qid]) for row in by_run[name] if row.qid in baseline]
        if paired:
            pairs[name] = ([a for a, _ in paired], [b for _, b in paired])
    comparisons = compare_paired(pairs, seed=seed, resamples=resamples)
    decisions = {name: decide(name, c, min_gain) for name, c in comparisons.items()}
    for m in search_modes:
        if m.diff is not None:
            candidates[m.mode] = ("mode", m.mode)
            decisions[m.mode] = decide(m.mode, m.diff, min_gain)
    defaults: tuple[tuple[Setting, int | str], ...] = (
        ("k", base_k),
        ("shots", base_shots),
        ("mode", mode),
    )
    choices = tuple(_choose(s, default, candidates, decisions) for s, default in defaults)
    return RecommendedSettings(choices, min_gain)


def _plain_retrieval(row: Row) -> bool:
    """Retrieval, no adapter, no oracle: a setting of the answering product itself."""
    variant = VARIANTS.get(row.variant)
    return variant is not None and variant.retrieval and not variant.adapter


def _choose(
    setting: Setting,
    default: int | str,
    candidates: Mapping[str, tuple[Setting, int | str]],
    decisions: Mapping[str, Decision],
) -> SettingChoice:
    """The best candidate for ``setting`` that the rule accepts, else the default."""
    mine = {name: d for name, d in decisions.items() if candidates[name][0] == setting}
    if not mine:
        return SettingChoice(setting, default, default)

    def gain(name: str) -> float:
        comparison = mine[name].comparison
        return comparison.difference.value if comparison is not None else 0.0

    better = [name for name, d in mine.items() if d.verdict == "fine-tune"]
    undecided = [name for name, d in mine.items() if d.verdict == "undecided"]
    shown = max(better or undecided or list(mine), key=gain)
    value = candidates[shown][1]
    return SettingChoice(setting, default, value if better else default, shown, value, mine[shown])


def write_settings(out: Path, settings: RecommendedSettings, source: dict[str, Any]) -> Path:
    """``out/settings.json``: the values, where they came from, and why."""
    path = out / SETTINGS_FILE
    payload = {**settings.to_dict(), "source": source}
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def apply_settings(out: Path, index: Path) -> Path:
    """Copy ``out/settings.json`` into the index folder: the index's default from now on."""
    source = out / SETTINGS_FILE
    if not source.is_file():
        raise ConfigError(
            f"{source} does not exist: the report recommends settings only when {BASELINE} was run"
        )
    if read_current(index) is None:
        raise ConfigError(f"{index} is not an index folder: build one with `rag ingest`")
    target = index / SETTINGS_FILE
    partial = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target
