"""Compatibility layers for scripts written against other OPU libraries.

- :mod:`opu_hal.compat.lightonml`: lightonml 1.4's call shapes (``OPU``, encoders,
  ``OPUMap``) on top of opu-hal; change the import line and run.
"""
