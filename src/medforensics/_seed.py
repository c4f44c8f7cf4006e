"""Seeds: every seed goes to numpy and torch generators, which take ``0 <= seed < 2**32``."""

from __future__ import annotations

from medforensics.errors import ConfigError

#: One more than the largest seed (session 25: 2**64 overflowed torch.manual_seed, -1 numpy's generator).
SEED_LIMIT = 2**32


def check_seed(seed: int, key: str = "seed") -> None:
    """ConfigError unless ``0 <= seed < 2**32``; ``key`` names the option or config key."""
    if not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"{key} must be >= 0 and < 2**32, got {seed}")
