"""Click parameter types shared by the launcher and the built-in plugins' options.

``click.FloatRange`` lets ``nan`` through every bound (comparisons with NaN are false) and ``inf``
through any open-ended one; a NaN learning rate or temperature then ends deep inside training as a
traceback. :class:`FiniteFloat` refuses both at the command line, in one line.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import click


class FiniteFloat(click.FloatRange):
    """A ``click.FloatRange`` that also refuses NaN and infinities."""

    name = "float"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; pass an ordinary number such as 0.1",
                      param, ctx)
        return super().convert(number, param, ctx)


#: A finite number above zero (learning rates, scales, temperatures, thresholds).
POSITIVE_FLOAT = FiniteFloat(min=0, min_open=True)
#: A finite number of zero or more.
NON_NEGATIVE_FLOAT = FiniteFloat(min=0)
#: A finite number with no bounds.
FLOAT = FiniteFloat()
