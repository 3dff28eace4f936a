"""Background-shot augmentation lives in `converters.background_shot` (shared with the synthetic set)."""
from converters.background_shot import (background_shot, cast_shadow, exposure_and_white_balance,  # noqa: F401
                                        sensor_noise, small_warp, uniform)
