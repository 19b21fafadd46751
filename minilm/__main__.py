"""`python -m minilm` is the `minilm` command."""

import sys

from .cli import main

sys.exit(main())
