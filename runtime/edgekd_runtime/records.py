"""Plain records for the manifest's types: what ``dataclasses`` gave them, written out by hand.

The runtime runs on Python 3.6 (the original Jetson Nano's JetPack 4.6), which has no ``dataclasses`` module;
a backport would be one more package to install on the device for some forty lines.
"""
import copy
from typing import Any, Dict, List, Tuple

__all__ = ["REQUIRED", "Record"]

REQUIRED = object()


class Record(object):
    """Positional or keyword construction, equality by value, a repr and ``to_plain`` (a deep dict).

    A subclass lists ``_fields``: (name, default) pairs in order; a default of ``dict`` or ``list`` makes a
    fresh empty one per instance, ``REQUIRED`` means the field has no default.
    """

    _fields = ()  # type: Tuple[Tuple[str, Any], ...]
    __hash__ = None  # mutable and compared by value: unhashable, as a dataclass with eq=True is

    def __init__(self, *args, **kwargs):
        names = [name for name, _ in self._fields]
        cls = type(self).__name__
        if len(args) > len(names):
            raise TypeError("%s() takes at most %d arguments (%d given)" % (cls, len(names), len(args)))
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError("%s() got an unexpected keyword argument %r" % (cls, key))
            if key in values:
                raise TypeError("%s() got multiple values for argument %r" % (cls, key))
            values[key] = value
        for name, default in self._fields:
            if name in values:
                value = values[name]
            elif default is REQUIRED:
                raise TypeError("%s() missing required argument %r" % (cls, name))
            else:
                value = default() if default in (dict, list) else default
            setattr(self, name, value)

    @classmethod
    def field_names(cls) -> List[str]:
        return [name for name, _ in cls._fields]

    def _values(self):
        return [getattr(self, name) for name, _ in self._fields]

    def __eq__(self, other):
        return type(other) is type(self) and self._values() == other._values()

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n)) for n, _ in self._fields))

    def to_plain(self) -> Dict[str, Any]:
        """Every field, records inside lists and dicts turned into dicts too, other values deep-copied."""
        return dict((name, plain(getattr(self, name))) for name, _ in self._fields)


def plain(value):
    """A record as dicts all the way down, as ``dataclasses.asdict`` made it."""
    if isinstance(value, Record):
        return value.to_plain()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return dict((k, plain(v)) for k, v in value.items())
    return copy.deepcopy(value)
