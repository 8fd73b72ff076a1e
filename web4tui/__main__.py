import sys

from web4tui.cli import main

sys.exit(main())
