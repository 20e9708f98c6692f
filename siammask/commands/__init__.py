"""One module per `siammask` subcommand."""
