import sys

from nanobench.cli import main

sys.exit(main())
