"""The ``srgan-fast`` command (``main.main``): one module per sub-command, sharing the options in ``common``."""
