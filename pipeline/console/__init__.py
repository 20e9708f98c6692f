"""The operator's console: one page and one JSON API served by `siammask serve --console`, going
through the supervisor's control handlers like `siammask ctl` (see pipeline/README.md, "Console")."""
