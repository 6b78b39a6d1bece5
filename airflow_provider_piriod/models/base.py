"""The base of every Piriod model and the field types the resources share.

Models are lenient on read: unknown fields are kept, every field but a resource's ``id`` may be missing or
null, and types the two generations of Piriod docs disagree on are accepted both ways. Each model built by
``from_json`` keeps the JSON object it came from, nested models included, and ``to_json()`` gives that
object back value for value (Decimals from :func:`airflow_provider_piriod.jsoncodec.loads` included).
"""

from __future__ import annotations

import functools
import typing
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict
from pydantic.types import AllowInfNan

# Money in the currency's major unit. A Decimal stays as it is; pydantic turns a float into a Decimal through
# its shortest repr (0.1 -> Decimal("0.1"), never the binary expansion); NaN and infinities are refused.
Money = Annotated[Decimal, AllowInfNan(False)]

# A related object: its id (a string, an integer where Piriod's samples show one) or the expanded object.
Ref = str | int | dict[str, Any]

# Fields that one generation of the docs shows as a timestamp and others read as a flag
# (``uncollectible``, ``paused``, ``cancelled``).
TimestampOrFlag = datetime | bool


class PiriodModel(BaseModel):
    """Immutable model that remembers the JSON object it came from."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    # The JSON kept is ``__pydantic_private__["_raw"]``, which pydantic copies, pickles and compares with the
    # model. No private attribute is declared for it (pydantic would initialise one for every nested model),
    # and no validator keeps it (a validator on every model doubled the time to build a customer): from_json
    # hands it out in one walk after validation.

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        """Build the model from an API object and keep that object for :meth:`to_json`."""
        model = cls.model_validate(data)
        _keep_json(model, data)
        return model

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


def _keep_json(model: PiriodModel, data: Any) -> None:
    """Give ``model`` and each model nested in it (an invoice line) the JSON object it was built from.

    Only fields whose type can hold a model are entered, so the walk follows the models' types (a few
    levels), not the JSON's depth.
    """
    if not isinstance(data, dict):
        return
    if data:
        object.__setattr__(model, "__pydantic_private__", {"_raw": data})  # frozen: not through pydantic
    fields = model.__dict__
    for name, key in _model_fields_of(type(model)):
        value = fields.get(name)
        if value is not None:
            _keep_nested_json(value, data[key] if key in data else data.get(name))


def _keep_nested_json(value: Any, source: Any) -> None:
    if isinstance(value, PiriodModel):
        _keep_json(value, source)
    elif isinstance(value, (list, tuple)) and isinstance(source, list):
        for item, item_source in zip(value, source, strict=False):  # equal lengths: one item per item sent
            _keep_nested_json(item, item_source)
    elif isinstance(value, dict) and isinstance(source, dict):
        for item_key, item in value.items():
            _keep_nested_json(item, source.get(item_key))


@functools.cache
def _model_fields_of(cls: type[PiriodModel]) -> tuple[tuple[str, str], ...]:
    """(name, JSON key) of the fields of ``cls`` whose type can hold a model: all that :func:`_keep_json` enters.
    The key is the field's alias when it has a plain one (pydantic reads that first), else its name."""
    return tuple(
        (name, field.alias or name) for name, field in cls.model_fields.items() if _can_hold_model(field.annotation)
    )


def _can_hold_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, PiriodModel):
        return True
    return any(_can_hold_model(argument) for argument in typing.get_args(annotation))
