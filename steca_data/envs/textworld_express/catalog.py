"""Static facts about the TextWorldExpress games, so recipes are checked before a JVM starts.

The ranges are those the TWX 1.1 generators enforce (probed from their own error messages).
"""

from __future__ import annotations

FOLD_SIZES = {"train": 1000, "dev": 1000, "test": 1000}
FOLD_SEED_BASE = {"train": 0, "dev": 10000, "test": 20000}

_FLAGS = {"includeDoors": (0, 1), "limitInventorySize": (0, 1)}
GAME_PARAMS: dict[str, dict[str, tuple[int, int]]] = {
    "twc": {"numLocations": (1, 3), "numItemsToPutAway": (1, 4), **_FLAGS},
    "cookingworld": {"numLocations": (1, 11), "numIngredients": (1, 5), "numDistractorItems": (0, 10), **_FLAGS},
    "coin": {"numLocations": (1, 11), "numDistractorItems": (0, 10), **_FLAGS},
}


def validate_game_params(game: str, params: dict[str, int | bool]) -> str | None:
    """None when valid, else 'field.path: problem' relative to the env section."""
    if game not in GAME_PARAMS:
        return f"game: unknown TextWorldExpress game {game!r} (supported: {', '.join(sorted(GAME_PARAMS))})"
    known = GAME_PARAMS[game]
    for key, value in params.items():
        if key not in known:
            return f"params.{key}: unknown parameter for {game} (known: {', '.join(known)})"
        low, high = known[key]
        if not low <= int(value) <= high:
            return f"params.{key}: must be between {low} and {high} for {game} (got {value})"
    return None


def canonical_params(params: dict[str, int | bool]) -> str:
    """'key=value' pairs sorted by key: the form TWX parses and the form task ids use."""
    return ",".join(f"{k}={int(v)}" for k, v in sorted(params.items()))
