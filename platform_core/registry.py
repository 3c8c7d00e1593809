"""One generic registry for every pluggable kind (value kinds, field types, actions …).

Built-ins are registered explicitly by each engine's ``register_builtins()``; an unknown
key is a typed error raised where the key is first used (at save time), never a KeyError.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownKeyError(LookupError):
    """A key that no entry of the registry has."""

    def __init__(self, registry: str, key: str, known: list[str]):
        self.registry, self.key, self.known = registry, key, known
        super().__init__(f"unknown {registry} {key!r} (known: {', '.join(known)})")


class Registry(Generic[T]):
    """A named mapping from stable public keys to entries of one kind."""

    def __init__(self, name: str):
        self.name = name
        self._entries: dict[str, T] = {}

    def register(self, key: str, entry: T) -> T:
        if key in self._entries:
            raise ValueError(f"{self.name} {key!r} is registered twice")
        self._entries[key] = entry
        return entry

    def get(self, key: str) -> T:
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownKeyError(self.name, key, sorted(self._entries)) from None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())


def check_configs(registry: Registry[Any], configs: Sequence[Mapping[str, Any]], spec: Any,
                  *, where: str = "actions", noun: str = "action type") -> list[str]:
    """Problems of a list of ``{"type": …}`` configs (a rule's or a service step's
    actions): an unknown type, else what that type's ``check(config, spec)`` finds —
    each prefixed with ``where[i]``."""
    problems = []
    for i, config in enumerate(configs):
        kind = config.get("type")
        if kind not in registry:
            problems.append(f"{where}[{i}]: unknown {noun} {kind!r} (known: "
                            f"{', '.join(registry)})")
            continue
        problems += [f"{where}[{i}]: {p}" for p in registry.get(kind).check(config, spec)]
    return problems
