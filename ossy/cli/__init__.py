"""The `ossy` command line: one module per group of subcommands, each with `register(sub)`."""
