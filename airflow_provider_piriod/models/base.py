"""The base of every Piriod model and the field types the resources share.

Models are lenient on read: unknown fields are kept, every field but a resource's ``id`` may be missing or
null, and types the two generations of Piriod docs disagree on are accepted both ways. Each model built by
``from_json`` keeps the JSON object it came from, nested models included, and ``to_json()`` gives that
object back value for value (Decimals from :func:`airflow_provider_piriod.jsoncodec.loads` included).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator
from pydantic.types import AllowInfNan

# Money in the currency's major unit. A Decimal stays as it is; pydantic turns a float into a Decimal through
# its shortest repr (0.1 -> Decimal("0.1"), never the binary expansion); NaN and infinities are refused.
Money = Annotated[Decimal, AllowInfNan(False)]

# A related object: its id (a string, an integer where Piriod's samples show one) or the expanded object.
Ref = str | int | dict[str, Any]

# Fields that one generation of the docs shows as a timestamp and others read as a flag
# (``uncollectible``, ``paused``, ``cancelled``).
TimestampOrFlag = datetime | bool

# Passed as validation context by ``from_json`` so that only models built from API JSON keep that JSON.
_KEEP_JSON = {"piriod_keep_json": True}


class PiriodModel(BaseModel):
    """Immutable model that remembers the JSON object it came from."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    # The JSON kept is ``__pydantic_private__["_raw"]``, which pydantic copies, pickles and compares with the
    # model. No private attribute is declared for it: pydantic would then initialise one for every model,
    # nested ones included, which made a customer 40 % slower to build.

    @model_validator(mode="wrap")
    @classmethod
    def _keep_json(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        """Keep each object's own JSON, so a nested model (an invoice line) gives back what was sent too."""
        model = handler(data)
        if info.context is _KEEP_JSON and isinstance(data, dict) and data:
            object.__setattr__(model, "__pydantic_private__", {"_raw": data})  # frozen: not through pydantic
        return model

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        """Build the model from an API object and keep that object for :meth:`to_json`."""
        return cls.model_validate(data, context=_KEEP_JSON)

    def to_json(self) -> dict[str, Any]:
        """The object exactly as Piriod sent it (a copy, safe to change)."""
        raw = (self.__pydantic_private__ or {}).get("_raw")
        if not raw:
            return self.model_dump(mode="json", exclude_unset=True)
        return copy_json(raw)


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value, without recursion: however deep Piriod nests, the copy never overflows."""
    if not isinstance(value, (dict, list)):
        return value
    root = type(value)()
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, (dict, list)):
                child = type(item)()
                stack.append((item, child))
                item = child
            if isinstance(target, dict):
                target[key] = item
            else:
                target.append(item)
    return root


class PiriodObject(PiriodModel):
    """Any Piriod object without a typed model: its id, and every field as sent."""

    id: str | int | None = None
