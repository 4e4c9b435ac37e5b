"""The variants: one name for each way of answering, the same in the server, the CLI and the report.

A variant is a setting of the one answering pipeline (retrieval on or off, demonstrations or
none) plus two levers outside it: a LoRA adapter loaded into the generator (``lora``,
``lora-rag``), and the gold passage given as context (``oracle``: an upper bound that separates
retrieval failures from reading failures, so it needs a QA set and is never served).

A client asking the server for ``model="rag"``, ``rag ask --variant rag`` and the report's
``rag`` row all run the same configuration; `VariantConfig` is that configuration written out,
returned beside a served answer and recorded by the evaluation for each run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError

if TYPE_CHECKING:
    from rag.pipeline import AskOptions

#: What a request that names no variant gets: the product, and the report's baseline.
DEFAULT_VARIANT = "rag-few-shot"


@dataclass(frozen=True)
class VariantConfig:
    """The settings one variant ran with: what the server returns beside an answer and what the
    evaluation records for a run, so the two can be compared field by field."""

    name: str
    retrieval: bool
    #: Demonstrations in the prompt (0 for the zero-shot variants).
    shots: int
    #: Passages retrieved (recorded as asked; unused when ``retrieval`` is off).
    k: int
    adapter: bool
    oracle: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def options(self, **settings: Any) -> AskOptions:
        """The pipeline's options for this configuration; ``settings`` are the other fields."""
        from rag.pipeline import AskOptions

        return AskOptions(k=self.k, shots=self.shots, retrieval=self.retrieval, **settings)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    retrieval: bool
    #: Whether it shows demonstrations (as many as asked: ``--shots``); otherwise zero-shot.
    demonstrations: bool
    adapter: bool = False
    oracle: bool = False

    def check_adapter(self, given: bool) -> None:
        """Refuse a LoRA variant without an adapter to load."""
        if self.adapter and not given:
            raise ConfigError(
                f"variant {self.name} needs --adapter DIR (train one with `rag finetune`)"
            )

    def configure(self, *, shots: int, k: int) -> VariantConfig:
        """This variant with ``shots`` demonstrations (when it uses any) and ``k`` passages."""
        return VariantConfig(
            name=self.name,
            retrieval=self.retrieval,
            shots=shots if self.demonstrations else 0,
            k=k,
            adapter=self.adapter,
            oracle=self.oracle,
        )


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("closed-book", "no retrieval, zero-shot", retrieval=False, demonstrations=False),
        Variant("few-shot", "no retrieval, demonstrations", retrieval=False, demonstrations=True),
        Variant("rag", "retrieval, zero-shot", retrieval=True, demonstrations=False),
        Variant(DEFAULT_VARIANT, "retrieval + demonstrations (the product default)", True, True),
        Variant("oracle", "gold passage as context + demonstrations", False, True, oracle=True),
        Variant("lora", "LoRA adapter, no retrieval, zero-shot", False, False, adapter=True),
        Variant("lora-rag", "LoRA adapter + retrieval + demonstrations", True, True, adapter=True),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(f"Unknown variant: {name} (known: {', '.join(VARIANTS)})") from None


def available(*, adapter: bool, oracle: bool) -> list[Variant]:
    """The variants that can run: the LoRA ones only with an adapter, the oracle only with a QA
    set's gold passages."""
    return [v for v in VARIANTS.values() if (adapter or not v.adapter) and (oracle or not v.oracle)]


def for_answering(name: str | None, *, adapter: bool) -> Variant:
    """The variant one answer runs with (`rag ask`, `rag chat`): ``name``, by default the
    product's (``lora-rag`` when an adapter is given), checked against the adapter."""
    variant = get_variant(name or ("lora-rag" if adapter else DEFAULT_VARIANT))
    variant.check_adapter(adapter)
    if adapter and not variant.adapter:
        raise ConfigError(
            f"variant {variant.name} runs without the adapter: pass --variant lora or lora-rag "
            "to answer with it, or drop --adapter"
        )
    if variant.oracle:
        raise ConfigError(
            "the oracle variant reads a QA set's gold passages: run it with "
            "`rag eval --variants oracle`"
        )
    return variant
