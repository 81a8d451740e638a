import sys

from ami_agent.cli import main

if __name__ == "__main__":  # vLLM starts processes that import the main module again
    sys.exit(main())
