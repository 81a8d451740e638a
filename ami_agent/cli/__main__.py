import sys

from ami_agent.cli import main

sys.exit(main())
