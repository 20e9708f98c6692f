"""One module per `siammask` subcommand, and what they share: model options (common) and tracking
into output files (outputs)."""
