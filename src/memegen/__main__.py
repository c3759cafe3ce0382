import sys

from memegen.cli import main

sys.exit(main())
