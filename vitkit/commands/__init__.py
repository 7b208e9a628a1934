"""The ``vitkit`` sub-commands beside Lightning's: one module each, with ``add_arguments`` and ``run``."""
