"""The built-in model families: one registry line each (a new generation adds its own; family.py
explains the record)."""

from . import rwkv6, rwkv7
from .family import register_family

register_family(rwkv6.FAMILY)
register_family(rwkv7.FAMILY)
