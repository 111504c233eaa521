"""`target:` — where `phitune submit` runs the recipe. A union discriminated on `type`.

The Azure targets (maap, maas) and local-pipeline add their own classes here.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from phitune.recipe.base import Section


class LocalTarget(Section):
    """Run the training core in this process."""

    type: Literal["local"] = "local"


TargetSpec = Annotated[Union[LocalTarget], Field(discriminator="type")]
