"""The subcommands that drive one part each (export, profiling); srgan_fast.cli registers them."""
