"""The application shell: the root ``machikado`` command, config loading, logging, private files.

Every part may import :mod:`machikado.settings`, :mod:`machikado.logs` and
:mod:`machikado.files`; nothing else of this package is imported by a part. The shell itself
(:mod:`machikado.cli`) loads the parts through their entry points.
"""
