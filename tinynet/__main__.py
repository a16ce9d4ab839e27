"""``python -m tinynet``: what tinynet sees of the GPU (CuPy, CUDA, the card, the probes)."""

import sys

from .backend import main

sys.exit(main())
