"""``python -m examples.agent_service``: run the demo agent service and print what tokenmeter metered."""

from .cli import main

raise SystemExit(main())
