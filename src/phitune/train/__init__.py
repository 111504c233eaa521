"""The training core: `train(recipe, output_dir) -> RunResult`. Never imports azure.

`from phitune import train` must give the function, but `phitune.train` is also this package (Python
sets the package attribute as soon as any `phitune.train.*` module is imported). So the package
module itself is callable and forwards to `phitune.train.run.train`: both spellings work.
"""

from __future__ import annotations

import sys
import types


class _CallableTrainPackage(types.ModuleType):
    def __call__(self, recipe, output_dir, **kwargs):
        from phitune.train.run import train

        return train(recipe, output_dir, **kwargs)


sys.modules[__name__].__class__ = _CallableTrainPackage
