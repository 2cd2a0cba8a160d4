"""Every model family. Importing this imports every model module under it, which registers each model.

Discovery is automatic: a new model is its own file under `kgen/models/<family>/`, and nothing
else has to list it (`kgen.registry` records it when the file is imported here).
"""

import importlib
import pkgutil

from kgen.models.base import GenerativeModel


def _import_every_module():
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        importlib.import_module(info.name)


_import_every_module()

__all__ = ["GenerativeModel"]
