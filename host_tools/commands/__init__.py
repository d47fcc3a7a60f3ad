# One module per `laterne` verb: add_arguments(parser) and run(args) -> exit code; thin.
