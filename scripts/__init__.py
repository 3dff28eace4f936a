"""What users run: the `bgmv2` command and its subcommands."""
