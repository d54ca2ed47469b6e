"""`python -m trainer <command>`."""

from trainer.cli import main

raise SystemExit(main())
