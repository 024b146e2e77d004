"""What model calls cost: list prices per model, shipped in `prices.json`, overridable.

    cost_usd("gpt-4o-mini", input_tokens=1200, output_tokens=300)  # 0.00036
    register_prices({"my-llama": {"input": 0.0, "output": 0.0}})

A dated model name (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`) or a `-latest` alias
costs what its base name costs; any other unknown model has no price (`None`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PRICE_FILE = Path(__file__).with_name("prices.json")

# what may follow a priced name and still be the same model: a date or a "latest" alias
_VERSION_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


class PriceList:
    """Model prices: the shipped list plus overrides (which win)."""

    def __init__(self, shipped: Mapping[str, Price]) -> None:
        self._shipped = dict(shipped)
        self._overrides: dict[str, Price] = {}

    @classmethod
    def load(cls, path: Path = PRICE_FILE) -> PriceList:
        return cls(_parse(json.loads(path.read_text(encoding="utf-8"))["models"]))

    def register(self, prices: Mapping[str, Mapping[str, float]]) -> None:
        """Set prices by model name, `{"model": {"input": usd_per_M, "output": usd_per_M}}`."""
        self._overrides.update(_parse(prices))

    def reset_overrides(self) -> None:
        self._overrides.clear()

    def price(self, model: str) -> Price | None:
        """The model's price, or None when no price is known."""
        found = self._overrides.get(model) or self._shipped.get(model)
        if found is None:
            base = _VERSION_SUFFIX.sub("", model)
            if base != model:
                found = self._overrides.get(base) or self._shipped.get(base)
        return found

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """What the tokens cost in USD, or None when the model's price is unknown."""
        price = self.price(model)
        return None if price is None else price.cost(input_tokens, output_tokens)


def _parse(prices: Mapping[str, Mapping[str, float]]) -> dict[str, Price]:
    parsed: dict[str, Price] = {}
    for model, price in prices.items():
        try:
            parsed[model] = Price(float(price["input"]), float(price["output"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"the price of '{model}' needs numbers 'input' and 'output' "
                "(USD per million tokens)."
            ) from None
    return parsed


#: The prices every AI step uses.
PRICES = PriceList.load()
register_prices = PRICES.register
cost_usd = PRICES.cost_usd
