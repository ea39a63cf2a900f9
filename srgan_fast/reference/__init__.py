"""The PyTorch reference: the networks built from their description (``module``), the ops they use (``ops``)
and the paper's generator and discriminator (``model``). Every fast path is tested against it."""
