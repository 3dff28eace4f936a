"""The synthetic matting set lives in `converters.synthetic` (the parity probes use it too, and the
library layers never import `scripts`); re-exported here for the training code."""
from converters.synthetic import *  # noqa: F401,F403
from converters.synthetic import SyntheticMattingSet, photo_pool, subject  # noqa: F401
